-- The organization's administration (api/audit.py, docs/api.md "Audit").

-- name: api_record_audit
insert into audit_events (organization_id, actor, token_id, action, target_type, target_id,
                          detail, request_id, created_at)
values (%(org_id)s, %(actor)s, %(token_id)s, %(action)s, %(target_type)s, %(target_id)s,
        %(detail)s::jsonb, %(request_id)s, %(now)s)
returning id;

-- fragment: audit_page_answer
-- After a statement's `keys` (entries with `rn`, newest first): the page, and
-- the members it names (who acted, and the members acted on), disabled ones
-- too, by name. A team or workload config it names (`targetName`, and a
-- membership's `teamName`) is named as it is now, or, deleted, by the last
-- name the audit recorded for it (its create or rename).
rows as (select * from keys where rn <= %(limit)s),
named as (
    select r.*,
           case r.target_type
               when 'team' then coalesce(
                   (select t.name from teams t where t.id = r.target_id),
                   (select a.detail ->> 'name' from audit_events a
                     where a.organization_id = %(org_id)s and a.target_type = 'team'
                       and a.target_id = r.target_id and a.detail ? 'name'
                     order by a.id desc limit 1))
               when 'workload_config' then coalesce(
                   (select c.name from workload_configs c where c.id = r.target_id),
                   (select a.detail ->> 'name' from audit_events a
                     where a.organization_id = %(org_id)s
                       and a.target_type = 'workload_config'
                       and a.target_id = r.target_id and a.detail ? 'name'
                     order by a.id desc limit 1))
           end as target_name,
           case when r.detail ? 'team' then coalesce(
               (select t.name from teams t where t.id = r.detail ->> 'team'),
               (select a.detail ->> 'name' from audit_events a
                 where a.organization_id = %(org_id)s and a.target_type = 'team'
                   and a.target_id = r.detail ->> 'team' and a.detail ? 'name'
                 order by a.id desc limit 1))
           end as team_name
      from rows r
)
select
    (select count(*) from keys) > %(limit)s as more,
    (select created_at from rows order by rn desc limit 1) as last_at,
    (select id::text from rows order by rn desc limit 1) as last_id,
    coalesce((select json_agg(json_build_object(
        'id', r.id::text, 'action', r.action, 'targetType', r.target_type,
        'targetId', r.target_id, 'targetName', r.target_name, 'teamName', r.team_name,
        'detail', r.detail, 'actor', r.actor, 'tokenId', r.token_id, 'createdAt', r.created_at
    ) order by r.rn) from named r), '[]')::text as items,
    coalesce((select json_agg(
-- include: included_member
    order by m.id) from members m
     where m.organization_id = %(org_id)s
       and (m.id in (select r.actor from rows r)
            or m.id in (select r.target_id from rows r where r.target_type = 'member')
            or m.id in (select r.detail ->> 'member' from rows r)
            or m.id in (select r.detail ->> 'memberId' from rows r))), '[]')::text as members,

-- name: api_audit
-- Off audit_events_org (organization_id, id).
with keys as (
    select a.*, row_number() over (order by a.id desc) as rn
      from audit_events a
     where a.organization_id = %(org_id)s
       and a.id < coalesce(%(after_id)s::bigint, 9223372036854775807)
     order by a.id desc
     limit %(fetch)s
),
-- include: audit_page_answer
    (select count(*) from (select 1 from audit_events a where a.organization_id = %(org_id)s
                            limit %(count_up_to)s) c) as total;

-- name: api_audit_by_actor
-- One member's acts, off audit_events_actor (organization_id, actor, id).
with keys as (
    select a.*, row_number() over (order by a.id desc) as rn
      from audit_events a
     where a.organization_id = %(org_id)s and a.actor = %(actor)s
       and a.id < coalesce(%(after_id)s::bigint, 9223372036854775807)
     order by a.id desc
     limit %(fetch)s
),
-- include: audit_page_answer
    (select count(*) from (select 1 from audit_events a
                            where a.organization_id = %(org_id)s and a.actor = %(actor)s
                            limit %(count_up_to)s) c) as total;
