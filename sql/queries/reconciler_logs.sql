-- The reconciler's reads and writes of notebooks' logs (reconciler/logs.py).

-- name: reconciler_keep_logs
-- A read of a session's logs, in place of the last; of the same session, a
-- component read before and not now keeps what was read (a teardown looked
-- at again while its pods terminate finds less). `live_only` (a member's
-- ask): only while that session is still the notebook's and runs, so a read
-- racing a stop never replaces what the stop's read, before its teardown,
-- kept. Only while the notebook's row stands.
insert into notebook_logs
       (notebook_id, captured_at, session_id, sail, sail_problem, marimo, marimo_problem)
select n.id, %(now)s, %(session_id)s, %(sail)s, %(sail_problem)s, %(marimo)s,
       %(marimo_problem)s
  from notebooks n
 where n.id = %(id)s
   and (not %(live_only)s
        or (n.session_id = %(session_id)s and n.status = any(%(live)s::text[])))
on conflict (notebook_id) do update
   set captured_at = excluded.captured_at, session_id = excluded.session_id,
       sail = case when excluded.sail is null and notebook_logs.session_id = excluded.session_id
                   then notebook_logs.sail else excluded.sail end,
       sail_problem = case when excluded.sail is null and notebook_logs.sail is not null
                            and notebook_logs.session_id = excluded.session_id
                           then notebook_logs.sail_problem else excluded.sail_problem end,
       marimo = case when excluded.marimo is null
                          and notebook_logs.session_id = excluded.session_id
                     then notebook_logs.marimo else excluded.marimo end,
       marimo_problem = case when excluded.marimo is null and notebook_logs.marimo is not null
                              and notebook_logs.session_id = excluded.session_id
                             then notebook_logs.marimo_problem else excluded.marimo_problem end;

-- name: reconciler_logs_asked
select requested_at from notebook_logs where notebook_id = %(id)s;

-- name: reconciler_answer_logs
-- The ask of `asked` answered (an ask after it stays waiting for its job).
update notebook_logs set answered_at = %(asked)s
 where notebook_id = %(id)s and (answered_at is null or answered_at < %(asked)s);
