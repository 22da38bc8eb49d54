-- The organization's usage (api/usage.py, docs/api.md "Usage"): how long each
-- notebook held servers (its status one of `held`: starting, running, idle,
-- detached or stopping, common/statuses.py HOLDS_SERVERS) within a window
-- [from, until), read from the history: each status lasts from its event to
-- the notebook's next one; the window's own events come off
-- notebook_events_org_time. A notebook's status as the
-- window opens: its status now, if it has not changed since
-- (`status_changed_at`, stamped with each status change's event, is before
-- the window: most of a large organization's notebooks, idle for weeks);
-- else its last event before the window, one probe of
-- notebook_events_notebook_time each, for the rows changed since and those
-- deleted for good since (deleted_notebooks, migration 0015: one whose last
-- event is before the window has no event in it). One deleted for good ends
-- `stopped` at its last event (reconciler_delete_notebook). One whose row
-- went before tombstones were kept (a window before this release) counts
-- from its first event in the window to its last. Attributed to the
-- notebook's owner now, or when it went. A status as the window opens that
-- holds no servers is left out (it counts nothing, and ends nothing).
--
-- GET /me/usage (api_member_usage) is the same for one member's notebooks:
-- theirs now (live ones off notebooks_member_order, a row marked deleted but
-- not yet removed off notebooks_member_deleting, migration 0018) and those
-- deleted for good while theirs (deleted_notebooks_member); their events come off
-- notebook_events_notebook_time notebook by notebook, never the
-- organization's window. Both end with the fragment usage_answer, as does
-- api_org_usage_rolled (whole days from usage_days, migration 0026).

-- fragment: usage_used
-- The timeline's other branches, then the spans and each notebook's sum
-- (`used`), over the CTEs `inside` (the window's events), `probed`
-- (notebooks whose status as the window opens is looked up) and the
-- timeline's first branch.
    union all
    select p.id, b.to_status, %(from)s::timestamptz, 0::bigint
      from probed p
     cross join lateral (
           select e.to_status from notebook_events e
            where e.notebook_id = p.id and e.created_at < %(from)s
            order by e.created_at desc, e.id desc
            limit 1) b
     where b.to_status = any(%(held)s::text[])
    union all
    select i.notebook_id, i.to_status, i.created_at, i.id from inside i
), spans as (
    select t.notebook_id, t.status, t.at,
           coalesce(lead(t.at) over (partition by t.notebook_id order by t.at, t.seq),
                    case when n.id is null and d.id is null then t.at
                         else %(until)s::timestamptz end) as ends
      from timeline t
      left join notebooks n on n.id = t.notebook_id
      left join deleted_notebooks d on d.id = t.notebook_id
), used as (
    select sp.notebook_id, sum(extract(epoch from sp.ends - sp.at))::float8 as seconds
      from spans sp
     where sp.status = any(%(held)s::text[])
     group by sp.notebook_id

-- fragment: usage_answer
-- The answer from `used` (notebook_id, seconds): names, owners, sums.
), named as (
    select u.notebook_id, u.seconds, coalesce(n.member_id, d.member_id) as member_id,
           n.id is null or n.deleted_at is not null as deleted,
           coalesce(n.name, d.name, (select e.notebook_name from notebook_events e
                                      where e.notebook_id = u.notebook_id
                                        and e.notebook_name is not null
                                      order by e.created_at desc, e.id desc limit 1)) as name
      from used u
      left join notebooks n on n.id = u.notebook_id
      left join deleted_notebooks d on d.id = u.notebook_id
     where round(u.seconds) > 0
), owners as (
    select x.member_id, sum(x.seconds) as seconds, count(*) as notebooks
      from named x group by x.member_id
)
select
    coalesce((select sum(x.seconds) from named x), 0)::float8 as seconds,
    (select count(*) from named) as notebooks,
    coalesce((select json_agg(json_build_object(
        'memberId', o.member_id, 'seconds', round(o.seconds)::bigint, 'notebooks', o.notebooks
    ) order by o.seconds desc, o.member_id) from owners o), '[]')::text as by_member,
    coalesce((select json_agg(json_build_object(
        'notebookId', x.notebook_id, 'name', x.name, 'memberId', x.member_id,
        'deleted', x.deleted, 'seconds', round(x.seconds)::bigint
    ) order by x.seconds desc, x.notebook_id) from (
        select * from named order by seconds desc, notebook_id limit %(top)s) x), '[]')::text
        as by_notebook,
    coalesce((select json_agg(
-- include: included_member
    order by m.id) from members m
     where m.organization_id = %(org_id)s
       and m.id in (select o.member_id from owners o)), '[]')::text as members

-- name: api_org_usage
-- include: org_usage_used
-- include: usage_answer

-- fragment: org_usage_used
-- The organization's window, to each notebook's seconds (`used`).
with inside as materialized (
    select e.id, e.notebook_id, e.to_status, e.created_at
      from notebook_events e
     where e.organization_id = %(org_id)s
       and e.created_at >= %(from)s and e.created_at < %(until)s
), probed as materialized (
    select n.id from notebooks n
     where n.organization_id = %(org_id)s and n.created_at < %(until)s
       and n.status_changed_at >= %(from)s
    union
    select d.id from deleted_notebooks d
     where d.organization_id = %(org_id)s and d.gone_at >= %(from)s
       and d.created_at < %(until)s
), timeline as (
    select n.id as notebook_id, n.status, %(from)s::timestamptz as at, 0::bigint as seq
      from notebooks n
     where n.organization_id = %(org_id)s and n.status_changed_at < %(from)s
       and n.status = any(%(held)s::text[])
-- include: usage_used

-- name: usage_window_by_notebook
-- Each notebook's seconds in one of the organization's windows, as
-- api_org_usage reads them: a day to roll up, or a window's edge.
-- include: org_usage_used
)
select u.notebook_id, u.seconds from used u;

-- name: api_org_usage_rolled
-- The answer of api_org_usage for a window whose whole days [first_day,
-- end_day) are rolled up (usage_days, migration 0026): their sums, plus
-- its edges' seconds by notebook (`edge_ids`, `edge_seconds`, from
-- usage_window_by_notebook).
with used as (
    select x.notebook_id, sum(x.seconds)::float8 as seconds
      from (select d.notebook_id, d.seconds from usage_days d
             where d.organization_id = %(org_id)s
               and d.day >= %(first_day)s and d.day < %(end_day)s
            union all
            select e.id, e.seconds
              from unnest(%(edge_ids)s::text[], %(edge_seconds)s::float8[]) as e(id, seconds)) x
     group by x.notebook_id
-- include: usage_answer

-- name: usage_days_missing
-- The days of [first_day, end_day) not rolled up yet for the organization
-- (date arithmetic: no time zone in it). Days before it existed too: its
-- history is what it is (an event stamped by a clock behind the database's).
select %(first_day)s::date + g as day
  from generate_series(0, %(end_day)s::date - %(first_day)s::date - 1) g
 where not exists (select 1 from usage_days_settled s
                    where s.organization_id = %(org_id)s and s.day = %(first_day)s::date + g)
 order by 1;

-- name: usage_days_floor
-- The first day that may be rolled up: the one after deletions began to
-- leave tombstones (migration 0015). A notebook deleted before then counts
-- from its first event in a window to its last, so a window cut at a
-- midnight would lose its time across it: such days are read from the
-- history whole. A database made since: no such notebook, no floor.
select (m.applied_at at time zone 'UTC')::date + 1 as day
  from schema_migrations m
 where m.version = 15
   and exists (select 1 from schema_migrations f where f.version = 1
                and f.applied_at < m.applied_at - interval '1 minute');

-- name: usage_day_keep
-- One day's seconds by notebook, kept once (two writers at once: the first).
with kept as (
    insert into usage_days_settled (organization_id, day, rolled_at)
    values (%(org_id)s, %(day)s, %(now)s)
    on conflict do nothing
    returning day
)
insert into usage_days (organization_id, day, notebook_id, seconds)
select %(org_id)s, %(day)s, e.id, e.seconds
  from unnest(%(ids)s::text[], %(seconds)s::float8[]) as e(id, seconds)
 where exists (select 1 from kept)
on conflict do nothing;

-- name: usage_days_due
-- The housekeeping's: recent settled days of every organization not
-- rolled up yet, from the day before it existed (a clock behind the
-- database's may stamp its first events there) and after the day it is
-- rolled up through without a gap (usage_days_rolled_through, migration
-- 0027: one probe a day since, not a year of them), the newest first, a
-- bounded batch. A report reaching further back reads the history alone.
-- (The probes inside the lateral, bounded below by the search's first day:
-- the planner, guessing a thousand days per organization, merges them with
-- the organization's rolled-up days, which outside the lateral was the whole
-- usage_days_settled sorted, and unbounded a year of each organization's.)
select o.id as organization_id, d.day
  from organizations o
  left join usage_days_rolled_through r on r.organization_id = o.id
 cross join lateral (
       select lo.day + g as day
         from (select greatest(%(first_day)s::date,
                               (o.created_at at time zone 'UTC')::date - 1,
                               r.through + 1) as day) lo
        cross join generate_series(0, %(end_day)s::date - lo.day - 1) g
        where not exists (select 1 from usage_days_settled s
                           where s.organization_id = o.id and s.day >= lo.day
                             and s.day = lo.day + g)) d
 order by d.day desc, o.id
 limit %(limit)s;

-- name: usage_days_advance
-- Moves each organization's watermark to the day before its first day not
-- rolled up yet (the first from where it was, the housekeeping's first
-- day, or the day before the organization existed, whichever is last), or
-- to the last settled day if none is missing; never back, and no write
-- when it does not move. Organizations already through the last settled
-- day are not looked at.
insert into usage_days_rolled_through (organization_id, through)
select lo.organization_id,
       coalesce((select lo.day + g
                   from generate_series(0, %(end_day)s::date - lo.day - 1) g
                  where not exists (select 1 from usage_days_settled s
                                     where s.organization_id = lo.organization_id
                                       and s.day = lo.day + g)
                  order by g limit 1),
                %(end_day)s::date) - 1
  from (select o.id as organization_id,
               greatest(%(first_day)s::date, (o.created_at at time zone 'UTC')::date - 1,
                        r.through + 1) as day
          from organizations o
          left join usage_days_rolled_through r on r.organization_id = o.id
         where r.through is null or r.through < %(end_day)s::date - 1) lo
on conflict (organization_id) do update
   set through = excluded.through
 where excluded.through > usage_days_rolled_through.through;

-- name: api_member_usage
with mine as materialized (
    select n.id, n.status, n.status_changed_at from notebooks n
     where n.member_id = %(owner)s and n.organization_id = %(org_id)s
       and n.created_at < %(until)s and n.deleted_at is null
    union all
    select n.id, n.status, n.status_changed_at from notebooks n
     where n.member_id = %(owner)s and n.organization_id = %(org_id)s
       and n.created_at < %(until)s and n.deleted_at is not null
), gone as materialized (
    select d.id from deleted_notebooks d
     where d.member_id = %(owner)s and d.organization_id = %(org_id)s
       and d.gone_at >= %(from)s and d.created_at < %(until)s
), inside as materialized (
    select e.id, e.notebook_id, e.to_status, e.created_at
      from (select m.id from mine m union all select g.id from gone g) x
      join notebook_events e on e.notebook_id = x.id
     where e.created_at >= %(from)s and e.created_at < %(until)s
), probed as materialized (
    select m.id from mine m where m.status_changed_at >= %(from)s
    union
    select g.id from gone g
), timeline as (
    select m.id as notebook_id, m.status, %(from)s::timestamptz as at, 0::bigint as seq
      from mine m
     where m.status_changed_at < %(from)s and m.status = any(%(held)s::text[])
-- include: usage_used
-- include: usage_answer
