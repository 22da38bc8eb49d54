-- Status changes: the only writers of notebooks.status. Each records an event
-- (from, to, reason, actor, and the notebook's name then) in the same
-- statement, so no change goes unrecorded;
-- its reason is `reason`, or the status message when there is none (a running
-- notebook's message is empty, yet its history says why it runs);
-- an unchanged status records one only when asked (`record_unchanged`: a
-- delete of a notebook already stopping keeps who asked for it).
-- `updated_at` is not touched: with `updated_by` it names a member's last
-- change (a start, a stop, a rename); a status change has status_changed_at,
-- and its actor is in the event ("Updated now by Ann" after the platform
-- stopped the notebook named the wrong one).

-- Stamped never earlier than the notebook's last event (`at`): the writers'
-- clocks differ (API replicas, workers), and a write that waited for the
-- row's lock read its clock before the wait; so the history's times never run
-- backwards. (Not `updated_at`: a start or stop sets it to its own clock just
-- before, in the same transaction.) Every caller holds the row's lock
-- already, so this statement's snapshot sees the last event.

-- name: set_status
with old as (
    select n.id, n.organization_id, n.status, n.name,
           greatest(%(now)s::timestamptz,
                    (select max(e.created_at) from notebook_events e where e.notebook_id = n.id)) as at
      from notebooks n where n.id = %(id)s for update
), changed as (
    update notebooks n
       set status = %(status)s,
           status_message = %(status_message)s,
           status_changed_at = case when n.status <> %(status)s then old.at else n.status_changed_at end
      from old
     where n.id = old.id
    returning n.id
), event as (
    insert into notebook_events (notebook_id, organization_id, notebook_name, from_status, to_status,
                                 reason, actor, created_at)
    select old.id, old.organization_id, old.name, old.status, %(status)s,
           coalesce(%(reason)s::text, %(status_message)s), %(actor)s, old.at
      from old
     where old.status <> %(status)s or %(record_unchanged)s
    returning id
)
select (select count(*) from changed) as updated, (select count(*) from event) as events;

-- name: list_events
select id, notebook_id, from_status, to_status, reason, actor, created_at
  from notebook_events
 where notebook_id = %(notebook_id)s
 order by id;
