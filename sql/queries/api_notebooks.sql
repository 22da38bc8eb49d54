-- Notebooks as the REST API sees them. Reads build the response JSON in
-- PostgreSQL (one statement per page), so the API process does little work.
--
-- A page of notebooks is one of five statements (api/notebooks.py picks it),
-- each a plan of its own built for an org of 50k notebooks
-- (tests/integration/api/test_api_list_scale.py checks them, custom and
-- generic): the page's keys come off an index or from the caller's own small
-- set, never from sorting every notebook of the org. Keyset order: newest
-- first, (created_at, id) descending, from the marker given as one row
-- comparison an index scan takes as its bound (no marker: 'infinity').
-- `limit` + 1 keys are fetched: the extra one only says whether there is a
-- next page. From `rows` on, the four are one fragment
-- (`notebook_page_answer`, put in place when the queries are loaded), and
-- each stays under psycopg's 4096 bytes, past which it parses a statement
-- again on every call (a test checks; indentation is not sent, sql.sent):
-- keep comments out of the statements.
--   api_notebook_page_org: an org admin's, off notebooks_org_order;
--   api_notebook_page_member: a member's own (notebooks_member_order) and
--     those shared with the member's teams (team_memberships ->
--     notebook_teams), the visible set built from the member's side (a
--     notebook shared with two teams is one row: `distinct`; one both own
--     and shared, or shared twice: the `union` of the two folds it);
--   api_notebook_page_team: a team's, from notebook_teams_team;
--   api_notebook_page_owner: one member's (`?owner=`), notebooks_member_order;
--   api_notebook_describe: one notebook, by its key.
-- `materialized`: built once (for the page and `total`) from the index
-- named, never by walking the org's notebooks in order and probing each,
-- which a generic plan would otherwise pick for the order and the limit.

-- fragment: caller_sees_notebook
-- The condition, after a `where` on notebook `n`, that the caller may see it:
-- an org admin (`see_all`), its owner, or a member of a team it is shared
-- with. One text for describe and api_notebook_visible (a team's page is
-- its members' and org admins': the handler checks, and it sees them all).
       and (%(see_all)s
            or n.member_id = %(member_id)s
            or exists (select 1
                         from notebook_teams nt
                         join team_memberships tm on tm.team_id = nt.team_id
                        where nt.notebook_id = n.id and tm.member_id = %(member_id)s))

-- fragment: notebook_filters
-- A list's filters, after a `where` on notebook `n`: `?status=` and the
-- name search `?q=` (a plain substring, however capitalised: `strpos`, so
-- `%%` and `_` are plain characters). Off the same index as without them.
       and (%(st)s::text[] is null or n.status = any(%(st)s))
       and (%(q)s::text is null or strpos(lower(n.name), lower(%(q)s::text)) > 0)

-- fragment: notebook_page_answer
-- What the four page statements share, after their `keys` (id, created_at,
-- rn: `limit` + 1 of them) and before their own `total`: the page's rows and
-- the answer built from them (the items, the notebooks, and what they name).
rows as (
    select n.*, k.rn,
           array(select nt.team_id from notebook_teams nt
                  where nt.notebook_id = n.id order by nt.team_id) as team_ids
      from keys k
      join notebooks n on n.id = k.id
     where k.rn <= %(limit)s
)
select
    (select count(*) from keys) > %(limit)s as more,
    (select created_at from rows order by rn desc limit 1) as last_at,
    (select id from rows order by rn desc limit 1) as last_id,
    coalesce((select json_agg(json_build_object(
        'notebookId', r.id, 'teamIds', r.team_ids, 'workloadConfigId', r.workload_config_id
    ) order by r.rn) from rows r), '[]')::text as items,
    coalesce((select json_agg(
-- include: notebook_object
    order by r.rn) from rows r), '[]')::text as notebooks,
    coalesce((select json_agg(json_build_object(
        'id', t.id, 'organizationId', t.organization_id, 'name', t.name,
        'createdAt', t.created_at, 'createdBy', t.created_by
    ) order by t.id) from teams t
     where t.id in (select unnest(r.team_ids) from rows r)), '[]')::text as teams,
    coalesce((select json_agg(
-- include: config_object
    order by c.id) from workload_configs c
     where c.id in (select r.workload_config_id from rows r)), '[]')::text as configs,
    coalesce((select json_agg(
-- include: included_member
    order by m.id) from members m
     where m.id in (select r.member_id from rows r
                    union select r.created_by from rows r
                    union select r.updated_by from rows r)), '[]')::text as members,

