"""One reconcile pass: read the row, observe the runtime, plan, apply, write.

Level-triggered: the only input is the notebook id. Status, message, observed
fields and the event row are written in ONE place (`_write`), in a transaction
that first locks the row and checks that its generation is still the one this
pass planned for; if it moved (a member stopped, started or deleted
meanwhile), nothing stale is written and the pass asks to run again at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from common.clock import Clock
from common.statuses import Desired, Status
from reconciler import metrics
from reconciler.db import fetchone
from reconciler.plan import Action, NotebookState, Plan, plan
from reconciler.runtime.base import (
    Observation,
    ResourceSpec,
    Runtime,
    SessionSpec,
    TerminalError,
    WorkloadSpec,
)
from sql import query

log = structlog.get_logger("reconciler")

ACTOR = "reconciler"


@dataclass(frozen=True)
class Deps:
    pool: AsyncConnectionPool
    runtime: Runtime
    clock: Clock
    presence_window_seconds: int = 150
    start_deadline_seconds: int = 120


@dataclass(frozen=True)
class Result:
    outcome: str
    requeue_after: float | None
    generation: int | None = None
    actions: tuple[Action, ...] = ()


def _state(row: dict[str, Any], presence_window: int) -> NotebookState:
    return NotebookState(
        id=row["id"],
        desired=Desired(row["desired_state"]),
        status=Status(row["status"]),
        status_message=row["status_message"],
        generation=row["generation"],
        session_id=row["session_id"],
        start_deadline_at=row["start_deadline_at"],
        last_active_at=row["last_active_at"],
        last_seen_at=row["last_seen_at"],
        executing=row["executing"],
        idle_timeout_seconds=row["idle_timeout_seconds"],
        detached_timeout_seconds=row["detached_timeout_seconds"],
        presence_window_seconds=presence_window,
        start_requested_at=row["start_requested_at"],
    )


def _resources(raw: Any) -> ResourceSpec:
    raw = raw if isinstance(raw, dict) else {}
    return ResourceSpec(
        image=str(raw.get("image", "")),
        cpu=str(raw.get("cpu", "")),
        memory=str(raw.get("memory", "")),
    )


def session_spec(row: dict[str, Any]) -> SessionSpec:
    if not row["session_id"] or not row["session_token"]:
        raise TerminalError("no session to start (session id or token missing)")
    env = row["env"] if isinstance(row["env"], dict) else {}
    return SessionSpec(
        notebook_id=row["id"],
        session_id=row["session_id"],
        session_token=row["session_token"],
        workload=WorkloadSpec(
            mode=row["mode"],
            workers=row["workers"],
            env={str(k): str(v) for k, v in env.items()},
            sail=_resources(row["sail"]),
            marimo=_resources(row["marimo"]),
        ),
        base_url=f"/notebooks/{row['id']}",
    )


async def _read(deps: Deps, notebook_id: str) -> dict[str, Any] | None:
    async with deps.pool.connection() as conn:
        return await fetchone(conn, "reconciler_get_notebook", {"id": notebook_id})


async def reconcile_once(deps: Deps, notebook_id: str) -> Result:
    started = time.monotonic()
    row = await _read(deps, notebook_id)
    if row is None:
        result = Result("gone", None)
    else:
        try:
            result = await _pass(deps, row)
        except TerminalError as exc:
            # Recorded, not retried: the member sees the reason and may start again.
            stop = Plan((Action.ENSURE_STOPPED,), Status.FAILED, str(exc))
            await _write(deps, row, stop, None)
            await deps.runtime.ensure_stopped(notebook_id)
            result = Result("failed", None, row["generation"], stop.actions)
    duration = time.monotonic() - started
    metrics.RECONCILES.labels(result.outcome).inc()
    metrics.RECONCILE_SECONDS.observe(duration)
    # One line per pass at debug; the job's canonical line is logged by the worker.
    log.debug(
        "reconcile pass",
        notebook_id=notebook_id,
        generation=result.generation,
        action=",".join(a.value for a in result.actions) or "none",
        outcome=result.outcome,
        duration_ms=round(duration * 1000, 1),
    )
    return result


async def _pass(deps: Deps, row: dict[str, Any]) -> Result:
    nb = _state(row, deps.presence_window_seconds)
    observed = await deps.runtime.observe(nb.id)
    now = deps.clock.now()
    p = plan(nb, observed, now)
    deadline: datetime | None = None
    for action in p.actions:
        match action:
            case Action.AUTO_STOP:
                if not await _auto_stop(deps, nb, now):
                    return Result("conflict", 0, nb.generation, p.actions)
                metrics.AUTO_STOPS.labels(p.auto_stop_reason or "idle").inc()
            case Action.ENSURE_RUNNING:
                observed = await deps.runtime.ensure_running(session_spec(row))
            case Action.ENSURE_STOPPED:
                await deps.runtime.ensure_stopped(nb.id)
                observed = Observation(session_id=None)
            case Action.DELETE:
                await deps.runtime.delete(nb.id)
                observed = Observation(session_id=None)
            case Action.EXTEND_DEADLINE:
                deadline = now + timedelta(seconds=deps.start_deadline_seconds)
    auto_stopped = Action.AUTO_STOP in p.actions
    written = await _write(deps, row, p, observed, deadline=deadline, auto_stopped=auto_stopped)
    if not written:
        return Result("conflict", 0, nb.generation, p.actions)
    if nb.status is Status.STARTING and p.status is Status.RUNNING and row["start_requested_at"]:
        metrics.START_TO_RUNNING.observe((now - row["start_requested_at"]).total_seconds())
    return Result(p.outcome, p.requeue_after, nb.generation, p.actions)


async def _auto_stop(deps: Deps, nb: NotebookState, now: datetime) -> bool:
    async with deps.pool.connection() as conn, conn.transaction():
        row = await fetchone(
            conn,
            "reconciler_auto_stop",
            {
                "id": nb.id,
                "generation": nb.generation,
                "now": now,
                "last_active_at": nb.last_active_at,
            },
        )
        return row is not None


async def _write(
    deps: Deps,
    row: dict[str, Any],
    p: Plan,
    observed: Observation | None,
    *,
    deadline: datetime | None = None,
    auto_stopped: bool = False,
) -> bool:
    """THE place that writes status (with its event) and observed fields."""
    now = deps.clock.now()
    expected = row["generation"] + (1 if auto_stopped else 0)
    async with deps.pool.connection() as conn, conn.transaction():
        locked = await fetchone(conn, "reconciler_lock_generation", {"id": row["id"]})
        if locked is None or locked["generation"] != expected:
            return False  # intent moved while we worked: plan again, write nothing stale
        if locked["status"] != row["status"] and not auto_stopped:
            return False  # e.g. a ping moved idle → running meanwhile: plan again
        if (p.status.value, p.status_message) != (row["status"], row["status_message"]):
            await conn.execute(
                query("set_status"),
                {
                    "id": row["id"],
                    "status": p.status.value,
                    "status_message": p.status_message,
                    "actor": ACTOR,
                    "now": now,
                },
            )
        if Action.DELETE in p.actions:
            await conn.execute(query("reconciler_delete_notebook"), {"id": row["id"]})
            return True
        runtime_state = observed.runtime_state if observed is not None else {}
        await conn.execute(
            query("reconciler_update_observed"),
            {
                "id": row["id"],
                "runtime_state": Jsonb(runtime_state),
                "executing": p.executing,
                "touch": p.touch_last_active,
                "now": now,
                "start_deadline_at": deadline,
                "clear_session": p.status is Status.STOPPED,
            },
        )
    return True
