-- Indexes for an organization at scale (50k notebooks, 5k members, 500 teams,
-- 1M history rows, 10k API tokens), each for a query that otherwise reads a
-- whole table; tests/integration/api/test_api_list_scale.py and
-- tests/integration/reconciler/test_sweep_scale.py check the plans.
--
-- Plain `create index`: a migration runs in one transaction, where
-- CONCURRENTLY is refused. Each build blocks writes to its table, and the
-- drop of notebooks_config every use of `notebooks`, until the migration
-- commits (a few seconds at that scale): so `notebooks` is touched last, and
-- a lock that cannot be had within 10 s (a long transaction in the way, with
-- every request queueing behind the wait) fails the migration, to be run
-- again, rather than stall the service.
set local lock_timeout = '10s';

-- reconciler_provisioned_since: a notebook's events since a time. History is
-- kept forever (never pruned), so it is found by index, not by reading it all.
create index notebook_events_notebook_time on notebook_events (notebook_id, created_at);

-- api_member_page and api_team_member_page: their filter and keyset order.
create index members_org_order on members (organization_id, created_at desc, id desc)
    where disabled_at is null;
create index team_memberships_team_order
    on team_memberships (team_id, created_at desc, member_id desc);

-- reconciler_purge_api_tokens: the expired ones, oldest first. Tokens
-- without an expiry (most of them) are never purged and stay out of it.
create index api_tokens_expiry on api_tokens (expires_at) where expires_at is not null;

-- The sweep (reconciler/sweep.py) every interval: the unsettled notebooks,
-- longest waiting first, and the next page of everything it looks at. Each
-- predicate is its query's WHERE (reconciler_sweep_unsettled,
-- reconciler_sweep_page) word for word: PostgreSQL uses a partial index only
-- when it can prove the query's condition implies the index's, so the two
-- must change together (a test compares them).
create index notebooks_sweep_unsettled on notebooks (status_changed_at)
 where desired_state = 'deleted'
    or (desired_state = 'running' and status in ('stopped', 'starting', 'stopping'))
    or (desired_state = 'stopped' and status not in ('stopped', 'failed'))
    or (status = 'failed' and runtime_state <> '{}'::jsonb);

create index notebooks_sweep_page on notebooks (id)
 where desired_state = 'deleted'
    or (desired_state = 'running' and status in ('stopped', 'starting', 'stopping'))
    or (desired_state = 'stopped' and status not in ('stopped', 'failed'))
    or (status = 'failed' and runtime_state <> '{}'::jsonb)
    or status in ('running', 'idle', 'detached');

-- api_config_in_use asks about soft-deleted notebooks too, and so does the
-- foreign-key check when a config is deleted: the index 0001 made skipped them.
drop index notebooks_config;
create index notebooks_config on notebooks (workload_config_id);