-- name: api_notebook_page_org
with keys as (
    select n.id, n.created_at, row_number() over (order by n.created_at desc, n.id desc) as rn
      from notebooks n
     where n.organization_id = %(org_id)s and n.deleted_at is null
-- include: notebook_filters
       and (n.created_at, n.id) < (coalesce(%(after_at)s::timestamptz, 'infinity'),
                                   coalesce(%(after_id)s::text, ''))
     order by n.created_at desc, n.id desc
     limit %(fetch)s
),
-- include: notebook_page_answer
    (select count(*) from notebooks n
      where n.organization_id = %(org_id)s and n.deleted_at is null
-- include: notebook_filters
    ) as total;

-- name: api_notebook_page_member
with mine as not materialized (
    select n.id, n.created_at from notebooks n
     where n.member_id = %(member_id)s and n.organization_id = %(org_id)s
       and n.deleted_at is null
-- include: notebook_filters
), shared as materialized (
    select distinct n.id, n.created_at
      from team_memberships tm
      join notebook_teams nt on nt.team_id = tm.team_id
      join notebooks n on n.id = nt.notebook_id
     where tm.member_id = %(member_id)s and n.organization_id = %(org_id)s
       and n.deleted_at is null
-- include: notebook_filters
), after as not materialized (
    select coalesce(%(after_at)s::timestamptz, 'infinity') as at,
           coalesce(%(after_id)s::text, '') as id
), keys as (
    select v.id, v.created_at, row_number() over (order by v.created_at desc, v.id desc) as rn
      from ((select m.id, m.created_at from mine m, after a
              where (m.created_at, m.id) < (a.at, a.id)
              order by m.created_at desc, m.id desc limit %(fetch)s)
            union
            (select s.id, s.created_at from shared s, after a
              where (s.created_at, s.id) < (a.at, a.id)
              order by s.created_at desc, s.id desc limit %(fetch)s)) v
     order by v.created_at desc, v.id desc
     limit %(fetch)s
),
-- include: notebook_page_answer
    (select count(*) from (select id from mine union select id from shared) v) as total;

-- name: api_notebook_page_owner
-- `?owner=`: one member's notebooks, those of them the caller may see, off
-- notebooks_member_order (a member's own are few next to the org's).
with owned as materialized (
    select n.id, n.created_at from notebooks n
     where n.member_id = %(owner_id)s and n.organization_id = %(org_id)s
       and n.deleted_at is null
-- include: notebook_filters
-- include: caller_sees_notebook
), keys as (
    select o.id, o.created_at, row_number() over (order by o.created_at desc, o.id desc) as rn
      from owned o
     where (o.created_at, o.id) < (coalesce(%(after_at)s::timestamptz, 'infinity'),
                                   coalesce(%(after_id)s::text, ''))
     order by o.created_at desc, o.id desc
     limit %(fetch)s
),
-- include: notebook_page_answer
    (select count(*) from owned) as total;

-- name: api_notebook_page_team
with team as materialized (
    select n.id, n.created_at
      from notebook_teams t
      join notebooks n on n.id = t.notebook_id
     where t.team_id = %(team_id)s and n.organization_id = %(org_id)s
       and n.deleted_at is null
-- include: notebook_filters
), keys as (
    select t.id, t.created_at, row_number() over (order by t.created_at desc, t.id desc) as rn
      from team t
     where (t.created_at, t.id) < (coalesce(%(after_at)s::timestamptz, 'infinity'),
                                   coalesce(%(after_id)s::text, ''))
     order by t.created_at desc, t.id desc
     limit %(fetch)s
),
-- include: notebook_page_answer
    (select count(*) from team) as total;

-- name: api_notebook_describe
-- Notebook `notebook_id` as a one-item page, if `member_id` may see it.
with visible as (
    select n.id, n.created_at
      from notebooks n
     where n.organization_id = %(org_id)s
       and n.deleted_at is null
-- include: caller_sees_notebook
       and n.id = %(notebook_id)s::text
), keys as (
    select v.id, v.created_at, row_number() over (order by v.created_at desc, v.id desc) as rn
      from visible v
),
-- include: notebook_page_answer
    (select count(*) from visible) as total;

-- fragment: best_team_role
-- The best of the roles `tm.role` a member's teams give on a notebook
-- (admin > editor > viewer); null when none does.
       case max(case tm.role when 'admin' then 3 when 'editor' then 2 else 1 end)
         when 3 then 'admin' when 2 then 'editor' when 1 then 'viewer' end

