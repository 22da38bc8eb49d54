-- The organization's usage (GET /usage, docs/api.md "Usage"): how long its
-- notebooks held servers in a window of time, read from their history.
-- Plain `create index`, as 0012 says why.
set local lock_timeout = '10s';

-- The window's events are found by time, not by reading the organization's
-- whole history (kept forever).
create index notebook_events_org_time on notebook_events (organization_id, created_at);

-- A notebook deleted for good: its row goes (reconciler_delete_notebook), this
-- stays, so a past window still counts it and its owner, however long after
-- it the notebook went (its history alone would not say it ran through a
-- window it has no event in, nor whose it was). One row per notebook ever
-- deleted, kept as its history is; no foreign keys, as notebook_events.
create table deleted_notebooks (
    id               text primary key,
    organization_id  text not null,
    member_id        text not null,
    name             text not null,
    created_at       timestamptz not null,
    gone_at          timestamptz not null
);
create index deleted_notebooks_org_gone on deleted_notebooks (organization_id, gone_at);
