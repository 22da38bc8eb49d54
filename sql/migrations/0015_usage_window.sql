-- The organization's usage (GET /usage, docs/api.md "Usage"): how long its
-- notebooks held servers in a window of time, read from their history. The
-- window's events are found by time, not by reading the organization's whole
-- history (kept forever). Plain `create index`, as 0012 says why.
set local lock_timeout = '10s';

create index notebook_events_org_time on notebook_events (organization_id, created_at);
