-- Histories (api/history.py): a notebook's own, and the organization's
-- activity, every notebook's in one feed for its org admins (docs/api.md,
-- History and Activity). Each is read backwards by event id (the order they
-- were written) off an index from the marker, however long the history (it
-- is never pruned), `limit` + 1 fetched like the lists; `total` counts the
-- same events apart: a notebook's all, the organization's up to
-- `count_up_to` (counting a million events cost 50 ms of PostgreSQL's CPU a
-- page: bench/README.md, "The organization's activity"). A statement per
-- filter, each off its own index (one statement with optional filters would
-- get one generic plan for all).

-- fragment: event_page_answer
-- After a statement's `keys` (events with `rn`, newest first), before its
-- `total`: the page; who acted on it, by name (members of the organization,
-- disabled ones too; not "reconciler"); and, for the activity
-- (`with_notebooks`; a notebook's own history has no use for them), the
-- page's notebooks that are still there: a deleted one is named by the name
-- its events kept.
rows as (select * from keys where rn <= %(limit)s)
select
    (select count(*) from keys) > %(limit)s as more,
    (select created_at from rows order by rn desc limit 1) as last_at,
    (select id::text from rows order by rn desc limit 1) as last_id,
    coalesce((select json_agg(json_build_object(
        'id', r.id::text, 'notebookId', r.notebook_id, 'notebookName', r.notebook_name,
        'fromStatus', r.from_status, 'toStatus', r.to_status,
        'reason', r.reason, 'actor', r.actor, 'createdAt', r.created_at
    ) order by r.rn) from rows r), '[]')::text as items,
    coalesce((select json_agg(
-- include: included_member
    order by m.id) from members m
     where m.organization_id = %(org_id)s
       and m.id in (select r.actor from rows r)), '[]')::text as members,
    coalesce((select json_agg(
-- include: notebook_object
    order by r.id) from notebooks r
     where %(with_notebooks)s::boolean and r.organization_id = %(org_id)s
       and r.deleted_at is null
       and r.id in (select k.notebook_id from rows k)), '[]')::text as notebooks,

-- name: api_notebook_events
-- One notebook's history, off notebook_events_notebook (notebook_id, id); the
-- caller's access is checked first (api_notebook_visible). The activity's
-- `?notebook=` (an org admin's, a deleted notebook's too) reads it the same way.
with keys as (
    select e.*, row_number() over (order by e.id desc) as rn
      from notebook_events e
     where e.notebook_id = %(notebook_id)s and e.organization_id = %(org_id)s
       -- No marker: below any id a bigserial hands out.
       and e.id < coalesce(%(after_id)s::bigint, 9223372036854775807)
     order by e.id desc
     limit %(fetch)s
),
-- include: event_page_answer
    (select count(*) from notebook_events e
      where e.notebook_id = %(notebook_id)s and e.organization_id = %(org_id)s) as total;

-- name: api_org_events
-- The organization's activity, off notebook_events_org (organization_id, id).
with keys as (
    select e.*, row_number() over (order by e.id desc) as rn
      from notebook_events e
     where e.organization_id = %(org_id)s
       and e.id < coalesce(%(after_id)s::bigint, 9223372036854775807)
     order by e.id desc
     limit %(fetch)s
),
-- include: event_page_answer
    (select count(*) from (select 1 from notebook_events e
                            where e.organization_id = %(org_id)s
                            limit %(count_up_to)s) c) as total;

-- name: api_org_events_by_actor
-- One actor's acts (a member's id, or 'reconciler': the platform's), off
-- notebook_events_org_actor (organization_id, actor, id).
with keys as (
    select e.*, row_number() over (order by e.id desc) as rn
      from notebook_events e
     where e.organization_id = %(org_id)s and e.actor = %(actor)s
       and e.id < coalesce(%(after_id)s::bigint, 9223372036854775807)
     order by e.id desc
     limit %(fetch)s
),
-- include: event_page_answer
    (select count(*) from (select 1 from notebook_events e
                            where e.organization_id = %(org_id)s and e.actor = %(actor)s
                            limit %(count_up_to)s) c) as total;

-- name: api_notebook_events_by_actor
-- The activity's `?notebook=` and `?actor=` together: one actor's acts on one
-- notebook, off notebook_events_notebook, the actor a filter (at worst it
-- reads that notebook's history, never the organization's).
with keys as (
    select e.*, row_number() over (order by e.id desc) as rn
      from notebook_events e
     where e.notebook_id = %(notebook_id)s and e.organization_id = %(org_id)s
       and e.actor = %(actor)s
       and e.id < coalesce(%(after_id)s::bigint, 9223372036854775807)
     order by e.id desc
     limit %(fetch)s
),
-- include: event_page_answer
    (select count(*) from notebook_events e
      where e.notebook_id = %(notebook_id)s and e.organization_id = %(org_id)s
        and e.actor = %(actor)s) as total;
