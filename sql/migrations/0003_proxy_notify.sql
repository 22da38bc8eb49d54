-- The session proxy caches who may reach which notebook's Marimo; these
-- triggers tell it (NOTIFY notebooks_proxy) when that may have changed, so a
-- revoked team or a stopped notebook ends proxied connections within
-- seconds. Payloads: 'notebook:<id>' or 'member:<id>'. Postgres folds
-- identical notifications of one transaction into one.

create function notebooks_proxy_notify_notebook() returns trigger
language plpgsql as $$
begin
    perform pg_notify('notebooks_proxy', 'notebook:' || coalesce(new.id, old.id));
    return null;
end $$;

create function notebooks_proxy_notify_notebook_team() returns trigger
language plpgsql as $$
begin
    perform pg_notify('notebooks_proxy', 'notebook:' || coalesce(new.notebook_id, old.notebook_id));
    return null;
end $$;

create function notebooks_proxy_notify_member() returns trigger
language plpgsql as $$
begin
    perform pg_notify('notebooks_proxy', 'member:' || coalesce(new.member_id, old.member_id));
    return null;
end $$;

create function notebooks_proxy_notify_member_row() returns trigger
language plpgsql as $$
begin
    perform pg_notify('notebooks_proxy', 'member:' || coalesce(new.id, old.id));
    return null;
end $$;

-- Only what the proxy reads: pings (last_active_at) stay silent.
create trigger notebooks_proxy_notify
after update of status, session_id, session_token, runtime_state, member_id, deleted_at
on notebooks
for each row
when (old.status is distinct from new.status
      or old.session_id is distinct from new.session_id
      or old.session_token is distinct from new.session_token
      or old.runtime_state is distinct from new.runtime_state
      or old.member_id is distinct from new.member_id
      or old.deleted_at is distinct from new.deleted_at)
execute function notebooks_proxy_notify_notebook();

create trigger notebooks_proxy_notify_delete
after delete on notebooks
for each row execute function notebooks_proxy_notify_notebook();

create trigger notebook_teams_proxy_notify
after insert or update or delete on notebook_teams
for each row execute function notebooks_proxy_notify_notebook_team();

create trigger team_memberships_proxy_notify
after insert or update or delete on team_memberships
for each row execute function notebooks_proxy_notify_member();

create trigger members_proxy_notify
after update of disabled_at, organization_admin, organization_id on members
for each row execute function notebooks_proxy_notify_member_row();
