-- A copy of each notebook's file, kept by the reconciler (docs/api.md "A
-- notebook's file"): read from the notebook as it stops, and every few
-- minutes while it runs; written when it changed. A member downloads a stopped notebook's code without
-- starting it, and a start whose storage is gone (a PVC deleted, a data
-- directory lost) writes this copy in place of the template. One row per
-- notebook, replaced at each read; gone with the notebook's row. A table of
-- its own, as notebook_seeds: up to 512 KiB of text out of the rows every
-- list reads. A new table: no lock on any other.
set local lock_timeout = '10s';

create table notebook_files (
    notebook_id  text primary key references notebooks (id) on delete cascade,
    content      text not null,
    kept_at      timestamptz not null,  -- when this content was read (it changed then)
    session_id   text not null          -- the session it was read from
);
