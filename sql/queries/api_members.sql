-- Members and their API tokens for the REST API.

-- name: api_member_page
-- Active members of the org (optionally only `member_id`), newest first.
-- `not materialized`: the page comes off the index in its order (migration
-- 0012, partial: active members only), and `total` counts apart, instead of
-- sorting every row first.
with visible as not materialized (
    select m.* from members m
     where m.organization_id = %(org_id)s and m.disabled_at is null
-- include: member_page_answer

-- name: api_disabled_member_page
-- The org's disabled members, as api_member_page answers (`?disabled=true`,
-- to enable one again: few, off the org's members).
with visible as not materialized (
    select m.* from members m
     where m.organization_id = %(org_id)s and m.disabled_at is not null
-- include: member_page_answer

-- fragment: member_page_answer
-- The rest of a members page, after `visible`'s org and status condition.
       and (%(member_id)s::text is null or m.id = %(member_id)s::text)
       -- A search: `strpos` on lowered text, so `%%` and `_` are plain characters.
       and (%(q)s::text is null
            or strpos(lower(m.name), lower(%(q)s::text)) > 0
            or strpos(lower(m.email), lower(%(q)s::text)) > 0)
-- include: keyset_page
    coalesce((select json_agg(json_build_object(
        'id', r.id, 'organizationId', r.organization_id, 'email', r.email, 'name', r.name,
        'organizationAdmin', r.organization_admin, 'createdAt', r.created_at,
        'disabledAt', r.disabled_at
    ) order by r.rn) from rows r), '[]')::text as items;

-- name: api_me
select json_build_object(
    'id', m.id, 'organizationId', m.organization_id, 'email', m.email, 'name', m.name,
    'organizationAdmin', m.organization_admin,
    'teams', coalesce((select json_agg(json_build_object('teamId', tm.team_id, 'role', tm.role)
                                       order by tm.team_id)
                         from team_memberships tm where tm.member_id = m.id), '[]')
)::text as body
  from members m where m.id = %(member_id)s;

-- name: api_active_member
-- Key-share-locked: a disabling or an enabling waits for the token being
-- made (or the write being done) to commit, and then sees it.
select id from members
 where id = %(member_id)s and organization_id = %(org_id)s and disabled_at is null
   for key share;

-- name: api_insert_member
insert into members (id, organization_id, email, name, organization_admin, created_at)
values (%(id)s, %(org_id)s, %(email)s, %(name)s, %(organization_admin)s, %(now)s)
on conflict (organization_id, lower(email)) do nothing
returning id;

-- name: api_disable_member
-- The caller's row and the target's are locked first, in id order, so two
-- admins disabling each other serialize: the second finds itself disabled
-- (caller_ok false) and disables nobody, and the org keeps an admin.
-- `for update`: it also waits for the target's writes in flight, which hold
-- its row key-share-locked (api/context.py).
with locked as (
    select id, disabled_at, organization_admin from members
     where id in (%(member_id)s, %(caller_id)s) and organization_id = %(org_id)s
     order by id
       for update
), caller as (
    -- An aggregate reads (and so locks) both rows; an `exists` would stop at
    -- the first and leave the target unlocked when the caller's id is lower.
    select coalesce(bool_or(id = %(caller_id)s and disabled_at is null and organization_admin),
                    false) as ok
      from locked
), done as (
    update members m set disabled_at = %(now)s
      from caller
     where caller.ok and m.id = %(member_id)s and m.organization_id = %(org_id)s
       and m.disabled_at is null
    returning m.id
)
select (select ok from caller) as caller_ok, (select id from done) as disabled;

-- name: api_lock_member_for_enable
-- First, in a statement of its own: the member's row, locked. A token being
-- made for them (api_active_member holds the row key-share-locked) commits
-- before api_enable_member reads their tokens, so it is revoked with them.
select id, disabled_at from members
 where id = %(member_id)s and organization_id = %(org_id)s
   for update;

-- name: api_enable_member
-- A disabled member back, with their teams, role and notebooks (none of it
-- went), and none of their tokens: every one left is revoked now, so a token
-- leaked before the disabling does not come back with them. Run after
-- api_lock_member_for_enable, on a disabled member.
with revoked as (
    update api_tokens set revoked_at = %(now)s, revoked_by = %(caller_id)s
     where member_id = %(member_id)s and revoked_at is null
    returning id
), enabled as (
    update members set disabled_at = null
     where id = %(member_id)s and organization_id = %(org_id)s
    returning id
)
select (select count(*) from revoked) as revoked;

-- name: api_lock_member_change
-- Before a member is renamed or made an admin or not: the caller's and the
-- target's rows, and for a demotion every active admin of the org, locked
-- `for update` in id order. A demotion waits for the writes in flight made
-- with the admin role (they hold its row key-share-locked, api/context.py);
-- two admins demoting each other serialize; the caller is judged on its
-- locked row; and the last active admin is counted, not demoted.
with locked as (
    select id, organization_admin from members
     where organization_id = %(org_id)s and disabled_at is null
       and (id in (%(caller_id)s, %(member_id)s) or (%(demote)s and organization_admin))
     order by id
       for update
)
select coalesce(bool_or(id = %(caller_id)s and organization_admin), false) as caller_ok,
       coalesce(bool_or(id = %(member_id)s), false) as found,
       coalesce(bool_or(id = %(member_id)s and organization_admin), false) as was_admin,
       count(*) filter (where organization_admin) as admins
  from locked;

-- name: api_caller_admin_token
-- The caller's token, live and still an org admin's, key-share-locked to the
-- end of the transaction: a change that gives access (a promotion) made with
-- a token being revoked either sees the revocation (read after it waited) or
-- makes the revocation wait for it, never commits after it.
select t.id from api_tokens t join members m on m.id = t.member_id
 where t.id = %(caller_token_id)s and m.id = %(caller_id)s
   and m.disabled_at is null and m.organization_admin
   and t.revoked_at is null and (t.expires_at is null or t.expires_at > %(now)s)
   for key share of t;

-- name: api_update_member
update members
   set name = coalesce(%(name)s::text, name),
       organization_admin = coalesce(%(admin)s::boolean, organization_admin)
 where id = %(member_id)s and organization_id = %(org_id)s;

-- name: api_insert_token
-- A token bound to its maker (made_by) is made only while the maker is not
-- revoked, holding it share-locked so a revocation waits for this insert and
-- then finds the new token in its lineage (api_lock_token, api_revoke_token).
with maker as (
    select id from api_tokens
     where id = %(made_by)s::text and revoked_at is null
       for share
)
insert into api_tokens (id, member_id, name, prefix, secret_hash, created_at, expires_at, made_by,
                        created_by, read_only)
select %(id)s, %(member_id)s, %(name)s, %(prefix)s, %(secret_hash)s, %(now)s, %(expires_at)s,
       %(made_by)s, %(caller_id)s, %(read_only)s
 where %(made_by)s::text is null or exists (select 1 from maker)
returning json_build_object('id', id, 'name', name, 'prefix', prefix,
                            'createdAt', created_at, 'createdBy', created_by,
                            'madeWith', made_by, 'expiresAt', expires_at,
                            'readOnly', read_only)::text as body;

-- name: api_lock_token
-- First, in a statement of its own: a token being made with this one (its
-- insert holds a share lock) commits before the lineage below is read, and
-- so do writes in flight made with it (a key share lock, api/context.py).
select id from api_tokens
 where id = %(token_id)s and member_id = %(member_id)s and revoked_at is null
   for update;

-- name: api_caller_live
-- Whether the caller may still act, read after the request's own locks (a
-- revocation locks its targets, not its caller, api/context.py): a disabling
-- or revocation of the caller committed meanwhile is seen, and nothing is
-- revoked in the name of a caller that has lost its access.
-- `admin`: whether it is an org admin still (another member's tokens take
-- one: a demotion committed meanwhile is seen). No row: not live.
select m.organization_admin as admin
  from members m join api_tokens t on t.member_id = m.id
 where m.id = %(caller_id)s and m.disabled_at is null
   and t.id = %(caller_token_id)s and t.revoked_at is null
   and (t.expires_at is null or t.expires_at > %(now)s);

-- name: api_revoke_token
-- The token, and every token made with it, and with those (migration 0007).
with recursive target as (
    select id from api_tokens
     where id = %(token_id)s and member_id = %(member_id)s and revoked_at is null
), lineage as (
    select id from target
    union
    select t.id from api_tokens t join lineage l on t.made_by = l.id
), locked as (
    -- `for update`: waits for the writes in flight made with any of them
    -- (they key-share-lock their token, api/context.py); in id order.
    select id from api_tokens
     where id in (select id from lineage) and revoked_at is null
     order by id
       for update
), revoked as (
    update api_tokens set revoked_at = %(now)s, revoked_by = %(caller_id)s
     where id in (select id from locked)
    returning id
)
select id from target;

-- name: api_token_page
-- A member's live (unrevoked, unexpired) tokens, newest first; never the secret.
with visible as (
    select t.* from api_tokens t
     where t.member_id = %(member_id)s and t.revoked_at is null
       and (t.expires_at is null or t.expires_at > %(now)s)
-- include: keyset_page
    coalesce((select json_agg(json_build_object(
        'id', r.id, 'name', r.name, 'prefix', r.prefix, 'createdAt', r.created_at,
        'createdBy', r.created_by, 'madeWith', r.made_by, 'lastUsedAt', r.last_used_at,
        'expiresAt', r.expires_at, 'readOnly', r.read_only
    ) order by r.rn) from rows r), '[]')::text as items;

-- name: api_organization
-- The caller's organization, its own running limits and the operator's (the
-- settings, passed in: 0 is none), and its timeout caps (0: none).
select json_build_object(
    'id', o.id, 'name', o.name,
    'maxRunningPerMember', o.max_running_per_member, 'maxRunning', o.max_running,
    'maxIdleTimeoutSeconds', o.max_idle_timeout_seconds,
    'maxDetachedTimeoutSeconds', o.max_detached_timeout_seconds,
    'defaultIdleTimeoutSeconds', o.default_idle_timeout_seconds,
    'defaultDetachedTimeoutSeconds', o.default_detached_timeout_seconds,
    'platformDefaultIdleTimeoutSeconds', %(platform_default_idle)s::int,
    'platformDefaultDetachedTimeoutSeconds', %(platform_default_detached)s::int,
    'platformMaxRunningPerMember', %(platform_per_member)s::int,
    'platformMaxRunning', %(platform_per_org)s::int,
    'trashDays', %(trash_days)s::int,
    'createdAt', o.created_at, 'updatedAt', o.updated_at, 'updatedBy', o.updated_by,
    -- who last changed a limit, by name: a member whose notebook a cap
    -- stopped asks an admin who (null: never changed)
    'updatedByName', (select m.name from members m where m.id = o.updated_by)
)::text as body
  from organizations o where o.id = %(org_id)s;

-- name: api_update_organization_limits
-- Only the limits passed as non-null change; a default timeout changes
-- when its `set_` flag says it was sent (null: back to the platform's).
update organizations
   set max_running_per_member = coalesce(%(max_running_per_member)s, max_running_per_member),
       max_running = coalesce(%(max_running)s, max_running),
       max_idle_timeout_seconds = coalesce(%(max_idle_timeout_seconds)s,
                                           max_idle_timeout_seconds),
       max_detached_timeout_seconds = coalesce(%(max_detached_timeout_seconds)s,
                                               max_detached_timeout_seconds),
       default_idle_timeout_seconds = case when %(set_default_idle_timeout_seconds)s
                                           then %(default_idle_timeout_seconds)s::int
                                           else default_idle_timeout_seconds end,
       default_detached_timeout_seconds = case when %(set_default_detached_timeout_seconds)s
                                               then %(default_detached_timeout_seconds)s::int
                                               else default_detached_timeout_seconds end,
       updated_at = %(now)s, updated_by = %(member_id)s
 where id = %(org_id)s;
