-- A notebook started from a file its member brought (POST /workloads/notebooks
-- with `source`, docs/api.md "Starting from a file"): the Marimo file its
-- first start writes in place of the template. Kept until the notebook first
-- runs (its file exists by then), then dropped in the transaction that
-- records it running; gone with the notebook's row. A table of its own keeps
-- up to 512 KiB of text out of the notebook rows every list reads.
set local lock_timeout = '10s';

create table notebook_seeds (
    notebook_id  text primary key references notebooks (id) on delete cascade,
    source       text not null
);
