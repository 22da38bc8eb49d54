-- A member's own usage (GET /me/usage, docs/api.md "Usage"): their notebooks,
-- a row marked deleted but not yet removed included (notebooks_member_order
-- holds only live ones), and their notebooks deleted for good, each found by
-- its owner rather than by reading the organization's.
-- Plain `create index`, as 0012 says why.
set local lock_timeout = '10s';

create index notebooks_member on notebooks (member_id);
create index deleted_notebooks_member on deleted_notebooks (member_id);
