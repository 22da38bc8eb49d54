-- Recently deleted notebooks (api/trash.py, docs/api.md "Recently deleted",
-- migration 0025): what reconciler_delete_notebook kept of each, until its
-- `kept_until`. Whoever could delete it sees it: its owner then, an org
-- admin, an admin now of a team it was shared with (a team admin removed
-- from the team since no longer reads its file, nor forgets it). Rows past
-- `kept_until` are gone for every reader, whether or not the workers'
-- housekeeping has removed them yet.

-- fragment: trash_visible
-- The trash rows the caller may see, as `r`.
  from notebook_trash r
 where r.organization_id = %(org_id)s and r.kept_until > %(now)s
   and (%(org_admin)s or r.member_id = %(member_id)s
        or exists (select 1 from team_memberships tm
                    where tm.member_id = %(member_id)s and tm.role = 'admin'
                      and tm.team_id = any(r.team_ids)))

-- name: api_trash_page
-- A page of them, the newest deletion first (the keyset's `created_at`).
with visible as (
    select r.notebook_id as id, r.deleted_at as created_at, r.notebook_id, r.name,
           r.description, r.member_id, r.deleted_by, r.deleted_at, r.kept_until,
           r.file_kept_at, octet_length(r.content) as bytes, r.workload_config_id, r.team_ids
-- include: trash_visible
-- include: keyset_page
    coalesce((select json_agg(json_build_object(
        'notebookId', r.notebook_id, 'name', r.name, 'description', r.description,
        'memberId', r.member_id, 'deletedBy', r.deleted_by, 'deletedAt', r.deleted_at,
        'keptUntil', r.kept_until, 'fileKeptAt', r.file_kept_at,
        'bytes', r.bytes, 'workloadConfigId', r.workload_config_id,
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
       r.idle_timeout_seconds, r.detached_timeout_seconds
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
-- trash): its name, description and file (its first start's seed, as a
-- file brought in), its timeouts as its organization's caps allow now
-- (the caller's), shared again with its teams that still exist.
with t as (
    delete from notebook_trash where notebook_id = %(id)s returning *
), nb as (
    insert into notebooks (id, organization_id, member_id, workload_config_id, name,
                           description, idle_timeout_seconds, detached_timeout_seconds,
                           created_at, created_by, updated_at, updated_by, status_changed_at)
    select %(new_id)s, t.organization_id, %(owner_id)s, %(workload_config_id)s, t.name,
           t.description, %(idle_timeout_seconds)s, %(detached_timeout_seconds)s,
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