-- fragment: caller_access
-- What `member_id` may do to notebook `n` ('owner', 'org_admin', 'admin',
-- 'editor', 'viewer'; null = may not see it), as `access`.
       case when n.member_id = %(member_id)s then 'owner'
            when %(org_admin)s then 'org_admin'
            else (select
-- include: best_team_role
                    from notebook_teams nt
                    join team_memberships tm on tm.team_id = nt.team_id
                   where nt.notebook_id = n.id and tm.member_id = %(member_id)s)
       end as access

-- name: api_notebook_access
-- The notebook with what `member_id` may do to it (caller_access), locked
-- for the request's transaction so concurrent start/stop serialize.
select n.status, n.status_message, n.desired_state, n.session_id, n.workload_config_id,
       n.member_id, n.name, n.description, n.idle_timeout_seconds, n.detached_timeout_seconds,
-- include: caller_access
  from notebooks n
 where n.id = %(id)s and n.organization_id = %(org_id)s and n.deleted_at is null
   for update of n;

-- name: api_notebook_team_access
-- The best role the member's teams give on the notebook, with those
-- memberships and the notebook's links to them share-locked (after the
-- notebook's own lock, api_notebook_access): removing the member from the
-- team, demoting them, or unsharing the notebook waits for this write, and a
-- write arriving after such a change sees it. Null: no team gives any.
with grants as (
    select tm.role
      from notebook_teams nt
      join team_memberships tm on tm.team_id = nt.team_id
     where nt.notebook_id = %(id)s and tm.member_id = %(member_id)s
       for share of nt, tm
)
select
-- include: best_team_role
       as access
  from grants tm;

-- name: api_notebook_visible
-- Whether `member_id` may see the notebook at all, as api_notebook_access
-- would say, without its row lock: for reads, which must not queue behind a
-- start or stop (nor hold one up).
select exists (
    select 1 from notebooks n
     where n.id = %(id)s and n.organization_id = %(org_id)s and n.deleted_at is null
-- include: caller_sees_notebook
) as visible;

-- name: api_insert_notebook
insert into notebooks (id, organization_id, member_id, workload_config_id, name, description,
                       idle_timeout_seconds, detached_timeout_seconds,
                       created_at, created_by, updated_at, updated_by, status_changed_at)
values (%(id)s, %(org_id)s, %(member_id)s, %(workload_config_id)s, %(name)s, %(description)s,
        %(idle_timeout_seconds)s, %(detached_timeout_seconds)s,
        %(now)s, %(member_id)s, %(now)s, %(member_id)s, %(now)s);

-- name: api_insert_seed
-- The file a notebook's first start writes (migration 0016).
insert into notebook_seeds (notebook_id, source) values (%(notebook_id)s, %(source)s);

-- name: api_new_owner
-- The member a notebook is handed to, if active in the org, key-share-locked
-- (as a foreign key check would): disabling them waits for the hand-over,
-- which a disabling committed first is seen by. With the previous owner's
-- name and email, for the history (names are not unique; emails are).
select m.id, m.name, m.email,
       (select o.name from members o where o.id = %(old_owner_id)s) as old_name,
       (select o.email from members o where o.id = %(old_owner_id)s) as old_email
  from members m
 where m.id = %(owner_id)s and m.organization_id = %(org_id)s and m.disabled_at is null
   for key share of m;

-- name: api_org_member
-- A member of the org, active or disabled (whose notebooks are handed on,
-- or stopped: api/stop_all.py), by name and email.
select id, name, email from members where id = %(id)s and organization_id = %(org_id)s;

-- name: api_lock_owned_notebooks
-- Every notebook a member owns, locked in id order (as one notebook's
-- writes lock it, so no cycle forms with them): all handed on at once.
select n.id, n.status, n.status_message, n.desired_state
  from notebooks n
 where n.member_id = %(owner_id)s and n.organization_id = %(org_id)s and n.deleted_at is null
 order by n.id
   for update;

-- name: api_hand_on_notebooks
update notebooks
   set member_id = %(new_owner_id)s, updated_at = %(now)s, updated_by = %(member_id)s
 where id = any(%(ids)s);

