-- The output of each notebook's Sail and Marimo, kept by the reconciler
-- (docs/api.md "A notebook's logs"): read as the notebook stops (a member's
-- stop, an auto-stop, a failed start's teardown: on Kubernetes its pods and
-- their logs go with it) and when a member asks (POST …/logs, answered by a
-- worker: the API reaches no runtime). One row a notebook, the newest read
-- only: the last 64 KiB of each component's output. Gone with the notebook's
-- row: the statement that deletes it deletes them (reconciler_delete_notebook).
-- No foreign key: its creation would lock `notebooks` against writes for as
-- long as the upgrade's transaction lasts (pending migrations run in one).
create table notebook_logs (
    notebook_id   text primary key,
    -- When a member last asked for them to be read, and which of those asks
    -- a worker has answered (the ask's own time, not the worker's clock: a
    -- worker's clock behind the API's never leaves an ask unanswered).
    requested_at  timestamptz,
    answered_at   timestamptz,
    -- The read below: when (the worker's clock), from which session, and each
    -- component's output (null: none read, `*_problem` says why).
    captured_at   timestamptz,
    session_id    text,
    sail          text,
    sail_problem  text,
    marimo        text,
    marimo_problem text
);
