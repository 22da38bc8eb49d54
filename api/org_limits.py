"""What an organization's own limits allow (docs/api.md "Running limits",
"Timeout caps"): read with each start, create and timeout edit, and the
timeouts a notebook may have under the caps. Apart from the endpoints that
set them (api/organization.py): those import the teams' module, which
imports the notebooks'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.context import Ctx
from api.errors import BadRequest
from common.durations import capped, duration


@dataclass(frozen=True)
class Timeout:
    """One of a notebook's timeouts and its organization's cap on it."""

    field: str  # in a notebook's body
    column: str  # in notebooks
    cap_column: str  # in organizations
    default_column: str  # in organizations: its own default, null for `default`
    words: str  # as a member says it ("idle timeout"), in its history too
    default: int  # the platform's default for a new notebook (the organization's first)


TIMEOUTS = (
    Timeout(
        "idleTimeoutSeconds",
        "idle_timeout_seconds",
        "max_idle_timeout_seconds",
        "default_idle_timeout_seconds",
        "idle timeout",
        3600,
    ),
    Timeout(
        "detachedTimeoutSeconds",
        "detached_timeout_seconds",
        "max_detached_timeout_seconds",
        "default_detached_timeout_seconds",
        "detached timeout",
        14400,
    ),
)


async def organization_limits(ctx: Ctx) -> dict[str, Any]:
    """The organization's own running limits and timeout caps (0: none)."""
    own = await ctx.one("api_organization_limits", ctx.mine())
    assert own is not None  # the caller's organization exists while they do
    return own


def timeouts_within_caps(
    body: dict[str, Any], caps: dict[str, Any], before: dict[str, Any] | None = None
) -> dict[str, int]:
    """A notebook's timeouts as a create or an edit sets them, by body field:
    400 `timeout_not_allowed` for one its organization's cap does not allow
    (never, or longer). Only a timeout that changes is checked (`before`, the
    notebook's row, for an edit): a notebook set before the cap keeps its own,
    which the reconciler caps (`capped`), and saving it unchanged is no error.
    A create without one gets the organization's default, else the
    platform's, capped (pure)."""
    chosen: dict[str, int] = {}
    for t in TIMEOUTS:
        cap = caps[t.cap_column]
        if t.field not in body:
            if before is None:
                own = caps[t.default_column]
                chosen[t.field] = capped(t.default if own is None else own, cap)
            continue
        timeout = body[t.field]
        changed = before is None or before[t.column] != timeout
        if changed and capped(timeout, cap) != timeout:
            article = "an" if t.words[0] in "aeiou" else "a"
            raise BadRequest(
                f"Your organization allows {article} {t.words} of at most {duration(cap)}: "
                f"set 5 min to {duration(cap)}.",
                code="timeout_not_allowed",
                field=t.field,
            )
        chosen[t.field] = timeout
    return chosen
