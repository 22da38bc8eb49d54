-- Who may use a workload config (docs/api.md "Who may use a config"): an
-- expensive one (GPUs, big memory) only for the teams it is for. A config
-- `restricted` serves its teams' members (any role) and org admins; one not
-- restricted serves everyone, as before. A team deleted leaves a restricted
-- config to fewer people, never to everyone (hence the flag, not "no rows").
-- A new table, and a column with a constant default: no rewrite.
set local lock_timeout = '10s';

alter table workload_configs add column restricted boolean not null default false;

create table workload_config_teams (
    config_id  text not null references workload_configs (id) on delete cascade,
    team_id    text not null references teams (id) on delete cascade,
    primary key (config_id, team_id)
);
create index workload_config_teams_team on workload_config_teams (team_id);
