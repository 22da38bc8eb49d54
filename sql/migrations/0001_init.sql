-- The service's schema. Forward-only; each file runs in one transaction.

create table organizations (
    id          text primary key,
    name        text not null,
    created_at  timestamptz not null default now()
);

create table members (
    id                  text primary key,
    organization_id     text not null references organizations (id),
    email               text not null,
    name                text not null,
    organization_admin  boolean not null default false,
    disabled_at         timestamptz,
    created_at          timestamptz not null default now(),
    unique (organization_id, email)
);

create table teams (
    id               text primary key,
    organization_id  text not null references organizations (id),
    name             text not null,
    created_at       timestamptz not null default now(),
    created_by       text references members (id),
    unique (organization_id, name)
);
create index teams_org_order on teams (organization_id, created_at desc, id desc);

create table team_memberships (
    team_id     text not null references teams (id) on delete cascade,
    member_id   text not null references members (id),
    role        text not null check (role in ('admin', 'editor', 'viewer')),
    created_at  timestamptz not null default now(),
    primary key (team_id, member_id)
);
create index team_memberships_member on team_memberships (member_id);

-- Bearer tokens: only a SHA-256 of the secret is kept; `prefix` is what a
-- member sees to tell tokens apart.
create table api_tokens (
    id            text primary key,
    member_id     text not null references members (id),
    name          text not null,
    prefix        text not null,
    secret_hash   bytea not null unique,
    created_at    timestamptz not null default now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
create index api_tokens_member on api_tokens (member_id, created_at desc, id desc);

create table workload_configs (
    id               text primary key,
    organization_id  text not null references organizations (id),
    name             text not null,
    description      text not null default '',
    mode             text not null default 'standalone' check (mode in ('standalone', 'cluster')),
    sail             jsonb not null default '{}',
    marimo           jsonb not null default '{}',
    workers          integer not null default 1 check (workers between 1 and 64),
    env              jsonb not null default '{}',
    created_at       timestamptz not null default now(),
    created_by       text references members (id),
    updated_at       timestamptz not null default now(),
    updated_by       text references members (id),
    unique (organization_id, name)
);
create index workload_configs_org_order on workload_configs (organization_id, created_at desc, id desc);

-- A notebook's desired state is what members asked for; its status is what
-- the reconciler observed. `generation` moves whenever the desired state
-- does, so a reconcile run can tell that it worked on stale intent.
create table notebooks (
    id                        text primary key,
    organization_id           text not null references organizations (id),
    member_id                 text not null references members (id),
    workload_config_id        text not null references workload_configs (id),
    name                      text not null,
    description               text not null default '',
    desired_state             text not null default 'stopped'
                              check (desired_state in ('running', 'stopped', 'deleted')),
    status                    text not null default 'stopped'
                              check (status in ('stopped', 'starting', 'running', 'idle',
                                                'detached', 'stopping', 'failed')),
    status_message            text not null default '',
    status_changed_at         timestamptz not null default now(),
    generation                bigint not null default 1,
    idle_timeout_seconds      integer not null default 3600,
    detached_timeout_seconds  integer not null default 14400,
    last_active_at            timestamptz,
    executing                 boolean not null default false,
    session_id                text,
    -- Marimo's per-session token: read by the proxy, never returned by the API.
    session_token             text,
    start_requested_at        timestamptz,
    start_deadline_at         timestamptz,
    -- Where the runtime put this session (ports, pids, pod names): backend-owned.
    runtime_state             jsonb not null default '{}',
    created_at                timestamptz not null default now(),
    created_by                text not null references members (id),
    updated_at                timestamptz not null default now(),
    updated_by                text not null references members (id),
    deleted_at                timestamptz,
    deleted_by                text references members (id),
    check (idle_timeout_seconds = 0 or idle_timeout_seconds between 300 and 604800),
    check (detached_timeout_seconds = 0 or detached_timeout_seconds between 300 and 604800)
);
create index notebooks_org_order on notebooks (organization_id, created_at desc, id desc)
    where deleted_at is null;
create index notebooks_member_order on notebooks (member_id, created_at desc, id desc)
    where deleted_at is null;
create index notebooks_config on notebooks (workload_config_id) where deleted_at is null;
create index notebooks_unsettled on notebooks (status, desired_state);

create table notebook_teams (
    notebook_id  text not null references notebooks (id) on delete cascade,
    team_id      text not null references teams (id) on delete cascade,
    created_at   timestamptz not null default now(),
    created_by   text references members (id),
    primary key (notebook_id, team_id)
);
create index notebook_teams_team on notebook_teams (team_id, notebook_id);

-- Who has a notebook open, from pings; the owner's presence decides edit vs view.
create table notebook_presence (
    notebook_id   text not null references notebooks (id) on delete cascade,
    member_id     text not null references members (id),
    last_seen_at  timestamptz not null,
    primary key (notebook_id, member_id)
);

-- Every status change, kept after the notebook is gone (no foreign key).
create table notebook_events (
    id               bigserial primary key,
    notebook_id      text not null,
    organization_id  text not null,
    from_status      text,
    to_status        text not null,
    reason           text not null default '',
    actor            text not null,
    created_at       timestamptz not null default now()
);
create index notebook_events_notebook on notebook_events (notebook_id, id);

-- Proxy login tokens are single-use across all proxy replicas.
create table used_proxy_tokens (
    jti          text primary key,
    notebook_id  text not null,
    member_id    text not null,
    expires_at   timestamptz not null,
    used_at      timestamptz not null default now()
);
create index used_proxy_tokens_expiry on used_proxy_tokens (expires_at);
