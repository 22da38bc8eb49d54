-- The reconciler's reads and writes of notebooks. Status itself changes only
-- through `set_status` (status.sql), which records the event.

-- name: reconciler_get_notebook
select n.id, n.organization_id, n.desired_state, n.status, n.status_message, n.generation,
       n.session_id, n.session_token, n.start_requested_at, n.start_deadline_at,
       n.start_deadline_session_id,
       n.last_active_at, n.executing, n.idle_timeout_seconds, n.detached_timeout_seconds,
       n.runtime_state, n.deleted_at, n.status_changed_at,
       c.mode, c.workers, c.env, c.secret_env, c.sail, c.marimo,
       (select max(p.last_seen_at) from notebook_presence p where p.notebook_id = n.id)
           as last_seen_at,
       exists (select 1 from notebook_seeds s where s.notebook_id = n.id) as seeded,
       (select f.kept_at from notebook_files f where f.notebook_id = n.id
         order by f.id desc limit 1) as file_kept_at,
       o.max_idle_timeout_seconds as idle_timeout_cap,
       o.max_detached_timeout_seconds as detached_timeout_cap
  from notebooks n
  join workload_configs c on c.id = n.workload_config_id
  join organizations o on o.id = n.organization_id
 where n.id = %(id)s;

-- name: reconciler_lock_generation
select generation, status, last_active_at from notebooks where id = %(id)s for update;

-- name: reconciler_newest_presence
-- Run after reconciler_lock_generation, in its transaction: a ping locks the
-- notebook's row before it writes presence, so this sees every ping that
-- started before the lock was taken (a statement of its own: read committed
-- takes a new snapshot, after the lock wait).
select max(last_seen_at) as last_seen_at from notebook_presence where notebook_id = %(id)s;

-- name: reconciler_arm_deadline
-- A pass's first attempt at a session (or a repair's first attempt): the
-- start deadline counts from now, for this session (migration 0009), unless
-- a member changed the notebook since the pass read it.
update notebooks
   set start_deadline_at = %(deadline)s, start_deadline_session_id = session_id
 where id = %(id)s and generation = %(generation)s
   and session_id is not distinct from %(session_id)s
returning start_deadline_at;

-- name: reconciler_provisioned_since
-- Has the notebook been running (idle, detached) since this time? A
-- repair's starting → running is no start: its session has. A change
-- that left the status as it was (an edit, a share) is no arrival.
select exists (
    select 1 from notebook_events e
     where e.notebook_id = %(id)s and e.created_at >= %(since)s
       and e.to_status in ('running', 'idle', 'detached')
       and e.from_status is distinct from e.to_status
) as provisioned;

-- name: reconciler_notebook_known
-- Did this database ever have the notebook? Its events outlive its row.
select exists (select 1 from notebook_events e where e.notebook_id = %(id)s) as known;

-- name: reconciler_update_observed
-- Skipped when nothing changes: the sweep looks at every provisioned notebook.
-- `disarm_deadline`: the notebook is healthy, so the start deadline of its
-- start or repair is over; the next repair (same session) arms its own.
update notebooks
   set runtime_state = %(runtime_state)s,
       executing = %(executing)s,
       last_active_at = case when %(touch)s then %(now)s else last_active_at end,
       session_id = case when %(clear_session)s then null else session_id end,
       session_token = case when %(clear_session)s then null else session_token end,
       start_deadline_at = case when %(disarm_deadline)s then null else start_deadline_at end,
       start_deadline_session_id = case when %(disarm_deadline)s then null
                                        else start_deadline_session_id end
 where id = %(id)s
   and (runtime_state is distinct from %(runtime_state)s
        or executing is distinct from %(executing)s
        or %(touch)s
        or (%(clear_session)s and (session_id is not null or session_token is not null))
        or (%(disarm_deadline)s
            and (start_deadline_at is not null or start_deadline_session_id is not null)));

-- name: reconciler_notebook_seed
-- What a start writes if the notebook has no file (up to 512 KiB): the file
-- it was created from, before its first run, or a version being restored,
-- which goes over the file (`replaces`, migration 0024); else the copy kept
-- of it, when its storage was lost (migration 0022). Read only by a pass
-- that creates what is missing of a session (ENSURE_RUNNING), and only when
-- the row says there is either (`seeded`, `file_kept_at`).
select coalesce(s.source, (select content from notebook_files where notebook_id = %(id)s
                            order by id desc limit 1)) as source,
       s.replaces
  from (select 1) one
  left join notebook_seeds s on s.notebook_id = %(id)s;

