-- A webhook disabled (docs/api.md "Webhooks"): by an org admin (a receiver
-- down for maintenance), or by the workers once none of its deliveries has
-- succeeded for days (a URL gone for good is not retried forever, and its
-- admins see why). A disabled webhook is told of nothing: no delivery is
-- made for it, and those waiting are not sent until it is enabled again.
-- Adding nullable columns without defaults only changes the catalogue, but
-- takes `webhooks` whole for that moment: every status change reads it (the
-- trigger), so the wait for it is short (2 s, then the upgrade says which
-- lock it waited for; run it again at a quieter moment).
set local lock_timeout = '2s';

alter table webhooks
    add column disabled_at      timestamptz,
    add column disabled_reason  text,
    -- when it was last enabled again (null: never disabled since its
    -- creation): days of failures are counted from here.
    add column enabled_at       timestamptz;

create or replace function notebook_events_webhooks() returns trigger
language plpgsql as $$
begin
    if new.from_status is distinct from new.to_status then
        insert into webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)
        select w.id, new.id, new.created_at, new.created_at
          from webhooks w
         where w.organization_id = new.organization_id
           and w.disabled_at is null
           and (cardinality(w.statuses) = 0 or new.to_status = any (w.statuses));
    end if;
    return null;
end
$$;
