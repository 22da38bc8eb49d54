-- An organization's defaults for its new notebooks' idle and detached
-- timeouts (PATCH /organization, docs/api.md "Timeout caps"), set by its org
-- admins: what a notebook created without one gets, under the caps as any
-- timeout is. Null is the platform's (1 h idle, 4 h detached); else 0
-- (never) or a timeout's own range, in whole minutes as the console sets it.
-- Nullable columns with a check on a small table: no rewrite.
set local lock_timeout = '10s';

alter table organizations
    add column default_idle_timeout_seconds integer
        check (default_idle_timeout_seconds = 0
               or (default_idle_timeout_seconds between 300 and 604800
                   and default_idle_timeout_seconds % 60 = 0)),
    add column default_detached_timeout_seconds integer
        check (default_detached_timeout_seconds = 0
               or (default_detached_timeout_seconds between 300 and 604800
                   and default_detached_timeout_seconds % 60 = 0));
