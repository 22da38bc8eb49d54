-- A workload config's secret environment (docs/api.md "Secret environment"):
-- variables its org admins write and nobody reads back through the API
-- (credentials for a warehouse, an object store). The runtimes pass them to
-- Sail and Marimo as they pass `env`, on Kubernetes through the session's
-- Secret rather than the pod spec. A column with a constant default: no
-- rewrite.
set local lock_timeout = '10s';

alter table workload_configs
    add column secret_env jsonb not null default '{}'
        check (jsonb_typeof(secret_env) = 'object');
