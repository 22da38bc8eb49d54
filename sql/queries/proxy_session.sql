-- Session proxy: login bookkeeping and the per-request access check.

-- name: proxy_consume_jti
-- Single use across every proxy replica: the first insert wins.
insert into used_proxy_tokens (jti, notebook_id, member_id, expires_at, used_at)
values (%(jti)s, %(notebook_id)s, %(member_id)s, %(expires_at)s, %(now)s)
on conflict (jti) do nothing
returning jti;

-- name: proxy_targets
-- Where a member's request goes and whether they may still send it: the
-- notebook's live session plus the member's current right to view / edit
-- (owner, org admin, or a team shared on the notebook; DESIGN §5), through
-- an API token that is not revoked (revoking it ends what it opened) and the
-- token's expiry, which the proxy compares with its clock on every request.
-- When the status changed: a stop leaves open editors a moment to save.
-- For a member other than the owner, when the owner was last present in
-- this session: an edit session yields to an owner who is back (DESIGN §5,
-- as `open` does).
-- For any number of (member, notebook, API token) keys in one statement: a
-- request's lookup is one key, a re-check pass all of its keys (one lookup
-- per key would queue on the small pool). The three arrays are the keys'
-- columns, in step; a key whose notebook is gone has no row.
select k.member_id as key_member_id,
       k.notebook_id as key_notebook_id,
       k.token_id as key_token_id,
       n.id as notebook_id,
       n.status,
       n.status_changed_at,
       n.session_id,
       n.session_token,
       n.runtime_state ->> 'marimo_url' as marimo_url,
       n.runtime_state ->> 'notebook_path' as notebook_path,
       t.expires_at as token_expires_at,
       m.id is not null and m.disabled_at is null and m.organization_id = n.organization_id
           and t.id is not null
           as member_ok,
       coalesce(n.member_id = m.id, false) as is_owner,
       (select p.last_seen_at from notebook_presence p
         where p.notebook_id = n.id and p.member_id = n.member_id
           and p.last_seen_at >= coalesce(n.start_requested_at, '-infinity')
           and n.member_id is distinct from k.member_id) as owner_seen_at,
       coalesce(m.organization_admin, false) as is_org_admin,
       coalesce((select array_agg(tm.role order by tm.role)
                   from notebook_teams nt
                   join team_memberships tm on tm.team_id = nt.team_id
                  where nt.notebook_id = n.id and tm.member_id = m.id), '{}') as team_roles
  from unnest(%(member_ids)s::text[], %(notebook_ids)s::text[], %(token_ids)s::text[])
           as k (member_id, notebook_id, token_id)
  join notebooks n on n.id = k.notebook_id and n.deleted_at is null
  left join members m on m.id = k.member_id
  left join api_tokens t on t.id = k.token_id and t.member_id = m.id and t.revoked_at is null;

-- name: proxy_listen
listen notebooks_proxy;