-- name: reconciler_keep_file
-- The notebook's file as the runtime read it just now: a new version if it
-- changed (an unchanged one is not written again: up to 512 KiB, every few
-- minutes per running notebook), and then only the newest `keep` kept.
-- Only while the notebook's row stands (a delete's pass reads nothing; a
-- copy racing it inserts nothing), and no restore waits for its start (a
-- failed start's teardown copy after it: the restored version stays the
-- newest, and that start keeps the file beside; migration 0024). The
-- delete runs on the statement's snapshot, without the new row: it keeps
-- `keep` - 1 of the older ones.
with newest as (
    select content from notebook_files where notebook_id = %(id)s order by id desc limit 1
), added as (
    insert into notebook_files (notebook_id, content, kept_at, session_id)
    select n.id, %(content)s, %(now)s, %(session_id)s from notebooks n
     where n.id = %(id)s and not exists (select 1 from newest where content = %(content)s)
       and not exists (select 1 from notebook_seeds s
                        where s.notebook_id = n.id and s.replaces is not null)
    returning id
)
delete from notebook_files
 where notebook_id = %(id)s and exists (select 1 from added)
   and id not in (select id from notebook_files where notebook_id = %(id)s
                   order by id desc limit %(keep)s - 1);

-- name: reconciler_drop_seed
-- The notebook runs, so its first file is written: the one it was created
-- from (migration 0016), or a version restored (0024), is no longer needed.
delete from notebook_seeds where notebook_id = %(id)s;

-- name: reconciler_auto_stop
-- The reconciler's own decision to stop (idle/detached timeout): desired
-- state moves, so generation moves; only if nobody changed it meanwhile: no
-- ping, and no new timeout (a member who just turned it off keeps it running)
-- nor cap (an org admin who just raised it, migration 0019): the
-- organization's row is share-locked, so a raise committing meanwhile is
-- waited for and seen (read committed re-reads a row it waited on).
-- Not `updated_at`: that (with `updated_by`) is a member's last change; the
-- platform's is in the event the stop records.
update notebooks n
   set desired_state = 'stopped', generation = generation + 1
 where id = %(id)s and generation = %(generation)s and desired_state = 'running'
   and last_active_at is not distinct from %(last_active_at)s
   and idle_timeout_seconds = %(idle_timeout_seconds)s
   and detached_timeout_seconds = %(detached_timeout_seconds)s
   and exists (select 1 from organizations o
                where o.id = n.organization_id
                  and o.max_idle_timeout_seconds = %(idle_timeout_cap)s
                  and o.max_detached_timeout_seconds = %(detached_timeout_cap)s
                  for share)
returning generation;

-- name: reconciler_delete_notebook
-- Its resources are gone: the row goes, and its history (kept forever) ends
-- by saying so, with the name it had, in the same statement: the activity
-- tells when a deleted notebook was gone for good, not only when its delete
-- was asked, and its usage (api_usage.sql) stops there: `stopped`, nothing
-- of it runs. Stamped no earlier than its last event (status.sql).
-- And a tombstone (deleted_notebooks: whose it was, when it went) for past
-- windows' usage; and, for `trash_days` (0: none), what brings it back
-- (notebook_trash, migration 0025): its newest file (or the one it was
-- brought as) and settings, read on the statement's snapshot, before the
-- delete's cascade. None for a notebook that never had a file of its own.
-- Its logs go too (notebook_logs: no foreign key, migration 0030).
with gone as (
    delete from notebooks where id = %(id)s and desired_state = 'deleted'
    returning id, organization_id, member_id, name, status, created_at, deleted_by,
              description, workload_config_id, idle_timeout_seconds, detached_timeout_seconds
), logs_gone as (
    delete from notebook_logs l using gone g where l.notebook_id = g.id
), stamped as (
    select g.*, greatest(%(now)s::timestamptz,
                         (select max(e.created_at) from notebook_events e
                           where e.notebook_id = g.id)) as at
      from gone g
), tombstone as (
    insert into deleted_notebooks (id, organization_id, member_id, name, created_at, gone_at)
    select s.id, s.organization_id, s.member_id, s.name, s.created_at, s.at from stamped s
), trashed as (
    insert into notebook_trash (notebook_id, organization_id, member_id, deleted_by, name,
                                description, workload_config_id, idle_timeout_seconds,
                                detached_timeout_seconds, team_ids, content, file_kept_at,
                                deleted_at, kept_until)
    select s.id, s.organization_id, s.member_id, s.deleted_by, s.name, s.description,
           s.workload_config_id, s.idle_timeout_seconds, s.detached_timeout_seconds,
           array(select t.team_id from notebook_teams t where t.notebook_id = s.id
                  order by t.team_id),
           f.content, f.kept_at, s.at, s.at + make_interval(days => %(trash_days)s::int)
      from stamped s
     cross join lateral (
           select c.content, c.kept_at from (
               (select x.content, x.kept_at, 0 as pick from notebook_files x
                 where x.notebook_id = s.id order by x.id desc limit 1)
               union all
               select b.source, s.created_at, 1 from notebook_seeds b
                where b.notebook_id = s.id) c
            order by c.pick limit 1) f
     where %(trash_days)s > 0
)
insert into notebook_events (notebook_id, organization_id, notebook_name, from_status, to_status,
                             reason, actor, created_at)
