-- Teams, team memberships and notebook <-> team links for the REST API.
-- Pages return JSON text built here (total, more, last key, items).

-- name: api_team_page
-- Teams of the org, optionally only those linked to `notebook_id` or only `team_id`.
with visible as (
    select t.* from teams t
     where t.organization_id = %(org_id)s
       and (%(notebook_id)s::text is null
            or exists (select 1 from notebook_teams nt
                        where nt.team_id = t.id and nt.notebook_id = %(notebook_id)s::text))
       and (%(team_id)s::text is null or t.id = %(team_id)s::text)
-- include: keyset_page
    coalesce((select json_agg(json_build_object(
        'id', r.id, 'organizationId', r.organization_id, 'name', r.name,
        'createdAt', r.created_at, 'createdBy', r.created_by
    ) order by r.rn) from rows r), '[]')::text as items;

-- name: api_team_role
-- The team (if in the org) and the caller's role in it (null if none).
select t.id,
       (select tm.role from team_memberships tm
         where tm.team_id = t.id and tm.member_id = %(member_id)s) as role
  from teams t
 where t.id = %(team_id)s and t.organization_id = %(org_id)s;

-- name: api_lock_team_for_change
-- Before a membership change: the team's row, key-share-locked (what the
-- new membership's foreign key check takes anyway, taken first), so a
-- deletion of the team (`for update`, then its memberships by cascade)
-- waits for the change instead of crossing it (a deadlock, a review found).
select id from teams where id = %(team_id)s and organization_id = %(org_id)s for key share;

-- name: api_lock_team_memberships
-- The caller's and the target's memberships of a team, locked `for update` in
-- member order, before a membership is changed: the caller's authority (a
-- team admin's) is judged on its locked row, so a concurrent removal or
-- demotion of the caller waits for this change, or this change sees it; and
-- two admins changing each other's memberships serialize instead of deadlocking.
select member_id, role from team_memberships
 where team_id = %(team_id)s and member_id in (%(caller_id)s, %(member_id)s)
 order by member_id
   for update;

-- name: api_insert_team
insert into teams (id, organization_id, name, created_at, created_by)
values (%(id)s, %(org_id)s, %(name)s, %(now)s, %(member_id)s)
on conflict (organization_id, lower(name)) do nothing
returning id;

-- name: api_put_team_member
insert into team_memberships (team_id, member_id, role, created_at)
values (%(team_id)s, %(member_id)s, %(role)s, %(now)s)
on conflict (team_id, member_id) do update set role = excluded.role
returning team_id, member_id, role;

-- name: api_delete_team_member
delete from team_memberships where team_id = %(team_id)s and member_id = %(member_id)s
returning team_id;

-- name: api_teams_in_org
-- Which of `ids` are teams of the org (to name the first foreign one).
select id from teams where organization_id = %(org_id)s and id = any(%(ids)s);

-- name: api_link_teams
-- The names of the teams it was not shared with already (for its history).
with added as (
    insert into notebook_teams (notebook_id, team_id, created_at, created_by)
    select %(notebook_id)s, unnest(%(team_ids)s::text[]), %(now)s, %(member_id)s
    on conflict do nothing
    returning team_id
)
select coalesce(array_agg(t.name order by lower(t.name), t.id), '{}') as names
  from added join teams t on t.id = added.team_id;

-- name: api_unlink_team
delete from notebook_teams nt where nt.notebook_id = %(notebook_id)s and nt.team_id = %(team_id)s
returning nt.team_id, (select t.name from teams t where t.id = nt.team_id) as name;

-- name: api_team_member_page
-- A team's memberships, newest first; a disabled member is gone, as from GET /members.
-- `not materialized`: the page comes off the index in its order (migration
-- 0012), and `total` counts apart, instead of sorting every row first.
with visible as not materialized (
    -- A membership's key is its member (`id`, as keyset_page reads it).
    select tm.*, tm.member_id as id from team_memberships tm
      join members m on m.id = tm.member_id and m.disabled_at is null
     where tm.team_id = %(team_id)s
-- include: keyset_page
    coalesce((select json_agg(json_build_object(
        'teamId', r.team_id, 'memberId', r.member_id, 'role', r.role
    ) order by r.rn) from rows r), '[]')::text as items,
    -- The page's members by name (a team admin who may not list the
    -- organization's members still sees who is in their team), as a
    -- describe's `included` names them.
    coalesce((select json_agg(
-- include: included_member
    order by r.rn) from rows r join members m on m.id = r.member_id), '[]')::text as members;

-- name: api_rename_team
-- A name taken by another of the org's teams (however capitalised) leaves the
-- team as it is and returns nothing; two renames racing to one name meet the
-- unique index (teams_org_name_ci), answered team_name_taken too.
update teams t set name = %(name)s
 where t.id = %(team_id)s and t.organization_id = %(org_id)s
   and not exists (select 1 from teams o
                    where o.organization_id = %(org_id)s and lower(o.name) = lower(%(name)s)
                      and o.id <> %(team_id)s)
returning t.id;

-- name: api_lock_team_for_delete
-- A team's deletion, first: its row, so no share with it begins meanwhile
-- (a share's foreign key check waits, then finds the team gone).
select id, name from teams where id = %(team_id)s and organization_id = %(org_id)s
   for update;

-- name: api_lock_team_notebooks
-- Then the notebooks shared with it, in id order (as a notebook's own writes
-- lock it before its team links, so no cycle forms with them).
select n.id from notebooks n join notebook_teams nt on nt.notebook_id = n.id
 where nt.team_id = %(team_id)s
 order by n.id
   for update of n;

-- name: api_record_team_deletion
-- Then, read afresh (an unshare that committed while this waited is not
-- counted twice), each notebook still shared with it says so in its
-- history, by whom, stamped no earlier than its last event (status.sql).
insert into notebook_events (notebook_id, organization_id, notebook_name, from_status,
                             to_status, reason, actor, created_at)
select n.id, n.organization_id, n.name, n.status, n.status,
       'No longer shared with ' || %(name)s || ': the team was deleted', %(member_id)s,
       greatest(%(now)s::timestamptz,
                (select max(e.created_at) from notebook_events e where e.notebook_id = n.id))
  from notebooks n join notebook_teams nt on nt.notebook_id = n.id
 where nt.team_id = %(team_id)s and n.deleted_at is null;

-- name: api_delete_team
-- Its memberships and its notebooks' shares go with it (on delete cascade);
-- their triggers tell the proxy, which ends what they gave (migration 0003).
delete from teams where id = %(team_id)s and organization_id = %(org_id)s
returning id;
