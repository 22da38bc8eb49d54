"""Who may use a workload config (docs/api.md "Who may use a config"): an
org admin keeps an expensive one (GPUs, big memory) for the teams it is
for. A config with `teamIds` serves those teams' members (any role) and org
admins; `null`, everyone. Checked where a notebook comes to run on a config
for its owner, whose cost it is: a create, a change of config, a start, the
accept of an offer of a running notebook."""

from __future__ import annotations

from api.context import Ctx
from api.errors import Forbidden
from api.validation import TEAM_IDS_SCHEMA

# In a config's body: the teams whose members may use it, or null: everyone.
TEAM_IDS_FIELD = {**TEAM_IDS_SCHEMA, "type": ["array", "null"]}


async def set_config_teams(ctx: Ctx, config_id: str, team_ids: list[str] | None) -> None:
    """`team_ids` of the organization's (checked by the caller), or None."""
    params = {"config_id": config_id, "team_ids": team_ids}
    await ctx.run("api_clear_config_teams", params)
    if team_ids:
        await ctx.run("api_add_config_teams", params)


async def check_config_usable(ctx: Ctx, config_id: str, owner_id: str) -> None:
    """403 config_not_allowed unless the notebook's owner may use the config."""
    row = await ctx.one("api_config_usable", {"config_id": config_id, "owner_id": owner_id})
    if row is None or row["usable"]:
        return  # none: the caller's own checks say it is not the organization's
    whom = "You are" if owner_id == ctx.me.member_id else "This notebook's owner is"
    teams = (
        f"members of its teams ({row['teams']}) and org admins" if row["teams"] else "org admins"
    )
    raise Forbidden(
        f"The workload config “{row['name']}” is only for {teams}. {whom} not one;"
        " an org admin can change that, or pick another config.",
        code="config_not_allowed",
    )