-- name: api_update_notebook
-- Only the fields passed as non-null change; a config change bumps generation.
update notebooks
   set name = coalesce(%(name)s, name),
       member_id = coalesce(%(owner_id)s, member_id),
       description = coalesce(%(description)s, description),
       idle_timeout_seconds = coalesce(%(idle_timeout_seconds)s, idle_timeout_seconds),
       detached_timeout_seconds = coalesce(%(detached_timeout_seconds)s, detached_timeout_seconds),
       workload_config_id = coalesce(%(workload_config_id)s, workload_config_id),
       generation = generation
                    + case when %(workload_config_id)s::text is not null
                            and %(workload_config_id)s::text <> workload_config_id
                           then 1 else 0 end,
       updated_at = %(now)s,
       updated_by = %(member_id)s
 where id = %(id)s;

-- name: api_request_start
update notebooks
   set desired_state = 'running',
       generation = generation + 1,
       session_id = %(session_id)s,
       session_token = %(session_token)s,
       start_requested_at = %(now)s,
       start_deadline_at = %(deadline)s,
       last_active_at = %(now)s,
       runtime_state = '{}',
       updated_at = %(now)s,
       updated_by = %(member_id)s
 where id = %(id)s;

-- name: api_lock_org_for_start
-- Starts under a running limit take the organization's row, then the owner's
-- (always in that order), before counting: concurrent starts competing for
-- the same slots wait here for one another. `no key update` does not block
-- foreign-key checks (key share): a start's own notebook updates, new
-- notebooks, pings and tokens referring to these rows go on.
select id from organizations where id = %(org_id)s for no key update;

-- name: api_lock_member_for_start
select id from members where id = %(owner_id)s for no key update;

-- name: api_running_counts
-- Notebooks that hold a running slot: desired running and not failed (a
-- stop, delete or auto-stop moves desired state, and frees it at once).
select count(*) filter (where member_id = %(owner_id)s) as member_running,
       count(*) as org_running
  from notebooks
 where organization_id = %(org_id)s
   and deleted_at is null
   and desired_state = 'running'
   and status in ('starting', 'running', 'idle', 'detached');

-- name: api_request_stop
-- Each of `ids` (locked by the caller): a member's stop, or all at once.
update notebooks
   set desired_state = 'stopped',
       generation = generation + 1,
       updated_at = %(now)s,
       updated_by = %(member_id)s
 where id = any(%(ids)s::text[]);

-- name: api_request_delete
update notebooks
   set desired_state = 'deleted',
       generation = generation + 1,
       deleted_at = %(now)s,
       deleted_by = %(member_id)s,
       updated_at = %(now)s,
       updated_by = %(member_id)s
 where id = %(id)s;

-- name: api_owner_present
-- Seen within the window, and since this session's start was asked for: an
-- owner who pinged, stopped the notebook and left is not present in the next.
select exists (select 1 from notebook_presence p
                 join notebooks n on n.id = p.notebook_id and n.member_id = p.member_id
                where p.notebook_id = %(id)s and p.last_seen_at >= %(since)s
                  and p.last_seen_at >= coalesce(n.start_requested_at, '-infinity')) as present;

-- name: api_record_presence
-- Coalesced: at most one write per member and notebook per `coalesce` window,
-- but always the first of a session (presence counts from its start: an
-- owner who stops and starts again within the window is present at once).
insert into notebook_presence (notebook_id, member_id, last_seen_at)
values (%(id)s, %(member_id)s, %(now)s)
on conflict (notebook_id, member_id) do update
   set last_seen_at = excluded.last_seen_at
 where notebook_presence.last_seen_at < %(stale_before)s
    or notebook_presence.last_seen_at < (select n.start_requested_at from notebooks n
                                          where n.id = notebook_presence.notebook_id);

-- name: api_touch_notebook_activity
update notebooks set last_active_at = %(now)s
 where id = %(id)s and (last_active_at is null or last_active_at < %(stale_before)s);

-- name: api_config_in_org
-- Key-share locked: a concurrent delete of the config waits for this
-- transaction, then sees the notebook and answers workload_config_in_use.
select id, name from workload_configs where id = %(id)s and organization_id = %(org_id)s
   for key share;

-- name: api_config_name
select name from workload_configs where id = %(id)s;

-- name: api_organization_limits
-- The organization's own running limits, read by each start, and its
-- timeout caps, read by each create and timeout edit (0: none), and its
-- defaults for a new notebook's timeouts (null: the platform's, migration
-- 0028). A change applies to the requests that begin after it commits.
select max_running_per_member, max_running, max_idle_timeout_seconds,
       max_detached_timeout_seconds, default_idle_timeout_seconds,
       default_detached_timeout_seconds
  from organizations where id = %(org_id)s;

