-- An organization's caps on its notebooks' idle and detached timeouts
-- (PATCH /organization, docs/api.md "Timeout caps"), set by its org admins
-- to bound what a notebook left open costs: 0 is no cap, else the range of
-- a notebook's own timeout. The cap is applied where the timeout is
-- enforced (the reconciler), not written into the notebooks: no bulk update
-- behind the admin's save, and a raised cap gives each notebook back its own.
-- Columns with constant defaults and a check on a small table: no rewrite.
set local lock_timeout = '10s';

alter table organizations
    add column max_idle_timeout_seconds integer not null default 0
        check (max_idle_timeout_seconds = 0
               or max_idle_timeout_seconds between 300 and 604800),
    add column max_detached_timeout_seconds integer not null default 0
        check (max_detached_timeout_seconds = 0
               or max_detached_timeout_seconds between 300 and 604800);
