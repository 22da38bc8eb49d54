-- A team's or a workload config's name is unique in its organization however
-- it is capitalised, as a member's email is (0005): "Data" and "data" would
-- look like one team in a share dialog. Names are kept as written.
--
-- Names that already differ only in case keep the oldest as it is; each
-- later one gets its id appended, "data (K3J9…)", which is unique, so the
-- indexes can be made without asking anyone to merge first.

update teams t set name = t.name || ' (' || t.id || ')'
 where exists (select 1 from teams o
                where o.organization_id = t.organization_id and lower(o.name) = lower(t.name)
                  and (o.created_at, o.id) < (t.created_at, t.id));

update workload_configs c set name = c.name || ' (' || c.id || ')'
 where exists (select 1 from workload_configs o
                where o.organization_id = c.organization_id and lower(o.name) = lower(c.name)
                  and (o.created_at, o.id) < (c.created_at, c.id));

create unique index teams_org_name_ci on teams (organization_id, lower(name));
alter table teams drop constraint teams_organization_id_name_key;

create unique index workload_configs_org_name_ci
    on workload_configs (organization_id, lower(name));
alter table workload_configs drop constraint workload_configs_organization_id_name_key;
