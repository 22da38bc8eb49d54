-- The reconciler's housekeeping (reconciler/sweep.py, `purge_once`): rows
-- that can never be used again, deleted in bounded batches (%(limit)s) so a
-- backlog never holds locks long; rows another transaction holds are skipped
-- this time. Each query deletes rows older than %(before)s, a cutoff the
-- caller computes with each table's grace period.

-- name: reconciler_try_purge_lock
-- Held by the purging connection until reconciler_purge_unlock (or its end).
select pg_try_advisory_lock(%(key)s) as locked;

-- name: reconciler_purge_unlock
select pg_advisory_unlock(%(key)s);

-- name: reconciler_purge_api_tokens
-- Expired tokens (revoked or not): authenticate nothing, end what they
-- opened. Revoked tokens without an expiry are kept: the audit trail of a
-- member's credentials (`notebooks admin token list`), made by hand, few.
delete from api_tokens where id in (
    select id from api_tokens where expires_at < %(before)s
     order by expires_at limit %(limit)s for update skip locked);

-- name: reconciler_purge_used_proxy_tokens
-- A login's jti only needs remembering while its token could still be accepted.
delete from used_proxy_tokens where jti in (
    select jti from used_proxy_tokens where expires_at < %(before)s
     order by expires_at limit %(limit)s for update skip locked);

-- name: reconciler_purge_notebook_presence
-- A ping older than any presence window reads as no ping at all.
delete from notebook_presence p
 using (select notebook_id, member_id from notebook_presence
         where last_seen_at < %(before)s limit %(limit)s for update skip locked) old
 where p.notebook_id = old.notebook_id and p.member_id = old.member_id;

-- name: reconciler_purge_pgqueuer_log
-- pgqueuer's job log: rows already folded into pgqueuer_statistics. Only the
-- `pgq` tools read them (pgqueuer's own advice: prune after a day).
delete from pgqueuer_log where id in (
    select id from pgqueuer_log where aggregated and created < %(before)s
     order by created limit %(limit)s for update skip locked);

-- name: reconciler_purge_pgqueuer_statistics
-- Per-second job counts (no index on `created`: ids grow with time, so the
-- old rows are those below the first recent one, found by the primary key).
delete from pgqueuer_statistics where id in (
    select id from pgqueuer_statistics
     where id < coalesce((select min(id) from pgqueuer_statistics
                           where created >= %(before)s), 9223372036854775807)
     order by id limit %(limit)s for update skip locked);

-- name: reconciler_purge_notebook_trash
-- Deleted notebooks past the days they were kept to be brought back
-- (`kept_until`, set by reconciler_delete_notebook; migration 0025).
delete from notebook_trash where notebook_id in (
    select notebook_id from notebook_trash where kept_until < %(before)s
     order by kept_until limit %(limit)s for update skip locked);

-- name: reconciler_purge_webhook_deliveries
-- Webhook deliveries past their grace, however they went (a day at most
-- after their status change; the history's events stay; migration 0029).
delete from webhook_deliveries where id in (
    select id from webhook_deliveries where created_at < %(before)s
     order by created_at limit %(limit)s for update skip locked);
