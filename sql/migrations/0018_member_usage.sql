-- A member's own usage (GET /me/usage, docs/api.md "Usage"): their notebooks
-- (live ones off notebooks_member_order; a row marked deleted and not yet
-- removed off this first index, which holds only those, so the notebook
-- lists never prefer it over their ordered one), and their notebooks deleted
-- for good, each found by its owner rather than by reading the organization's.
-- Plain `create index`, as 0012 says why.
set local lock_timeout = '10s';

create index notebooks_member_deleting on notebooks (member_id) where deleted_at is not null;
create index deleted_notebooks_member on deleted_notebooks (member_id);