-- name: api_notebook_file
-- The notebook's file as kept (migration 0022): its newest version, or the
-- one asked for (`version`); else, for the newest, before its first run the
-- file it was created from (0016). If the caller may see the notebook; one
-- row with nulls when there is none.
select n.name, coalesce(f.content, s.source) as content,
       case when f.id is not null then f.kept_at else n.created_at end as kept_at
  from notebooks n
  left join lateral (
      select x.id, x.content, x.kept_at from notebook_files x
       where x.notebook_id = n.id and (%(version)s::bigint is null or x.id = %(version)s)
       order by x.id desc limit 1) f on true
  left join notebook_seeds s on s.notebook_id = n.id and %(version)s::bigint is null
 where n.id = %(id)s and n.organization_id = %(org_id)s and n.deleted_at is null
-- include: caller_sees_notebook
;

-- name: api_notebook_file_versions
-- The versions kept of a notebook's file, newest first (at most
-- common/notebook_file.py VERSIONS); the caller's access checked before.
select count(*) as total, coalesce(json_agg(json_build_object(
           'version', f.id::text, 'keptAt', f.kept_at, 'sessionId', f.session_id,
           'bytes', octet_length(f.content), 'restoredFrom', f.restored_from
       ) order by f.id desc), '[]')::text as items
  from notebook_files f
 where f.notebook_id = %(id)s;

-- name: api_notebook_role
-- What the member may do to the notebook, as api_notebook_access says, for
-- reads: without its lock. No row: it may not see it.
select
-- include: caller_access
  from notebooks n
 where n.id = %(id)s and n.organization_id = %(org_id)s and n.deleted_at is null;

-- name: api_restore_file_version
-- An earlier version of the notebook's file made its newest again, and its
-- next start's seed, over the file in its storage (migration 0024): a new
-- version unless it is the newest already (then only the seed), pruned as a
-- copy is (reconciler_keep_file). `replaces` is the SHA-256 of the newest as
-- found: a file in the storage that is not it is kept beside. A second
-- restore before a start adds the first's version to `replaces` (a start
-- that failed may have written it). The notebook is locked and stopped or
-- failed (the caller checks). No row: no such version of this notebook's file.
with source as (
    select content, kept_at, session_id from notebook_files
     where notebook_id = %(id)s and id = %(version)s
), newest as (
    select content from notebook_files where notebook_id = %(id)s order by id desc limit 1
), added as (
    insert into notebook_files (notebook_id, content, kept_at, session_id, restored_from)
    select %(id)s, s.content, %(now)s, s.session_id, s.kept_at from source s
     where not exists (select 1 from newest where content = s.content)
    returning id
), pruned as (
    delete from notebook_files
     where notebook_id = %(id)s and exists (select 1 from added)
       and id not in (select id from notebook_files where notebook_id = %(id)s
                       order by id desc limit %(keep)s - 1)
), seeded as (
    insert into notebook_seeds (notebook_id, source, replaces)
    select %(id)s, s.content,
           (select encode(sha256(convert_to(content, 'UTF8')), 'hex') from newest)
      from source s
    on conflict (notebook_id) do update
       set source = excluded.source,
           replaces = concat_ws(' ', notebook_seeds.replaces,
                                encode(sha256(convert_to(notebook_seeds.source, 'UTF8')), 'hex'))
)
select kept_at from source;

-- name: api_forget_file_versions
-- All but the newest version of the notebook's file (a key pasted, then
-- taken out, stays in the earlier ones): how many went.
with gone as (
    delete from notebook_files
     where notebook_id = %(id)s
       and id < (select max(id) from notebook_files where notebook_id = %(id)s)
    returning id
)
select count(*) as forgotten from gone;

-- name: api_notebook_logs
-- A notebook's logs as a worker last read them (docs/api.md "A notebook's
-- logs"), and what the caller may do to it (caller_access; no row: it may
-- not see it). `body` is the answer. `waiting`: an ask not answered yet.
select
-- include: caller_access
     , json_build_object(
           'notebookId', n.id, 'status', n.status,
           'capturedAt', l.captured_at, 'sessionId', l.session_id,
           'requestedAt', l.requested_at,
           'waiting', coalesce(l.requested_at > coalesce(l.answered_at, '-infinity'), false),
           'sail', json_build_object('text', l.sail, 'problem', l.sail_problem),
           'marimo', json_build_object('text', l.marimo, 'problem', l.marimo_problem)
       )::text as body
  from notebooks n
  left join notebook_logs l on l.notebook_id = n.id
 where n.id = %(id)s and n.organization_id = %(org_id)s and n.deleted_at is null;

