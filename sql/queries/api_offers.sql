-- Offers of a notebook from its owner to a colleague (api/offers.py). Every
-- write locks the notebook row first (api_lock_offered_notebook), as every
-- other write to a notebook does, and reads the offer after: so an accept
-- and a withdrawal, or two accepts, serialize on it.

-- name: api_lock_offered_notebook
-- The notebook, locked, whoever asks (the recipient of an offer may not see
-- it otherwise); the caller's right is judged on the offer read after it.
select n.id, n.member_id, n.status, n.status_message, n.desired_state, n.workload_config_id
  from notebooks n
 where n.id = %(id)s and n.organization_id = %(org_id)s and n.deleted_at is null
   for update;

-- name: api_pending_offer
-- The notebook's pending offer: made by its present owner, not yet expired.
select o.from_member_id, o.to_member_id,
       f.name as from_name, f.email as from_email, t.name as to_name, t.email as to_email
  from notebook_offers o
  join notebooks n on n.id = o.notebook_id and n.member_id = o.from_member_id
  join members f on f.id = o.from_member_id
  join members t on t.id = o.to_member_id
 where o.notebook_id = %(id)s and o.organization_id = %(org_id)s and o.expires_at > %(now)s;

-- name: api_offer_recipient_by_email
-- An offer's recipient named by email (however capitalised: the org's
-- unique index), active, key-share-locked as api_new_owner locks one.
select m.id, m.name, m.email
  from members m
 where m.organization_id = %(org_id)s and lower(m.email) = lower(%(email)s)
   and m.disabled_at is null
   for key share of m;

-- name: api_put_offer
insert into notebook_offers
       (notebook_id, organization_id, from_member_id, to_member_id, created_at, expires_at)
values (%(id)s, %(org_id)s, %(member_id)s, %(to_member_id)s, %(now)s, %(expires_at)s)
    on conflict (notebook_id) do update
   set from_member_id = excluded.from_member_id, to_member_id = excluded.to_member_id,
       created_at = excluded.created_at, expires_at = excluded.expires_at;

-- name: api_delete_offers
-- Withdrawn, declined, accepted, or made void by a hand-over or a deletion.
delete from notebook_offers where notebook_id = any(%(ids)s);

-- fragment: offer_json
json_build_object(
    'notebookId', n.id, 'notebookName', n.name, 'notebookStatus', n.status,
    'fromMember', json_build_object('id', f.id, 'name', f.name, 'email', f.email),
    'toMember', json_build_object('id', t.id, 'name', t.name, 'email', t.email),
    'offeredAt', o.created_at, 'expiresAt', o.expires_at
)

-- name: api_offer_body
-- The pending offer as the API answers it, to its recipient or to whoever
-- may see the notebook: one statement, so that whom it names is whom it was
-- judged on (a GET runs outside a transaction: a second statement could
-- read an offer made to someone else meanwhile).
select
-- include: offer_json
       ::text as body
  from notebook_offers o
  join notebooks n on n.id = o.notebook_id and n.member_id = o.from_member_id
  join members f on f.id = o.from_member_id
  join members t on t.id = o.to_member_id
 where o.notebook_id = %(id)s and o.organization_id = %(org_id)s and o.expires_at > %(now)s
   and n.deleted_at is null
   and (o.to_member_id = %(member_id)s or (true
-- include: caller_sees_notebook
       ));

-- name: api_offers_to_me_page
-- The offers made to the caller, newest first (`GET /me/offers`): pending,
-- by their notebook's present owner, of notebooks not being deleted.
with visible as not materialized (
    select o.*, o.notebook_id as id from notebook_offers o
      join notebooks n on n.id = o.notebook_id and n.member_id = o.from_member_id
     where o.to_member_id = %(member_id)s and o.expires_at > %(now)s and n.deleted_at is null
-- include: keyset_page
    coalesce((select json_agg(
-- include: offer_json
        order by o.rn)
      from rows o
      join notebooks n on n.id = o.notebook_id
      join members f on f.id = o.from_member_id
      join members t on t.id = o.to_member_id), '[]')::text as items;
