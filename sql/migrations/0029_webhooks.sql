-- Webhooks (docs/api.md "Webhooks"): an organization's admins name URLs
-- that are told of its notebooks' status changes (a failed start, an
-- auto-stop), signed as Standard Webhooks sign them. A delivery is written by
-- the same statement that records the status change (a trigger on
-- notebook_events), so none is lost to a crash between the two; the
-- workers send it, at least once, and try again for a day. The events stay
-- the history; deliveries are purged after 30 days. No foreign key to
-- organizations (never deleted; none of 0026's tables has one): no lock on
-- it. The trigger's creation locks notebook_events against writes for the
-- moment it takes (status changes wait; lock_timeout bounds it).
set local lock_timeout = '10s';

create table webhooks (
    id               text primary key,
    organization_id  text not null,
    url              text not null,
    description      text not null default '',
    statuses         text[] not null,          -- the statuses told of; empty: every one
    secret           text not null,            -- whsec_…: signs each delivery; answered once
    -- The secret before the last rotation, still signing beside it until
    -- `previous_until`, so a receiver can change over without losing one.
    previous_secret  text,
    previous_until   timestamptz,
    created_at       timestamptz not null,
    created_by       text not null
);
create index webhooks_org on webhooks (organization_id, created_at);

create table webhook_deliveries (
    id               bigserial primary key,
    webhook_id       text not null references webhooks (id) on delete cascade,
    event_id         bigint,                   -- null: a test an org admin asked for
    status           text not null default 'pending'
                     check (status in ('pending', 'delivered', 'failed')),
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null,
    locked_until     timestamptz,              -- a worker is sending it until then
    last_attempt_at  timestamptz,
    response_status  integer,
    last_error       text,
    created_at       timestamptz not null,
    delivered_at     timestamptz
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at)
    where status = 'pending';
create index webhook_deliveries_webhook on webhook_deliveries (webhook_id, id desc);
create index webhook_deliveries_created on webhook_deliveries (created_at);

-- One delivery per webhook of the notebook's organization that asked for
-- the new status, for each status change (not a history entry that leaves
-- the status, such as an edit's).
create function notebook_events_webhooks() returns trigger
language plpgsql as $$
begin
    if new.from_status is distinct from new.to_status then
        insert into webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)
        select w.id, new.id, new.created_at, new.created_at
          from webhooks w
         where w.organization_id = new.organization_id
           and (cardinality(w.statuses) = 0 or new.to_status = any (w.statuses));
    end if;
    return null;
end
$$;

create trigger notebook_events_webhooks after insert on notebook_events
    for each row execute function notebook_events_webhooks();
