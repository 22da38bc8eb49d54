-- Webhooks (api/webhooks.py, docs/api.md "Webhooks"): an organization's,
-- set by its org admins. A webhook's secret is answered by its create only.

-- fragment: webhook_object
json_build_object(
    'id', w.id, 'url', w.url, 'description', w.description, 'statuses', w.statuses,
    'createdAt', w.created_at, 'createdBy', w.created_by,
    'previousSecretUntil', w.previous_until,
    'enabled', w.disabled_at is null, 'disabledAt', w.disabled_at,
    'disabledReason', w.disabled_reason
)

-- name: api_webhook_lock_org
-- Before a create counts the organization's webhooks: the organization's row,
-- so that two creates count one after the other (a statement of its own: a
-- statement that waited for the lock would count with the snapshot it took
-- before the wait). Starts under a running limit take the same lock, each
-- for a moment (api_lock_org_for_start).
select o.id from organizations o where o.id = %(org_id)s for no key update;

-- name: api_webhook_insert
-- At most `max_webhooks` an organization (its row locked, above).
with inserted as (
    insert into webhooks (id, organization_id, url, description, statuses, secret,
                          created_at, created_by)
    select %(id)s, %(org_id)s, %(url)s, %(description)s, %(statuses)s, %(secret)s, %(now)s,
           %(member_id)s
     where (select count(*) from webhooks w
             where w.organization_id = %(org_id)s) < %(max_webhooks)s
    returning *
)
select (
-- include: webhook_object
)::text as body
  from inserted w;

-- name: api_webhook_list
select count(*) as total,
       coalesce(json_agg(
-- include: webhook_object
       order by w.created_at, w.id), '[]')::text as items
  from webhooks w
 where w.organization_id = %(org_id)s;

-- name: api_webhook_update
-- What the edit sends (null: as it is); deliveries not sent yet go to the
-- URL as it is when they are sent; the statuses apply to changes from now.
-- `enabled` false disables it (one disabled already keeps its reason and
-- time) and holds its waiting deliveries; true enables it again: its days
-- of failures count from now, and of those held, the ones past their day
-- are given up, the rest are due now.
with before as (
    -- locked: a worker disabling it meanwhile is seen or waits, so what is
    -- held is released exactly when it was disabled
    select w.id, w.disabled_at from webhooks w
     where w.id = %(id)s and w.organization_id = %(org_id)s
       for no key update
), changed as (
    update webhooks w
       set url = coalesce(%(url)s, w.url),
           description = coalesce(%(description)s, w.description),
           statuses = coalesce(%(statuses)s, w.statuses),
           disabled_at = case %(enabled)s::boolean when true then null
                         when false then coalesce(w.disabled_at, %(now)s) else w.disabled_at end,
           disabled_reason = case %(enabled)s::boolean when true then null
                             when false then coalesce(w.disabled_reason, 'Disabled by '
                                 || (select m.name from members m where m.id = %(member_id)s)
                                 || '.')
                             else w.disabled_reason end,
           enabled_at = case when %(enabled)s::boolean and w.disabled_at is not null
                             then %(now)s else w.enabled_at end
      from before b
     where w.id = b.id
    returning w.*
), held as (
    update webhook_deliveries d set next_attempt_at = 'infinity'
      from before b
     where not %(enabled)s::boolean and b.disabled_at is null
       and d.webhook_id = b.id and d.status = 'pending'
), released as (
    update webhook_deliveries d
       set status = case when d.created_at < %(give_up_before)s then 'failed' else 'pending' end,
           last_error = case when d.created_at < %(give_up_before)s
                             then 'Given up while the webhook was disabled' else d.last_error end,
           next_attempt_at = %(now)s
      from before b
     where %(enabled)s::boolean and b.disabled_at is not null
       and d.webhook_id = b.id and d.status = 'pending'
)
select (
-- include: webhook_object
)::text as body
  from changed w;

-- name: api_webhook_rotate
-- A new secret; the one it replaces signs beside it until `previous_until`.
update webhooks w
   set previous_secret = w.secret, previous_until = %(previous_until)s, secret = %(secret)s
 where w.id = %(id)s and w.organization_id = %(org_id)s
returning (
-- include: webhook_object
)::text as body;

-- name: api_webhook_delete
delete from webhooks where id = %(id)s and organization_id = %(org_id)s returning id;

-- name: api_webhook_lock
-- The webhook's row, before a test is looked for and made (a statement of
-- its own: two tests asked for at once then look one after the other).
select w.id, w.disabled_at is not null as disabled from webhooks w
 where w.id = %(id)s and w.organization_id = %(org_id)s
   for no key update;

-- name: api_webhook_test
-- A test delivery (no event), due now: one at a time per webhook, so a
-- test asked for while one waits makes that one due now rather than
-- another (a loop of tests sends no stream of POSTs); one a worker is
-- sending now is answered as it is. After api_webhook_lock; no row when
-- there is no such webhook, and a null id when the waiting test was sent
-- in the moment between (the caller asks again).
with hook as (
    select w.id from webhooks w where w.id = %(id)s and w.organization_id = %(org_id)s
), waiting as (
    update webhook_deliveries d
       set next_attempt_at = least(d.next_attempt_at, %(now)s)
      from hook
     where d.webhook_id = hook.id and d.event_id is null and d.status = 'pending'
    returning d.id
), inserted as (
    insert into webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)
    select hook.id, null, %(now)s, %(now)s
      from hook
     where not exists (select 1 from webhook_deliveries d
                        where d.webhook_id = hook.id and d.event_id is null
                          and d.status = 'pending')
    returning id
)
select coalesce((select max(id) from inserted), (select max(id) from waiting))::text as id
  from hook;

-- name: api_webhook_deliveries
-- The webhook's newest deliveries, what each event was and how its sending
-- went; null when there is no such webhook.
select (select count(*) from webhooks w
         where w.id = %(id)s and w.organization_id = %(org_id)s) as found,
       coalesce((select json_agg(json_build_object(
           'id', d.id::text,
           'type', case when d.event_id is null then 'webhook.test'
                        else 'notebook.status_changed' end,
           'eventId', d.event_id::text, 'notebookId', e.notebook_id,
           'notebookName', e.notebook_name, 'toStatus', e.to_status, 'status', d.status,
           'attempts', d.attempts, 'lastAttemptAt', d.last_attempt_at,
           'nextAttemptAt', case when d.status = 'pending' and d.next_attempt_at <> 'infinity'
                                 then d.next_attempt_at end,
           'held', d.status = 'pending' and d.next_attempt_at = 'infinity',
           'responseStatus', d.response_status, 'lastError', d.last_error,
           'createdAt', d.created_at, 'deliveredAt', d.delivered_at
       ) order by d.id desc)
          from (select * from webhook_deliveries
                 where webhook_id = %(id)s
                   and exists (select 1 from webhooks w
                                where w.id = %(id)s and w.organization_id = %(org_id)s)
                 order by id desc limit %(limit)s) d
          left join notebook_events e on e.id = d.event_id), '[]')::text as items;