-- name: api_ask_notebook_logs
-- A member asks for the logs to be read now: the ask's time, and a row
-- (the caller enqueues a job), unless an ask made within `ask_seconds`
-- still waits (no row: that one's job answers this one too). Never at or
-- before the last answered ask (an API host's clock behind another's would
-- make it look answered at once).
insert into notebook_logs (notebook_id, requested_at) values (%(id)s, %(now)s)
on conflict (notebook_id) do update
   set requested_at = greatest(excluded.requested_at,
                               notebook_logs.answered_at + interval '1 millisecond')
 where notebook_logs.requested_at is null
    or notebook_logs.answered_at >= notebook_logs.requested_at
    or notebook_logs.requested_at
       <= excluded.requested_at - make_interval(secs => %(ask_seconds)s)
returning notebook_id;

-- name: api_code_search_candidates
-- What a code search may read: the notebooks the caller may see, each with
-- its newest kept version (or, never run, the file it was brought as) and
-- its size (octet_length reads a stored value's header, not its text), most
-- recently kept first. The caller keeps as many as its budget of bytes.
select n.id, f.version,
       to_json(coalesce(f.kept_at, n.created_at)) #>> '{}' as kept_at,  -- as JSON writes it
       coalesce(f.bytes, s.bytes) as bytes
  from notebooks n
  left join lateral (select v.id as version, v.kept_at, octet_length(v.content) as bytes
                       from notebook_files v where v.notebook_id = n.id
                      order by v.id desc limit 1) f on true
  left join lateral (select octet_length(x.source) as bytes from notebook_seeds x
                      where x.notebook_id = n.id and f.version is null) s on true
 where n.organization_id = %(org_id)s and n.deleted_at is null
-- include: caller_sees_notebook
   and (f.version is not null or s.bytes is not null)
 order by coalesce(f.kept_at, n.created_at) desc, n.id;

-- name: api_code_search
-- The texts chosen (`versions` of notebook_files, `seeds` by notebook id, in
-- the order `ordinals` give, most recently kept first) that hold `q` (both
-- lowercased by PostgreSQL alike: a literal, case-insensitive search), the
-- first `limit` + 1 of them: each with its first matching line (its number,
-- and the line from a little before the match, cut, without a CR) and how
-- many lines match. Each text is lowered once to find it, its lines only
-- for the few listed. `texts` is materialized: else the planner may push
-- the search into a scan of every version's text (a small organization's
-- table looks cheap to scan), lowering all of them.
with texts as materialized (
    select w.ordinal, v.notebook_id as id, v.content
      from unnest(%(versions)s::bigint[], %(version_ordinals)s::int[]) w(version, ordinal)
      join notebook_files v on v.id = w.version
    union all
    select w.ordinal, x.notebook_id, x.source
      from unnest(%(seeds)s::text[], %(seed_ordinals)s::int[]) w(id, ordinal)
      join notebook_seeds x on x.notebook_id = w.id
), found as (
    select t.* from texts t
     where strpos(lower(t.content), lower(%(q)s)) > 0
     order by t.ordinal
     limit %(limit)s + 1
), lines as (
    select f.id, f.ordinal, rtrim(l.line, E'\r') as line, l.n
      from found f
     cross join lateral unnest(string_to_array(f.content, E'\n')) with ordinality l(line, n)
     where strpos(lower(l.line), lower(%(q)s)) > 0
)
select coalesce(json_agg(json_build_object(
           'notebookId', f.id, 'name', n.name,
           'line', first.n,
           'text', substr(first.line,
                          greatest(1, strpos(lower(first.line), lower(%(q)s)) - %(before)s),
                          %(line_chars)s),
           'lines', (select count(*) from lines c where c.id = f.id)
       ) order by f.ordinal), '[]')::text as items
  from found f
  join notebooks n on n.id = f.id
 cross join lateral (select l.line, l.n from lines l where l.id = f.id
                      order by l.n limit 1) first;

-- name: api_lock_stoppable_notebooks
-- The notebooks a stop of everything stops: the organization's (one
-- member's, given `owner_id`) that are starting, running, idle or detached,
-- locked in id order; a row whose status changed while it waited for its
-- lock is judged again as it is then.
select n.id from notebooks n
 where n.organization_id = %(org_id)s and n.deleted_at is null
   and n.status = any(%(stoppable)s::text[])
   and (%(owner_id)s::text is null or n.member_id = %(owner_id)s)
 order by n.id
   for update of n;
