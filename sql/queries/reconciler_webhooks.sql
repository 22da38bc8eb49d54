-- Webhook deliveries (reconciler/webhooks.py, docs/api.md "Webhooks"):
-- claimed by one worker for a lease (a worker killed while sending leaves
-- it to another once the lease ends: at least once), sent, then recorded.

-- name: webhook_deliveries_claim
-- Due deliveries, oldest first, each with its webhook and its event as the
-- payload's data (the notebook's owner now, or when it was deleted); a
-- test (no event) says which webhook, and when it was asked for. None of a
-- disabled webhook (they wait for it to be enabled again).
with due as (
    select d.id from webhook_deliveries d
     where d.status = 'pending' and d.next_attempt_at <= %(now)s
       and (d.locked_until is null or d.locked_until <= %(now)s)
       and not exists (select 1 from webhooks w
                        where w.id = d.webhook_id and w.disabled_at is not null)
     order by d.next_attempt_at, d.id
     limit %(limit)s
       for update skip locked
), claimed as (
    update webhook_deliveries d
       set locked_until = %(now)s + make_interval(secs => %(lease)s),
           attempts = d.attempts + 1, last_attempt_at = %(now)s
      from due
     where d.id = due.id
    returning d.id, d.webhook_id, d.event_id, d.attempts, d.created_at, d.locked_until
)
select c.id, c.webhook_id, c.attempts, c.created_at, c.locked_until, w.url, w.secret,
       case when w.previous_until > %(now)s then w.previous_secret end as previous_secret,
       c.event_id is null as test,
       -- the payload's timestamp, as JSON writes the event's `createdAt` (digits and all)
       to_json(coalesce(e.created_at, c.created_at))::text as occurred,
       case when c.event_id is null then json_build_object(
           'webhookId', w.id, 'organizationId', w.organization_id, 'requestedAt', c.created_at
       ) else json_build_object(
           'id', e.id::text, 'organizationId', e.organization_id,
           'notebookId', e.notebook_id, 'notebookName', e.notebook_name,
           'ownerId', coalesce(n.member_id, t.member_id),
           'fromStatus', e.from_status, 'toStatus', e.to_status,
           'reason', e.reason, 'actor', e.actor, 'createdAt', e.created_at
       ) end::text as data
  from claimed c
  join webhooks w on w.id = c.webhook_id
  left join notebook_events e on e.id = c.event_id
  left join notebooks n on n.id = e.notebook_id
  left join deleted_notebooks t on t.id = e.notebook_id
 order by c.id;

-- name: webhook_delivery_sent
-- The receiver answered 2xx. Only under this claim's lease (`locked_until`
-- as claimed): a worker whose lease ran out while it sent leaves the
-- delivery to the one that claimed it since.
update webhook_deliveries
   set status = 'delivered', delivered_at = %(now)s, response_status = %(response_status)s,
       last_error = null, locked_until = null
 where id = %(id)s and status = 'pending' and locked_until = %(lease_until)s;

-- name: webhook_delivery_missed
-- Not delivered: tried again at `next_attempt_at`, or given up (null);
-- under this claim's lease, as above.
update webhook_deliveries
   set status = case when %(next_attempt_at)s::timestamptz is null then 'failed'
                     else 'pending' end,
       next_attempt_at = coalesce(%(next_attempt_at)s::timestamptz, next_attempt_at),
       response_status = %(response_status)s, last_error = %(error)s, locked_until = null
 where id = %(id)s and status = 'pending' and locked_until = %(lease_until)s;

-- name: webhook_disable_failing
-- A delivery given up: its webhook is disabled when its deliveries have
-- failed for `days`: one given up was made that long ago (since it was
-- created or last enabled), and none has succeeded since (a URL gone for
-- good; a quiet webhook's one day of misses is not that). Its waiting
-- deliveries are held (as an admin's disabling holds them). No row: it
-- stays enabled.
with disabled as (
    update webhooks w
       set disabled_at = %(now)s, disabled_reason = %(reason)s
     where w.id = %(webhook_id)s and w.disabled_at is null
       and exists (
           select 1 from webhook_deliveries f
            where f.webhook_id = w.id and f.status = 'failed'
              and f.created_at >= greatest(
                      coalesce(w.enabled_at, w.created_at),
                      (select max(d.delivered_at) from webhook_deliveries d
                        where d.webhook_id = w.id and d.status = 'delivered'))
              and f.created_at <= %(now)s - make_interval(days => %(days)s))
    returning w.id
), held as (
    update webhook_deliveries d set next_attempt_at = 'infinity'
      from disabled x
     where d.webhook_id = x.id and d.status = 'pending'
)
select id from disabled;
