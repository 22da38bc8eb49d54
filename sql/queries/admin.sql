-- Queries of the `notebooks` command line: first-run set-up and `notebooks admin`.

-- name: admin_create_organization
insert into organizations (id, name) values (%(id)s, %(name)s)
returning id, name, created_at;

-- name: admin_list_organizations
select id, name, created_at from organizations order by created_at, id;

-- name: admin_get_organization
select id, name, created_at from organizations where id = %(id)s;

-- name: admin_create_member
insert into members (id, organization_id, email, name, organization_admin)
values (%(id)s, %(organization_id)s, %(email)s, %(name)s, %(organization_admin)s)
returning id, organization_id, email, name, organization_admin, disabled_at, created_at;

-- name: admin_get_member
select id, organization_id, email, name, organization_admin, disabled_at, created_at
from members where id = %(id)s and organization_id = %(organization_id)s;

-- name: admin_list_members
select id, organization_id, email, name, organization_admin, disabled_at, created_at
from members where organization_id = %(organization_id)s
order by created_at, id;

-- The oldest enabled org admin of the oldest organization: who `notebooks up`
-- hands a token to when the database was set up without a credentials file.
-- name: admin_first_admin
select m.id, m.organization_id
from members m join organizations o on o.id = m.organization_id
where m.organization_admin and m.disabled_at is null
order by o.created_at, o.id, m.created_at, m.id
limit 1;

-- name: admin_create_token
insert into api_tokens (id, member_id, name, prefix, secret_hash, expires_at, read_only)
values (%(id)s, %(member_id)s, %(name)s, %(prefix)s, %(secret_hash)s,
        now() + make_interval(secs => %(expires_in)s), %(read_only)s)
returning id, member_id, name, prefix, created_at, last_used_at, revoked_at, expires_at,
          read_only;

-- name: admin_list_tokens
select t.id, t.member_id, t.name, t.prefix, t.created_at, t.created_by, t.last_used_at,
       t.revoked_at, t.revoked_by, t.expires_at, t.read_only
from api_tokens t join members m on m.id = t.member_id
where m.organization_id = %(organization_id)s
  and (%(member_id)s::text is null or t.member_id = %(member_id)s)
order by t.created_at, t.id;

-- Whose token this is, if it still works (not revoked or expired, member not disabled).
-- name: admin_token_owner
select m.id as member_id, m.organization_id
from api_tokens t join members m on m.id = t.member_id
where t.secret_hash = %(secret_hash)s and t.revoked_at is null and m.disabled_at is null
  and (t.expires_at is null or t.expires_at > now());

-- name: admin_create_team
insert into teams (id, organization_id, name) values (%(id)s, %(organization_id)s, %(name)s)
returning id, organization_id, name, created_at;

-- name: admin_get_team
select id, organization_id, name, created_at
from teams where id = %(id)s and organization_id = %(organization_id)s;

-- name: admin_list_teams
select id, organization_id, name, created_at
from teams where organization_id = %(organization_id)s
order by created_at, id;

-- name: admin_set_membership
insert into team_memberships (team_id, member_id, role)
values (%(team_id)s, %(member_id)s, %(role)s)
on conflict (team_id, member_id) do update set role = excluded.role
returning team_id, member_id, role, created_at;

-- name: admin_list_memberships
select tm.team_id, tm.member_id, tm.role, tm.created_at
from team_memberships tm join teams t on t.id = tm.team_id
where t.organization_id = %(organization_id)s
  and (%(team_id)s::text is null or tm.team_id = %(team_id)s)
order by tm.created_at, tm.team_id, tm.member_id;

-- name: admin_create_workload_config
insert into workload_configs
    (id, organization_id, name, description, mode, sail, marimo, workers, env)
values (%(id)s, %(organization_id)s, %(name)s, %(description)s, %(mode)s, %(sail)s, %(marimo)s,
        %(workers)s, %(env)s)
returning id, organization_id, name, description, mode, sail, marimo, workers, env, created_at;

-- name: admin_list_workload_configs
select id, organization_id, name, description, mode, sail, marimo, workers, env, created_at
from workload_configs where organization_id = %(organization_id)s
order by created_at, id;

-- name: admin_lock_token
-- First, in a statement of its own, as api_lock_token: a token being made
-- with this one commits before admin_revoke_token reads the lineage.
select t.id from api_tokens t join members m on m.id = t.member_id
 where t.id = %(id)s and m.organization_id = %(organization_id)s
   for update of t;

-- name: admin_revoke_token
-- The token (keeping an earlier revocation's time) and, as the API's
-- api_revoke_token, every token made with it and with those (migration 0007).
with recursive target as (
    select t.id from api_tokens t join members m on m.id = t.member_id
     where t.id = %(id)s and m.organization_id = %(organization_id)s
), lineage as (
    select id from target
    union
    select t.id from api_tokens t join lineage l on t.made_by = l.id
), locked as (
    -- as api_revoke_token: waits for the writes in flight made with any of them
    select id from api_tokens
     where id in (select id from lineage) and id not in (select id from target)
       and revoked_at is null
     order by id
       for update
), made_with as (
    update api_tokens set revoked_at = now()
     where id in (select id from locked)
    returning id
)
update api_tokens t set revoked_at = coalesce(t.revoked_at, now())
  from target
 where t.id = target.id
returning t.id, t.member_id, t.name, t.prefix, t.created_at, t.last_used_at, t.revoked_at,
          (select count(*) from made_with) as also_revoked;

-- name: admin_disable_member
-- Locked `for update` first: waits for the member's API writes in flight.
with target as (
    select id from members where id = %(id)s and organization_id = %(organization_id)s
       for update
)
update members set disabled_at = coalesce(disabled_at, now())
where id in (select id from target)
returning id, organization_id, email, name, organization_admin, disabled_at, created_at;
