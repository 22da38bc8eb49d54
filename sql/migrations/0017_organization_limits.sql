-- An organization's own running limits (GET/PATCH /organization, docs/api.md
-- "Running limits"), set by its org admins within the operator's
-- (NOTEBOOKS_MAX_RUNNING_PER_MEMBER / _PER_ORG): the tighter applies; 0 is no
-- limit of the organization's own. Columns with constant defaults and a check
-- on a small table: no rewrite.
set local lock_timeout = '10s';

alter table organizations
    add column max_running_per_member integer not null default 0
        check (max_running_per_member between 0 and 10000),
    add column max_running integer not null default 0
        check (max_running between 0 and 10000),
    add column updated_at timestamptz,
    add column updated_by text references members (id);
