-- The organization's usage by day (docs/api.md "Usage"): how long each
-- notebook held servers in each whole UTC day, once that day is settled (an
-- hour past its end: events a lagging clock stamped late are in by then).
-- A window's whole days are read from here, only its partial edges from the
-- history (a month of a million events took seconds, read from the history
-- alone). Written by the workers' housekeeping, and by a report that finds
-- a day or two missing; the history stays the truth (kept forever), and a
-- day here is what it said once settled. Seconds by notebook, not owner:
-- a notebook counts for its owner at the time of the report, as before.
-- New tables; no lock on any other.
set local lock_timeout = '10s';

create table usage_days (
    organization_id  text not null,
    day              date not null,
    notebook_id      text not null,
    seconds          float8 not null,
    primary key (organization_id, day, notebook_id)
);

-- A day rolled up, whether or not any notebook ran in it.
create table usage_days_settled (
    organization_id  text not null,
    day              date not null,
    rolled_at        timestamptz not null,
    primary key (organization_id, day)
);
