-- The organization's administration, recorded (docs/api.md "Audit"): who
-- added, changed or disabled a member, made or revoked a token, changed a
-- team, a workload config, the organization's limits or a webhook; written
-- by the request's own transaction, so none is recorded that did not
-- happen and none happens unrecorded. Notebooks have their own history
-- (notebook_events). Names and ids only: never a secret value. No foreign
-- keys (members are never deleted; no lock on their tables).
set local lock_timeout = '10s';

create table audit_events (
    id               bigint generated always as identity primary key,
    organization_id  text not null,
    actor            text not null,         -- the member who acted
    token_id         text not null,         -- with which of their tokens
    action           text not null,         -- e.g. member.disabled (api/audit.py)
    target_type      text not null,         -- member, token, team, workload_config, …
    target_id        text not null,
    detail           jsonb not null default '{}',
    request_id       text,                  -- the request's X-Request-Id, to find its log line
    created_at       timestamptz not null
);
-- The organization's entries newest first, one member's acts, and the
-- last name recorded for a team or config (a deleted one's, on a page).
create index audit_events_org on audit_events (organization_id, id);
create index audit_events_actor on audit_events (organization_id, actor, id);
create index audit_events_target on audit_events (organization_id, target_type, target_id, id);
