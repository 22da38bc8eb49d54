"""Workload configs (supporting endpoints). Edits apply to a notebook's
next start; a running notebook keeps the resources it was started with."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from api.config_teams import TEAM_IDS_FIELD, set_config_teams
from api.context import Ctx
from api.errors import BadRequest, Conflict, NotFound, config_name_taken
from api.notebooks import check_teams
from api.responses import no_content, page_params, plain_list, raw_json
from api.teams import require_org_admin
from api.validation import name_schema, obj, path_id, read_body, text_schema
from common.ids import new_id
from common.images import IMAGE_PATTERN, image_allowed
from common.platform_env import platform_env_key

# Kubernetes quantities, as its API server parses them: cores or whole
# millicores; bytes with a binary or decimal suffix (a lowercase `k`).
CPU_PATTERN = r"^([0-9]{1,6}(\.[0-9]{1,3})?|[0-9]{1,9}m)$"
MEMORY_PATTERN = r"^[0-9]{1,13}(Ki|Mi|Gi|Ti|k|M|G|T)?$"
RESOURCES_SCHEMA = obj(
    {
        "image": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": IMAGE_PATTERN},
        "cpu": {"type": "string", "maxLength": 32, "pattern": CPU_PATTERN},
        "memory": {"type": "string", "maxLength": 32, "pattern": MEMORY_PATTERN},
    }
)
# Bounds a server can start within and a cluster can schedule: a zero would
# be no limit at all on a pod (and count nothing against a quota).
CPU_MILLICORES = (1, 256_000)
MEMORY_BYTES = (64 * 2**20, 2**40)  # 64Mi .. 1Ti
_MEMORY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
# All of a config's env, names and values: one environment string per
# variable must stay far below Linux's 128 KiB, and on Kubernetes the whole
# env also travels inside the worker pod template of cluster mode.
ENV_MAX_BYTES = 32 * 1024
ENV_MAX_NAMES = 64
ENV_VALUE_SCHEMA = text_schema(4096)
ENV_SCHEMA = {
    "type": "object",
    "maxProperties": ENV_MAX_NAMES,
    "propertyNames": {"type": "string", "maxLength": 128, "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": ENV_VALUE_SCHEMA,
}
# An edit of the secret environment names only what changes: a value sets
# one, null removes one (RFC 7396, as a merge patch), since the values
# cannot be read back to send the rest again.
SECRET_ENV_EDIT_SCHEMA = {
    **ENV_SCHEMA,
    "additionalProperties": {**ENV_VALUE_SCHEMA, "type": ["string", "null"]},
}
FIELDS: dict[str, Any] = {
    "name": name_schema(128),
    "description": text_schema(2000),
    "mode": {"type": "string", "enum": ["standalone", "cluster"]},
    "sail": RESOURCES_SCHEMA,
    "marimo": RESOURCES_SCHEMA,
    "workers": {"type": "integer", "minimum": 1, "maximum": 64},
    "env": ENV_SCHEMA,
}
CREATE_SCHEMA = obj(
    {**FIELDS, "secretEnv": ENV_SCHEMA, "teamIds": TEAM_IDS_FIELD}, required=("name",)
)
UPDATE_SCHEMA = obj({**FIELDS, "secretEnv": SECRET_ENV_EDIT_SCHEMA, "teamIds": TEAM_IDS_FIELD})


def millicores(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else round(float(cpu) * 1000)


def memory_bytes(memory: str) -> int:
    digits = memory.rstrip("KiMGTk")
    return int(digits) * _MEMORY_UNITS[memory[len(digits) :]]


# Per quantity: its amount, the bounds of that amount, and the bounds as said.
_QUANTITIES = {
    "cpu": (millicores, CPU_MILLICORES, "1m to 256 (cores)"),
    "memory": (memory_bytes, MEMORY_BYTES, "64Mi to 1Ti"),
}


def secret_env_after(before: dict[str, str], edit: dict[str, str | None]) -> dict[str, str]:
    """The secret environment once `edit` (a create's map, or an edit's merge
    patch: null removes) is applied to `before` (pure)."""
    after = dict(before)
    for name, value in edit.items():
        if value is None:
            after.pop(name, None)
        else:
            after[name] = value
    return after


def check_environment(
    body: dict[str, Any], env: dict[str, str], secret_env: dict[str, str]
) -> None:
    """A config's environment as a create or an edit (`body`) leaves it
    (`env`, `secret_env`): no name the platform sets among those the body
    sets (a row from before that rule keeps its own: the runtimes drop them,
    and an edit of its description must not fail on them); and, when the
    body touches either map, none in both, at most ENV_MAX_NAMES secret
    ones (merge patches add up) and ENV_MAX_BYTES in all."""
    sets = [("env", name) for name in body.get("env", {})]
    sets += [("secretEnv", k) for k, v in body.get("secretEnv", {}).items() if v is not None]
    for field, name in sets:
        if platform_env_key(name):
            raise BadRequest(
                f"{field}.{name} is set by the platform (where Sail is, its mode and cluster).",
                code="reserved_name",
                field=f"{field}.{name}",
            )
    if "env" not in body and "secretEnv" not in body:
        return
    if len(secret_env) > ENV_MAX_NAMES:
        raise BadRequest(
            f"secretEnv would hold more than {ENV_MAX_NAMES} variables.",
            code="out_of_range",
            field="secretEnv",
        )
    for name in sorted(env.keys() & secret_env.keys()):
        raise BadRequest(
            f"{name} is in both env and secretEnv: a variable is one or the other.",
            code="invalid_value",
            field=f"secretEnv.{name}",
        )
    both = list(env.items()) + list(secret_env.items())
    if sum(len(k.encode()) + len(v.encode()) + 2 for k, v in both) > ENV_MAX_BYTES:
        raise BadRequest(
            f"env and secretEnv are larger than {ENV_MAX_BYTES // 1024} KiB in all.",
            code="out_of_range",
            field="secretEnv" if secret_env else "env",
        )


def check_config(body: dict[str, Any], allowed_images: tuple[str, ...]) -> None:
    """What the schema cannot say about a valid config body (after it)."""
    for component in ("sail", "marimo"):
        resources = body.get(component, {})
        if "image" in resources and not image_allowed(resources["image"], allowed_images):
            raise BadRequest(
                f"{component}.image is not among the images this installation allows"
                f" ({', '.join(allowed_images)}).",
                code="image_not_allowed",
                field=f"{component}.image",
            )
        for key, (amount, (low, high), bounds) in _QUANTITIES.items():
            if key in resources and not low <= amount(resources[key]) <= high:
                raise BadRequest(
                    f"{component}.{key} must be from {bounds}.",
                    code="out_of_range",
                    field=f"{component}.{key}",
                )


def in_use_detail(live: int) -> str:
    """Why a config cannot go, and what the admin can do about it."""
    if not live:
        # Only deleted notebooks still hold it, until the reconciler has
        # removed their resources.
        return (
            "A deleted notebook that used this workload config is still being removed;"
            " try again in a minute."
        )
    users = "1 notebook uses" if live == 1 else f"{live} notebooks use"
    return (
        f"{users} this workload config; give them another one (while stopped) or delete them first."
    )


async def config_page(ctx: Ctx, **params: Any) -> dict[str, Any]:
    base = {"config_id": None, "limit": 100, "fetch": 101, "after_at": None, "after_id": None}
    row = await ctx.one("api_config_page", {**ctx.mine(), **base, **params})
    assert row is not None
    return row


async def _one(ctx: Ctx, config_id: str, status: int = 200) -> web.Response:
    row = await config_page(ctx, config_id=config_id, limit=1, fetch=1)
    if row["total"] == 0:
        raise NotFound("No such workload config.", field="config")
    return raw_json(row["items"][1:-1], status)


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


async def list_configs(ctx: Ctx) -> web.Response:
    scope = f"configs:{ctx.me.organization_id}"
    row = await config_page(ctx, **page_params(ctx, scope))
    return plain_list(ctx, scope, row)


async def get_config(ctx: Ctx) -> web.Response:
    return await _one(ctx, path_id(ctx.request, "config"))


async def create_config(ctx: Ctx) -> web.Response:
    require_org_admin(ctx)  # first: a refusal's detail (allowed images) is the admins'
    body = await read_body(ctx.request, CREATE_SCHEMA)
    check_config(body, ctx.settings.allowed_images)
    secret_env = secret_env_after({}, body.get("secretEnv", {}))
    check_environment(body, body.get("env", {}), secret_env)
    team_ids = await _team_ids(ctx, body)
    config_id = new_id()
    inserted = await ctx.one(
        "api_insert_config",
        ctx.mine(
            id=config_id,
            name=body["name"],
            description=body.get("description", ""),
            mode=body.get("mode", "standalone"),
            sail=Jsonb(body.get("sail", {})),
            marimo=Jsonb(body.get("marimo", {})),
            workers=body.get("workers", 1),
            env=Jsonb(body.get("env", {})),
            secret_env=Jsonb(secret_env),
        ),
    )
    if inserted is None:
        raise config_name_taken()
    if "teamIds" in body:
        await set_config_teams(ctx, config_id, team_ids)
    return await _one(ctx, config_id, 201)


async def _team_ids(ctx: Ctx, body: dict[str, Any]) -> list[str] | None:
    """Who may use it, as the body says (teams of the organization's), or
    None: everyone, or the body does not say."""
    if "teamIds" not in body:
        return None
    team_ids = body["teamIds"]
    return None if team_ids is None else await check_teams(ctx, team_ids)


async def update_config(ctx: Ctx) -> web.Response:
    config_id = path_id(ctx.request, "config")
    require_org_admin(ctx)
    body = await read_body(ctx.request, UPDATE_SCHEMA)
    check_config(body, ctx.settings.allowed_images)
    current = await ctx.one("api_lock_config", ctx.mine(config_id=config_id))
    if current is None:
        raise NotFound("No such workload config.", field="config")
    # Checked whole, as the edit leaves it: an env may now name a secret
    # variable, or the two outgrow the limit together.
    secret_env = secret_env_after(current["secret_env"], body.get("secretEnv", {}))
    check_environment(body, body.get("env", current["env"]), secret_env)
    team_ids = await _team_ids(ctx, body)
    if "name" in body:
        taken = await ctx.one(
            "api_config_name_taken", ctx.mine(config_id=config_id, name=body["name"])
        )
        if taken and taken["taken"]:
            raise config_name_taken()
    await ctx.run(
        "api_update_config",
        ctx.mine(
            config_id=config_id,
            name=body.get("name"),
            description=body.get("description"),
            mode=body.get("mode"),
            sail=_json(body.get("sail")),
            marimo=_json(body.get("marimo")),
            workers=body.get("workers"),
            env=_json(body.get("env")),
            secret_env=Jsonb(secret_env) if "secretEnv" in body else None,
        ),
    )
    if "teamIds" in body:
        await set_config_teams(ctx, config_id, team_ids)
    return await _one(ctx, config_id)


async def delete_config(ctx: Ctx) -> web.Response:
    config_id = path_id(ctx.request, "config")
    require_org_admin(ctx)
    config = await ctx.one("api_lock_config", ctx.mine(config_id=config_id))
    if config is None:
        raise NotFound("No such workload config.", field="config")
    ctx.audit_detail["name"] = config["name"]
    in_use = await ctx.one("api_config_in_use", {"config_id": config_id})
    assert in_use is not None
    if in_use["live"] or in_use["deleting"]:
        raise Conflict(in_use_detail(in_use["live"]), code="workload_config_in_use")
    await ctx.run("api_delete_config", {"config_id": config_id})
    return no_content()
