"""A notebook's logs kept for its members (docs/api.md "A notebook's logs"):
read from the runtime as the notebook stops (before its teardown: on
Kubernetes the pods' logs go with them) and when a member asks, written to
`notebook_logs`. Best effort: a read that fails leaves the older one."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from common import notebook_logs
from common.statuses import STOPPABLE
from reconciler import metrics
from reconciler.db import fetchone
from reconciler.runtime.base import LogTail, Observation
from sql import query

if TYPE_CHECKING:
    from reconciler.reconcile import Deps

log = structlog.get_logger("reconciler")


def secrets_of(row: dict[str, Any]) -> tuple[str, ...]:
    """What no member reads in a log: the session's Marimo token, the
    workload config's secret values."""
    return (
        *notebook_logs.secret_values(row.get("secret_env")),
        str(row.get("session_token") or ""),
    )


def outcome_of(tails: dict[str, LogTail]) -> str:
    read = sum(t.data is not None for t in tails.values())
    return "read" if read == len(tails) else "partial" if read else "unread"


def columns(tails: dict[str, LogTail], secrets: tuple[str, ...]) -> dict[str, str | None]:
    """Each component's text and problem, as `notebook_logs` keeps them."""
    out: dict[str, str | None] = {}
    for name in notebook_logs.COMPONENTS:
        tail = tails.get(name, LogTail(None, "Not read."))
        out[name] = None if tail.data is None else notebook_logs.readable(tail.data, secrets)
        problem = tail.problem and notebook_logs.problem_text(tail.problem, secrets)
        out[f"{name}_problem"] = problem or None
    return out


async def keep(
    deps: Deps, row: dict[str, Any], observed: Observation, *, live_only: bool = False
) -> str:
    """Read `observed`'s session's logs and write them; the outcome. Never
    raises: a stop goes on to its teardown whatever happens here.
    `live_only`: written only while that session still runs (an ask's read
    racing a stop never replaces what the stop's read kept)."""
    nid = row["id"]
    try:
        tails = await asyncio.wait_for(
            deps.runtime.read_logs(nid, observed, notebook_logs.MAX_BYTES),
            notebook_logs.READ_TIMEOUT_SECONDS,
        )
        async with deps.pool.connection() as conn, conn.transaction():
            await conn.execute(
                query("reconciler_keep_logs"),
                {
                    "id": nid,
                    "now": deps.clock.now(),
                    "session_id": observed.session_id,
                    "live_only": live_only,
                    "live": list(STOPPABLE),
                    **columns(tails, secrets_of(row)),
                },
            )
    except Exception as exc:  # a timeout, an API server or the database away
        log.warning("logs_read_failed", notebook_id=nid, error=repr(exc))
        metrics.LOG_READS.labels("failed").inc()
        return "failed"
    outcome = outcome_of(tails)
    metrics.LOG_READS.labels(outcome).inc()
    return outcome


async def answer_ask(deps: Deps, notebook_id: str) -> None:
    """A member's ask (POST …/logs): read them if the notebook runs, and
    mark the ask answered either way (its page stops waiting). A few at a
    time per worker (`Deps.log_asks`)."""
    async with deps.log_asks:
        await _answer(deps, notebook_id)


async def _answer(deps: Deps, notebook_id: str) -> None:
    async with deps.pool.connection() as conn:
        ask = await fetchone(conn, "reconciler_logs_asked", {"id": notebook_id})
        row = await fetchone(conn, "reconciler_get_notebook", {"id": notebook_id})
    if ask is None or ask["requested_at"] is None or row is None:
        return  # deleted meanwhile
    if row["status"] in STOPPABLE and row["session_id"]:
        await keep(deps, row, Observation(session_id=row["session_id"]), live_only=True)
    async with deps.pool.connection() as conn, conn.transaction():
        await conn.execute(
            query("reconciler_answer_logs"), {"id": notebook_id, "asked": ask["requested_at"]}
        )
