-- Copies of each notebook's file, kept by the reconciler (docs/api.md "A
-- notebook's file"): read from the notebook as it stops, and every few
-- minutes while it runs; a new version only when the file changed, the
-- newest 20 kept (common/notebook_file.py VERSIONS). A member downloads a
-- stopped notebook's code without starting it, or an earlier version of it
-- (a cell deleted, then saved over); a start whose storage is gone (a PVC
-- deleted, a data directory lost) writes the newest in place of the
-- template. Gone with the notebook's row. A table of its own, as
-- notebook_seeds: up to 512 KiB of text each, out of the rows every list
-- reads. A new table; its foreign key takes a brief lock on `notebooks`
-- (share row exclusive: writes to it wait for the create, not reads).
set local lock_timeout = '10s';

create table notebook_files (
    id           bigint generated always as identity primary key,  -- the version
    notebook_id  text not null references notebooks (id) on delete cascade,
    content      text not null,
    kept_at      timestamptz not null,  -- when this content was first read
    session_id   text not null          -- the session it was read from
);
-- A notebook's versions, newest first: the newest is what every read wants.
create index notebook_files_newest on notebook_files (notebook_id, id desc);
