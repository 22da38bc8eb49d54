-- The organization's activity (GET /events, docs/api.md "Activity"): every
-- notebook's history in one feed, newest first, for an org admin's audit,
-- optionally of one member's (or the platform's) acts alone.
--
-- Each event now keeps the notebook's name as it was then: a deleted
-- notebook's row is gone once its delete has finished, and its history, kept
-- forever, would otherwise name it by id alone. Events written before this
-- release have none (null): backfilling a million rows would hold every
-- status change behind this migration for its length.
--
-- Plain `create index` in the migration's transaction, as 0012 (which says
-- why); the build blocks status changes until it commits, seconds at 1M events.
set local lock_timeout = '10s';

alter table notebook_events add column notebook_name text;

-- api_org_events: the organization's events, newest first, read backwards
-- from the marker; and with `?actor=`, one actor's.
create index notebook_events_org on notebook_events (organization_id, id);
create index notebook_events_org_actor on notebook_events (organization_id, actor, id);
