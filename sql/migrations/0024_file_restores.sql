-- Restoring an earlier version of a notebook's file (docs/api.md "Restoring
-- a version"): the version becomes the notebook's seed, which its next start
-- writes over the file in its storage, not only where there is none.
-- `replaces` holds the SHA-256s (hex, space-separated) of the files the
-- restore may replace: the newest copy as it found it (and an earlier
-- restore's version, not started yet); a file in the storage that is none
-- of them holds edits no copy has (a stop whose copy failed), and is kept
-- beside, never overwritten. Null: a seed that writes only where there is
-- no file (a notebook brought as a file, a lost storage's copy).
-- A restored version says which version it came from, by that one's time
-- (an earlier version may be forgotten or pruned). Nullable columns without
-- defaults: no rewrite, every older row as it was.
set local lock_timeout = '10s';

alter table notebook_seeds add column replaces text;
alter table notebook_files add column restored_from timestamptz;
