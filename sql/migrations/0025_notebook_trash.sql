-- Recently deleted notebooks (docs/api.md "Recently deleted"): a notebook
-- deleted by mistake is brought back, its code and settings as they were,
-- for NOTEBOOKS_TRASH_DAYS (30) after it went. Written by the statement that
-- removes its row (reconciler_delete_notebook), from the newest copy of its
-- file (migration 0022) or the file it was brought as (0016); purged by the
-- workers' housekeeping once `kept_until` passes, or at once by whoever could
-- delete it (its owner then, an org admin, an admin now of one of its
-- teams). A table of its own: up to 512 KiB of text each, out of the
-- tombstones (deleted_notebooks, 0015) that usage reads, which stay forever.
-- No foreign keys, as the tombstones: the member, config and teams named may
-- be gone by the time it is brought back.
set local lock_timeout = '10s';

create table notebook_trash (
    notebook_id        text primary key,   -- the deleted notebook's (its tombstone's)
    organization_id    text not null,
    member_id          text not null,      -- its owner when it was deleted
    deleted_by         text,               -- who asked for the delete
    name               text not null,
    description        text not null,
    workload_config_id text not null,
    idle_timeout_seconds     integer not null,
    detached_timeout_seconds integer not null,
    team_ids           text[] not null,
    content            text not null,      -- its file
    file_kept_at       timestamptz not null,
    deleted_at         timestamptz not null,
    kept_until         timestamptz not null
);
-- A member's, or the organization's, newest first; and the purge's.
create index notebook_trash_org_deleted on notebook_trash (organization_id, deleted_at desc);
create index notebook_trash_kept_until on notebook_trash (kept_until);
