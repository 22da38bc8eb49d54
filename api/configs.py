"""Workload configs (supporting endpoints). Edits apply to a notebook's
next start; a running notebook keeps the resources it was started with."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from psycopg.types.json import Jsonb

from api.context import Ctx
from api.errors import Conflict, NotFound
from api.responses import no_content, page_params, plain_list, raw_json
from api.teams import require_org_admin
from api.validation import name_schema, obj, path_id, read_body, text_schema
from common.ids import new_id

RESOURCES_SCHEMA = obj(
    {
        "image": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"^\S+$"},
        "cpu": {"type": "string", "maxLength": 32, "pattern": r"^[0-9]{1,6}(\.[0-9]{1,3})?m?$"},
        "memory": {
            "type": "string",
            "maxLength": 32,
            "pattern": r"^[0-9]{1,12}(Ki|Mi|Gi|Ti|K|M|G|T)?$",
        },
    }
)
ENV_SCHEMA = {
    "type": "object",
    "maxProperties": 64,
    "propertyNames": {"type": "string", "maxLength": 128, "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": text_schema(4096),
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
CREATE_SCHEMA = obj(FIELDS, required=("name",))
UPDATE_SCHEMA = obj(FIELDS)


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
    body = await read_body(ctx.request, CREATE_SCHEMA)
    require_org_admin(ctx)
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
        ),
    )
    if inserted is None:
        raise Conflict(
            "A workload config with that name exists.", code="config_name_taken", field="name"
        )
    return await _one(ctx, config_id, 201)


async def update_config(ctx: Ctx) -> web.Response:
    config_id = path_id(ctx.request, "config")
    body = await read_body(ctx.request, UPDATE_SCHEMA)
    require_org_admin(ctx)
    if await ctx.one("api_lock_config", ctx.mine(config_id=config_id)) is None:
        raise NotFound("No such workload config.", field="config")
    if "name" in body:
        taken = await ctx.one(
            "api_config_name_taken", ctx.mine(config_id=config_id, name=body["name"])
        )
        if taken and taken["taken"]:
            raise Conflict(
                "A workload config with that name exists.", code="config_name_taken", field="name"
            )
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
        ),
    )
    return await _one(ctx, config_id)


async def delete_config(ctx: Ctx) -> web.Response:
    config_id = path_id(ctx.request, "config")
    require_org_admin(ctx)
    if await ctx.one("api_lock_config", ctx.mine(config_id=config_id)) is None:
        raise NotFound("No such workload config.", field="config")
    in_use = await ctx.one("api_config_in_use", {"config_id": config_id})
    if in_use and in_use["in_use"]:
        raise Conflict("Notebooks still use this workload config.", code="workload_config_in_use")
    await ctx.run("api_delete_config", {"config_id": config_id})
    return no_content()
