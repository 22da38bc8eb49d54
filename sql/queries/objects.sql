-- The JSON objects several answers share, one text each (docs/api.md names
-- their fields), each a `json_build_object(...)` over the alias it names.

-- fragment: notebook_object
-- A notebook, over a notebooks row `r` (a stopped or failed notebook's
-- session is over: no sessionId).
json_build_object(
    'id', r.id, 'organizationId', r.organization_id, 'memberId', r.member_id,
    'workloadConfigId', r.workload_config_id, 'name', r.name, 'description', r.description,
    'status', r.status, 'statusMessage', r.status_message,
    'idleTimeoutSeconds', r.idle_timeout_seconds,
    'detachedTimeoutSeconds', r.detached_timeout_seconds, 'lastActiveAt', r.last_active_at,
    'sessionId', case when r.status in ('stopped', 'failed') then null else r.session_id end,
    'createdAt', r.created_at, 'createdBy', r.created_by,
    'updatedAt', r.updated_at, 'updatedBy', r.updated_by
)

-- fragment: config_object
-- A workload config as the API shows it, over a workload_configs row `c`:
-- its secret variables by name only, their values never leave (0020).
json_build_object(
    'id', c.id, 'organizationId', c.organization_id, 'name', c.name,
    'description', c.description, 'mode', c.mode, 'sail', c.sail, 'marimo', c.marimo,
    'workers', c.workers, 'env', c.env,
    'secretEnvNames', coalesce((select json_agg(k order by k)
                                  from jsonb_object_keys(c.secret_env) k), '[]'),
    'teamIds', case when c.restricted then coalesce(
        (select json_agg(ct.team_id order by ct.team_id)
           from workload_config_teams ct where ct.config_id = c.id), '[]') end,
    'createdAt', c.created_at, 'createdBy', c.created_by,
    'updatedAt', c.updated_at, 'updatedBy', c.updated_by
)

-- fragment: included_member
-- A member as an answer's `included` names them, over a members row `m`
-- (disabled ones too, said so: a history names who acted, whoever they were).
json_build_object(
    'id', m.id, 'organizationId', m.organization_id, 'email', m.email, 'name', m.name,
    'organizationAdmin', m.organization_admin, 'disabled', m.disabled_at is not null
)
