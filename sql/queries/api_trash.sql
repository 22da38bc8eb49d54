-- Recently deleted notebooks (api/trash.py, docs/api.md "Recently deleted",
-- migration 0025): what reconciler_delete_notebook kept of each, until its
-- `kept_until`. A member sees those they owned or deleted; an org admin
-- the organization's. Rows past `kept_until` are gone for every reader,
-- whether or not the workers' housekeeping has removed them yet.

-- fragment: trash_visible
-- The trash rows the caller may see, as `r`.
  from notebook_trash r
 where r.organization_id = %(org_id)s and r.kept_until > %(now)s
   and (%(org_admin)s or r.member_id = %(member_id)s or r.deleted_by = %(member_id)s)

-- name: api_trash_page
-- A page of them, the newest deletion first (the keyset's `created_at`).
with visible as (
    select r.notebook_id as id, r.deleted_at as created_at, r.*
-- include: trash_visible
-- include: keyset_page
    coalesce((select json_agg(json_build_object(
        'notebookId', r.notebook_id, 'name', r.name, 'description', r.description,
        'memberId', r.member_id, 'deletedBy', r.deleted_by, 'deletedAt', r.deleted_at,
        'keptUntil', r.kept_until, 'fileKeptAt', r.file_kept_at,
        'bytes', octet_length(r.content), 'workloadConfigId', r.workload_config_id,
        'teamIds', to_json(r.team_ids)
    ) order by r.rn) from rows r), '[]')::text as items,
    coalesce((select json_agg(
-- include: included_member
    order by m.id) from members m
     where m.organization_id = %(org_id)s
       and m.id in (select r.member_id from rows r
                    union select r.deleted_by from rows r)), '[]')::text as members;

-- name: api_trash_item
-- One the caller may see, locked for a bring-back or a forget (two at once:
-- one wins, the other finds none).
select r.notebook_id, r.name, r.member_id, r.workload_config_id, r.deleted_at,
       exists (select 1 from workload_configs c
                where c.id = r.workload_config_id and c.organization_id = r.organization_id)
           as config_exists
-- include: trash_visible
   and r.notebook_id = %(id)s
   for update of r;

-- name: api_trash_file
-- Its file, for a download (no lock: a read).
select r.name, r.content, r.file_kept_at
-- include: trash_visible
   and r.notebook_id = %(id)s;

-- name: api_bring_back
-- A new notebook of `owner_id`'s from the trash row `id` (taken out of the
-- trash): its name, description, timeouts and file (its first start's seed,
-- as a file brought in), shared again with its teams that still exist.
with t as (
    delete from notebook_trash where notebook_id = %(id)s returning *
), nb as (
    insert into notebooks (id, organization_id, member_id, workload_config_id, name,
                           description, idle_timeout_seconds, detached_timeout_seconds,
                           created_at, created_by, updated_at, updated_by, status_changed_at)
    select %(new_id)s, t.organization_id, %(owner_id)s, %(workload_config_id)s, t.name,
           t.description, t.idle_timeout_seconds, t.detached_timeout_seconds,
           %(now)s, %(member_id)s, %(now)s, %(member_id)s, %(now)s
      from t
), seeded as (
    insert into notebook_seeds (notebook_id, source) select %(new_id)s, t.content from t
)
insert into notebook_teams (notebook_id, team_id, created_at, created_by)
select %(new_id)s, tm.id, %(now)s, %(member_id)s
  from t join teams tm on tm.id = any(t.team_ids) and tm.organization_id = t.organization_id;

-- name: api_forget_trashed
delete from notebook_trash where notebook_id = %(id)s;