select s.id, s.organization_id, s.name, s.status, 'stopped', %(reason)s, 'reconciler', s.at
  from stamped s;

-- name: reconciler_sweep_unsettled
-- Notebooks whose status disagrees with their desired state (a start whose
-- deadline may have passed included), or that failed with something left
-- over (runtime_state is cleared once a teardown is done): the longest
-- waiting first.
select id from notebooks
 where desired_state = 'deleted'
    or (desired_state = 'running' and status in ('stopped', 'starting', 'stopping'))
    or (desired_state = 'stopped' and status not in ('stopped', 'failed'))
    or (status = 'failed' and runtime_state <> '{}'::jsonb)
 order by status_changed_at
 limit %(limit)s;

-- name: reconciler_sweep_page
-- The next page, by id after %(after)s, of every notebook a sweep looks at:
-- the unsettled ones above and the provisioned ones (health check, presence
-- and idle/detached timers are due every sweep). The sweeper walks the pages
-- and wraps around, so no notebook is starved however many there are.
select id from notebooks
 where id > %(after)s
   and (desired_state = 'deleted'
        or (desired_state = 'running' and status in ('stopped', 'starting', 'stopping'))
        or (desired_state = 'stopped' and status not in ('stopped', 'failed'))
        or (status = 'failed' and runtime_state <> '{}'::jsonb)
        or status in ('running', 'idle', 'detached'))
 order by id
 limit %(limit)s;

-- name: reconciler_sweep_orphans
-- Of the notebooks the runtime has something running for (%(ids)s, listed
-- before this query runs), those without a row, and those whose row says
-- nothing should run (`stopped`, or `failed` with its teardown seen done:
-- no sweep page looks at those; a stop given up on, a database restored).
-- `known`: this database once had the notebook (its events outlive the
-- row); an unknown one belongs to another database pointed at the same
-- data directory and is left alone.
select t.id, n.id is null as rowless,
       n.id is not null
       or exists (select 1 from notebook_events e where e.notebook_id = t.id) as known
  from unnest(%(ids)s::text[]) as t(id)
  left join notebooks n on n.id = t.id
 where n.id is null or n.status in ('stopped', 'failed')
 order by t.id;

-- name: reconciler_try_sweep_lock
select pg_try_advisory_xact_lock(%(key)s) as locked;

-- name: reconciler_claim_sweep
-- This round's sweep, unless another worker's swept less than `every` ago
-- (migration 0008); returns where the last page ended. A `swept_at` in the
-- future (the database's clock stepped back, a failover to a standby
-- behind) is no sweep at all: claimed, or nothing would sweep until then.
update sweep_state set swept_at = now()
 where singleton and (swept_at <= now() - %(every)s::interval or swept_at > now())
returning after;

-- name: reconciler_sweep_moved
update sweep_state set after = %(after)s where singleton;

-- name: reconciler_status_counts
select status, count(*) as n from notebooks where deleted_at is null group by status;

-- name: reconciler_queue_stats
select count(*) as queued,
       coalesce(extract(epoch from now() - min(created)), 0)::float8 as oldest_seconds
  from pgqueuer
 where status = 'queued' and entrypoint = 'reconcile' and execute_after <= now();

-- name: reconciler_job_held
-- Is this reconcile job still held (picked) by its worker?
select exists (select 1 from pgqueuer where id = %(job_id)s and status = 'picked') as held;

-- name: reconciler_job_errors
-- A held reconcile job's failed passes in a row, kept in its headers for its
-- next run's back-off: pgqueuer's `attempts` counts every requeue, failure or not.
-- (pgqueuer may store no headers as JSON null: only an object is merged into.)
update pgqueuer
   set headers = case when jsonb_typeof(headers) = 'object' then headers else '{}'::jsonb end
                 || jsonb_build_object('reconcile_errors', %(errors)s::int)
 where id = %(job_id)s and status = 'picked';

-- name: reconciler_get_generation
select generation from notebooks where id = %(id)s;
