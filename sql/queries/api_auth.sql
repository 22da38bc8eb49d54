-- API token authentication. Revocation, expiry and member disabling are
-- checked in the same lookup, so they take effect on the very next request.

-- name: api_authenticate
-- A write adds `for key share of t, m` (api/context.py).
select t.id as token_id, t.last_used_at, t.expires_at, t.read_only, m.id as member_id,
       m.organization_id, m.organization_admin
  from api_tokens t
  join members m on m.id = t.member_id
 where t.secret_hash = %(secret_hash)s
   and t.revoked_at is null
   and (t.expires_at is null or t.expires_at > %(now)s)
   and m.disabled_at is null;

-- name: api_touch_token
-- Coalesced: the caller only runs this when last_used_at is stale.
update api_tokens set last_used_at = %(now)s
 where id = %(id)s and (last_used_at is null or last_used_at < %(now)s);
