-- Workload configs for the REST API.

-- name: api_config_page
with visible as (
    select c.* from workload_configs c
     where c.organization_id = %(org_id)s
       and (%(config_id)s::text is null or c.id = %(config_id)s::text)
-- include: keyset_page
    coalesce((select json_agg(
-- include: config_object
    order by c.rn) from rows c), '[]')::text as items;

-- name: api_insert_config
insert into workload_configs (id, organization_id, name, description, mode, sail, marimo,
                              workers, env, secret_env, created_at, created_by, updated_at,
                              updated_by)
values (%(id)s, %(org_id)s, %(name)s, %(description)s, %(mode)s, %(sail)s, %(marimo)s,
        %(workers)s, %(env)s, %(secret_env)s, %(now)s, %(member_id)s, %(now)s, %(member_id)s)
on conflict (organization_id, lower(name)) do nothing
returning id;

-- name: api_lock_config
-- Its environment too: an edit's is checked whole, as the edit leaves it.
select id, name, env, secret_env from workload_configs
 where id = %(config_id)s and organization_id = %(org_id)s
   for update;

-- name: api_config_name_taken
select exists (select 1 from workload_configs
                where organization_id = %(org_id)s and lower(name) = lower(%(name)s)
                  and id <> %(config_id)s) as taken;

-- name: api_update_config
update workload_configs
   set name = coalesce(%(name)s, name),
       description = coalesce(%(description)s, description),
       mode = coalesce(%(mode)s, mode),
       sail = coalesce(%(sail)s, sail),
       marimo = coalesce(%(marimo)s, marimo),
       workers = coalesce(%(workers)s, workers),
       env = coalesce(%(env)s, env),
       secret_env = coalesce(%(secret_env)s, secret_env),
       updated_at = %(now)s,
       updated_by = %(member_id)s
 where id = %(config_id)s;

-- name: api_config_in_use
-- Soft-deleted notebooks still reference their config until torn down.
select count(*) filter (where deleted_at is null) as live,
       count(*) filter (where deleted_at is not null) as deleting
  from notebooks where workload_config_id = %(config_id)s;

-- name: api_delete_config
delete from workload_configs where id = %(config_id)s;

-- name: api_clear_config_teams
-- Who may use it (migration 0021), set again: `restricted` unless `team_ids`
-- is null (everyone); a list (empty too: org admins only) restricts it to
-- those teams' members, added by api_add_config_teams.
with flag as (
    update workload_configs set restricted = %(team_ids)s::text[] is not null
     where id = %(config_id)s
)
delete from workload_config_teams where config_id = %(config_id)s;

-- name: api_add_config_teams
insert into workload_config_teams (config_id, team_id)
select %(config_id)s, t from unnest(%(team_ids)s::text[]) t;

-- name: api_config_usable
-- Whether `owner_id` may have a notebook on the config (docs/api.md "Who may
-- use a config"): it is not restricted, the owner is an org admin, or one of
-- its teams' members (any role); with its name and its teams' for a refusal.
select c.name,
       not c.restricted
       or (select m.organization_admin from members m where m.id = %(owner_id)s)
       or exists (select 1 from workload_config_teams ct
                    join team_memberships tm on tm.team_id = ct.team_id
                   where ct.config_id = c.id and tm.member_id = %(owner_id)s) as usable,
       coalesce((select string_agg(t.name, ', ' order by t.name)
                   from workload_config_teams ct join teams t on t.id = ct.team_id
                  where ct.config_id = c.id), '') as teams
  from workload_configs c
 where c.id = %(config_id)s;
