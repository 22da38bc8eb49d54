-- The start deadline measures a worker's attempt, not the wait for one: a
-- start queued behind absent or busy workers must not fail untried. The
-- reconciler arms `start_deadline_at` at a session's first attempt (and at a
-- repair) and records here the session it armed it for; until this names
-- the notebook's current session, the deadline does not count. The API's
-- own value (request time + deadline) is then overwritten.

alter table notebooks add column start_deadline_session_id text;
