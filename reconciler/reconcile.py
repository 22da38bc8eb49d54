"""One reconcile pass: read the row, observe the runtime, plan, apply, write.

Level-triggered: the only input is the notebook id. Status, message, observed
fields and the event row are written in ONE place (`_write`), in a transaction
that first locks the row and checks that its generation is still the one this
pass planned for; if it moved (a member stopped, started or deleted
meanwhile), nothing stale is written and the pass asks to run again at once.
A plan that tears down after a failure or an auto-stop (`record_first`) is
written before its actions too, so the reason outlives a teardown that fails;
so is the start deadline a first attempt arms (`ARM_DEADLINE`), so that a
start (or a repair) whose attempts keep failing still ends within it. A
repair whose restart raises says so in its status message before the error
goes back to the worker's back-off.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from common import notebook_file, notebook_logs
from common.clock import Clock
from common.ids import is_valid_id
from common.statuses import PROVISIONED, RECONCILER_ACTOR, Desired, Status
from reconciler import logs, metrics
from reconciler.db import fetchone
from reconciler.plan import (
    Action,
    NotebookState,
    Plan,
    attempt_raised,
    failed,
    plan,
    restarts_a_repair,
    unobserved,
)
from reconciler.runtime.base import (
    Observation,
    Phase,
    ResourceSpec,
    Runtime,
    SessionSpec,
    TerminalError,
    WorkloadSpec,
)
from sql import query

log = structlog.get_logger("reconciler")

ACTOR = RECONCILER_ACTOR
# A deleted notebook's last event, once its servers and files are gone.
DELETED = "Deleted for good: its servers and files are removed"
# A runtime's error in a status message: enough to say what refused (a
# Kubernetes ApiException's text carries the whole response).
ERROR_CHARS = 300


@dataclass(frozen=True)
class Deps:
    pool: AsyncConnectionPool
    runtime: Runtime
    clock: Clock
    presence_window_seconds: int = 150
    start_deadline_seconds: int = 120
    # A running notebook's file is copied to the database this often (and
    # as it stops): docs/api.md "A notebook's file".
    file_copy_seconds: int = 600
    # How long a deleted notebook can be brought back (docs/api.md "Recently
    # deleted"); 0: it is not kept.
    trash_days: int = 30
    # When this worker last tried to copy each running notebook's file, kept
    # or not: one that cannot be kept (too large, no Marimo to serve it) is
    # tried again after `file_copy_seconds`, not at every pass.
    copies_tried: dict[str, datetime] = field(default_factory=dict)
    # Members' asks for logs read this many notebooks at once (the rest wait
    # their turn): on Kubernetes each read holds one of the default
    # executor's few threads, which every API call of the worker shares, up
    # to its request timeout. A stop's read is not among them.
    log_asks: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))


@dataclass(frozen=True)
class Result:
    outcome: str
    requeue_after: float | None
    generation: int | None = None
    actions: tuple[Action, ...] = ()


def _state(row: dict[str, Any], deps: Deps) -> NotebookState:
    # The deadline counts only once a pass armed it for this session (the
    # API's, from the request, would count time spent waiting for a worker).
    armed = row["session_id"] is not None and row["start_deadline_session_id"] == row["session_id"]
    return NotebookState(
        id=row["id"],
        desired=Desired(row["desired_state"]),
        status=Status(row["status"]),
        status_message=row["status_message"],
        generation=row["generation"],
        session_id=row["session_id"],
        start_deadline_at=row["start_deadline_at"] if armed else None,
        last_active_at=row["last_active_at"],
        last_seen_at=row["last_seen_at"],
        executing=row["executing"],
        idle_timeout_seconds=row["idle_timeout_seconds"],
        detached_timeout_seconds=row["detached_timeout_seconds"],
        idle_timeout_cap=row["idle_timeout_cap"],
        detached_timeout_cap=row["detached_timeout_cap"],
        presence_window_seconds=deps.presence_window_seconds,
        start_deadline_seconds=deps.start_deadline_seconds,
        start_requested_at=row["start_requested_at"],
        leftovers=bool(row["runtime_state"]),
        status_changed_at=row["status_changed_at"],
    )


def _resources(raw: Any) -> ResourceSpec:
    raw = raw if isinstance(raw, dict) else {}
    return ResourceSpec(
        image=str(raw.get("image", "")),
        cpu=str(raw.get("cpu", "")),
        memory=str(raw.get("memory", "")),
    )


def session_spec(
    row: dict[str, Any], seed: str | None = None, seed_replaces: str | None = None
) -> SessionSpec:
    if not row["session_id"] or not row["session_token"]:
        raise TerminalError("no session to start (session id or token missing)")
    env = row["env"] if isinstance(row["env"], dict) else {}
    secret_env = row["secret_env"] if isinstance(row["secret_env"], dict) else {}
    return SessionSpec(
        notebook_id=row["id"],
        session_id=row["session_id"],
        session_token=row["session_token"],
        workload=WorkloadSpec(
            mode=row["mode"],
            workers=row["workers"],
            env={str(k): str(v) for k, v in env.items()},
            secret_env={str(k): str(v) for k, v in secret_env.items()},
            sail=_resources(row["sail"]),
            marimo=_resources(row["marimo"]),
        ),
        base_url=f"/notebooks/{row['id']}",
        seed=seed,
        seed_replaces=seed_replaces,
    )


TEARDOWN_PENDING = "teardown_pending"  # in runtime_state: a teardown not yet seen done


class RepairRefused(Exception):
    """A repair's restart met a TerminalError: retried (with back-off) until
    the repair's deadline, then `failed` with it."""


async def _read(deps: Deps, notebook_id: str) -> dict[str, Any] | None:
    async with deps.pool.connection() as conn:
        return await fetchone(conn, "reconciler_get_notebook", {"id": notebook_id})


def _paced(runtime: object, requeue_after: float | None) -> float | None:
    """No sooner than the runtime's `poll_floor_seconds` (when it has one):
    each look at a Kubernetes notebook is a call to a shared API server, and
    its pod watch wakes the reconciler on a change meanwhile; a local look
    is a few syscalls, fine every 50 ms."""
    floor = float(getattr(runtime, "poll_floor_seconds", 0.0))
    return requeue_after if requeue_after is None else max(requeue_after, floor)


async def reconcile_once(deps: Deps, notebook_id: str) -> Result:
    started = time.monotonic()
    row = await _read(deps, notebook_id)
    if row is None:
        result = await _gone(deps, notebook_id)
    else:
        try:
            result = await _pass(deps, row)
        except TerminalError as exc:
            result = await _fail(deps, row, str(exc))
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


async def _gone(deps: Deps, notebook_id: str) -> Result:
    """No row: whatever still runs or is stored for this id is an orphan (a
    row removed by hand, a delete cut short); delete is idempotent. Only if
    this database ever had the notebook (its events outlive the row): the
    pod watch announces every pod with our labels, and a namespace shared by
    mistake with another installation must not lose that one's notebooks
    and storage (the sweep's orphan check applies the same rule)."""
    if not is_valid_id(notebook_id):
        return Result("gone", None)  # never hand a stray payload to the runtime as a path
    async with deps.pool.connection() as conn:
        known = await fetchone(conn, "reconciler_notebook_known", {"id": notebook_id})
    if not known or not known["known"]:
        metrics.FOREIGN_SKIPPED.inc()
        log.warning(
            "reconcile_foreign_notebook_left_alone",
            notebook_id=notebook_id,
            hint="the runtime has a notebook this database never had: "
            "is another installation using the same namespace or data directory?",
        )
        return Result("foreign", None)
    await deps.runtime.delete(notebook_id)
    return Result("gone", None, actions=(Action.DELETE,))


async def _fail(deps: Deps, row: dict[str, Any], reason: str) -> Result:
    """A TerminalError: recorded, not retried (the member sees the reason and
    may start again). Like any failed start it is written before the teardown,
    and only if nobody changed the notebook meanwhile: a restart's new session
    must not be torn down. What is left is what the sweep sees until then."""
    leftovers = await deps.runtime.observe(row["id"])
    return await _carry_out(deps, row, failed(reason), leftovers, deps.clock.now())


def _recorded(row: dict[str, Any], p: Plan) -> dict[str, Any]:
    """The row as a `record_first` write of `p` left it."""
    bump = 1 if Action.AUTO_STOP in p.actions else 0
    return {
        **row,
        "status": p.status.value,
        "status_message": p.status_message,
        "generation": row["generation"] + bump,
    }


async def _pass(deps: Deps, row: dict[str, Any]) -> Result:
    nb = _state(row, deps)
    try:
        observed = await deps.runtime.observe(nb.id)
    except Exception as exc:
        await _record_unobserved(deps, row, nb, exc)
        raise  # retried with back-off
    if observed.executing is None and observed.marimo.phase is Phase.READY:
        # Not stopped as idle while this lasts: visible, so that a probe
        # broken for every notebook (a NetworkPolicy, a token) is noticed.
        metrics.EXECUTING_UNKNOWN.inc()
        log.warning("executing_unknown", notebook_id=nb.id)
    now = deps.clock.now()
    return await _carry_out(deps, row, plan(nb, observed, now), observed, now)


async def _carry_out(
    deps: Deps, row: dict[str, Any], p: Plan, observed: Observation, now: datetime
) -> Result:
    """Write (first, if `record_first`), act, write what is observed after."""
    p = _without_secrets(p, row)
    generation, status = row["generation"], row["status"]
    if p.record_first:
        auto_stop = Action.AUTO_STOP in p.actions
        first = observed
        if Action.ENSURE_STOPPED in p.actions:
            # Until the teardown is seen done (the write after it empties
            # runtime_state), the row says something may be left, so one
            # cut short or raising is finished by a later pass (`leftovers`)
            # even when nothing observed named it (a Kubernetes Secret or
            # Service of a start whose pods were refused).
            pending = {**observed.runtime_state, TEARDOWN_PENDING: True}
            first = replace(observed, runtime_state=pending)
        if not await _write(deps, row, p, first, auto_stop=auto_stop):
            return Result("conflict", 0, generation, p.actions)
        if auto_stop:
            metrics.AUTO_STOPS.labels(p.auto_stop_reason or "idle").inc()
        row = _recorded(row, p)
    if Action.ARM_DEADLINE in p.actions and not await _arm_deadline(deps, row, now):
        return Result("conflict", 0, generation, p.actions)
    try:
        observed = await _apply(deps, row, p, observed)
    except TerminalError as exc:
        nb = _state(row, deps)
        if not restarts_a_repair(nb, p):
            raise  # recorded as the failure by reconcile_once
        # A repair's restart refused (a namespace quota full while a drained
        # node's pods still terminate): a running notebook is not failed on
        # it at once, but retried within the deadline its first attempt
        # armed, saying why, as for any error its restart raises.
        await _record_raised(deps, row, nb, p, observed, exc)
        raise RepairRefused(str(exc)) from exc
    except Exception as exc:  # transient: retried by the worker with back-off
        await _record_raised(deps, row, _state(row, deps), p, observed, exc)
        raise
    first_run = await _first_run(deps, row, status, p)
    if not await _write(deps, row, p, observed):
        return Result("conflict", 0, generation, p.actions)
    tried_at = deps.copies_tried.get(row["id"])
    if copy_due(row, p, observed, now, deps.file_copy_seconds, tried_at):
        await _keep_file(deps, row, observed)
    if first_run:
        # The API's clock stamped the request: a worker's behind it must not
        # observe a negative start.
        metrics.START_TO_RUNNING.observe(
            max(0.0, (now - row["start_requested_at"]).total_seconds())
        )
    return Result(p.outcome, _paced(deps.runtime, p.requeue_after), generation, p.actions)


async def _first_run(deps: Deps, row: dict[str, Any], status: str, p: Plan) -> bool:
    """Is this pass's starting → running the first since the start request?
    Not for a repair (same session, hours later): counted as a start, it
    would add the session's age to the start-time histogram and its alert."""
    requested = row["start_requested_at"]
    if not (status == Status.STARTING and p.status is Status.RUNNING and requested):
        return False
    async with deps.pool.connection() as conn:
        before = await fetchone(
            conn, "reconciler_provisioned_since", {"id": row["id"], "since": requested}
        )
    return before is not None and not before["provisioned"]


async def _seed(deps: Deps, row: dict[str, Any]) -> tuple[str | None, str | None]:
    """What the start writes if the notebook has no file: the file it was
    created from, while it has not run yet; else the copy kept of it (its
    storage was lost). The runtime writes it only where there is no file,
    but for a restore's (the second value, what it replaces; SessionSpec)."""
    if not row.get("seeded") and row.get("file_kept_at") is None:
        return None, None  # neither: the template
    async with deps.pool.connection() as conn:
        found = await fetchone(conn, "reconciler_notebook_seed", {"id": row["id"]})
    if found is None or found["source"] is None:
        return None, None
    return str(found["source"]), found["replaces"]


def copy_due(
    row: dict[str, Any],
    p: Plan,
    observed: Observation,
    now: datetime,
    every: int,
    tried_at: datetime | None = None,
) -> bool:
    """Is a running notebook's file due to be copied: none kept yet, or the
    last copy (or try, `tried_at`) is `every` seconds old? Only from its
    session's ready Marimo."""
    if p.status not in PROVISIONED or observed.marimo.phase is not Phase.READY:
        return False
    if observed.session_id is None or observed.session_id != row["session_id"]:
        return False
    last = max((t for t in (row.get("file_kept_at"), tried_at) if t is not None), default=None)
    return last is None or now - last >= timedelta(seconds=every)


# Past this many notebooks in `Deps.copies_tried`, the tries older than the
# copy interval (which decide nothing any more) are forgotten: notebooks that
# another worker stopped would otherwise stay in it for good.
COPIES_TRIED_MAX = 1000


def _note_copy_try(deps: Deps, notebook_id: str) -> None:
    now = deps.clock.now()
    tried = deps.copies_tried
    tried[notebook_id] = now
    if len(tried) > COPIES_TRIED_MAX:
        horizon = now - timedelta(seconds=deps.file_copy_seconds)
        for old in [nid for nid, at in tried.items() if at < horizon]:
            del tried[old]


async def _keep_file(deps: Deps, row: dict[str, Any], observed: Observation) -> str:
    """A copy of the notebook's file as `observed`'s session saved it, in
    the database: what a member downloads, and what a start writes if the
    storage is lost. Best effort: when none can be taken, the older copy
    stays. Returns the outcome."""
    nid = row["id"]
    _note_copy_try(deps, nid)
    try:
        data = await deps.runtime.read_file(nid, observed, notebook_file.MAX_BYTES)
        text, outcome = notebook_file.keepable(data)
        if text is not None:
            async with deps.pool.connection() as conn, conn.transaction():
                await conn.execute(
                    query("reconciler_keep_file"),
                    {
                        "id": nid,
                        "content": text,
                        "now": deps.clock.now(),
                        "session_id": observed.session_id,
                        "keep": notebook_file.VERSIONS,
                    },
                )
    except Exception as exc:
        log.warning("file_copy_failed", notebook_id=nid, error=repr(exc))
        outcome = notebook_file.FAILED
    if outcome in (notebook_file.TOO_LARGE, notebook_file.NOT_TEXT):
        log.warning("file_not_kept", notebook_id=nid, reason=outcome)
    metrics.FILE_COPIES.labels(outcome).inc()
    return outcome


async def _apply(deps: Deps, row: dict[str, Any], p: Plan, observed: Observation) -> Observation:
    """The plan's effects through the runtime: what is observed after them."""
    for action in p.actions:
        match action:
            case Action.AUTO_STOP:
                pass  # committed with the status (record_first)
            case Action.ARM_DEADLINE:
                pass  # committed before acting (_arm_deadline)
            case Action.ENSURE_RUNNING:
                observed = await deps.runtime.ensure_running(
                    session_spec(row, *await _seed(deps, row))
                )
            case Action.ENSURE_STOPPED:
                if observed.session_id:
                    # Before the teardown: on Kubernetes only its Marimo reads
                    # the file, and the pods' logs go with them (read once:
                    # not again while they terminate, looked at every 0.5 s).
                    await _keep_file(deps, row, observed)
                    if not (observed.sail.terminating or observed.marimo.terminating):
                        await logs.keep(deps, row, observed)
                deps.copies_tried.pop(row["id"], None)
                await deps.runtime.ensure_stopped(row["id"])
                observed = Observation(session_id=None)
            case Action.DELETE:
                if observed.session_id and deps.trash_days:
                    # Its last edits, for what brings it back (notebook_trash).
                    await _keep_file(deps, row, observed)
                deps.copies_tried.pop(row["id"], None)
                await deps.runtime.delete(row["id"])
                observed = Observation(session_id=None)
    return observed


def _without_secrets(p: Plan, row: dict[str, Any]) -> Plan:
    """`p` with the workload config's secret values blanked out of what it
    records (members read status messages and the history, kept after the
    values are rotated): a process that died printing its connection string
    in its last log lines, an error quoting one (docs/api.md "Secret
    environment")."""
    secrets = notebook_logs.secret_values(row.get("secret_env"))
    if not secrets:
        return p

    def blank(text: str) -> str:
        # As out of a log: the longest first, none shorter than 4 characters.
        return notebook_logs.redacted(text, secrets)

    reason = None if p.reason is None else blank(p.reason)
    return replace(p, status_message=blank(p.status_message), reason=reason)


def _error_text(exc: BaseException, token: str | None) -> str:
    text = _words_of(exc)
    if token:
        text = text.replace(token, "***")  # members never see Marimo's token
    return text[:ERROR_CHARS]


def _words_of(exc: BaseException) -> str:
    """An error as a member may read it. An API server's (the Kubernetes
    client's ApiException: `status`, `body`) in its own words, its Status
    `message`, not the client's dump of headers that a cut at ERROR_CHARS
    ended before the words."""
    status, body = getattr(exc, "status", None), getattr(exc, "body", None)
    if isinstance(status, int) and isinstance(body, str | bytes):
        try:
            message = str(json.loads(body)["message"])
        except (ValueError, TypeError, KeyError):
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            message = str(getattr(exc, "reason", "") or "") or text[:200]
        return f"{type(exc).__name__} ({status}): {message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _record_raised(
    deps: Deps,
    row: dict[str, Any],
    nb: NotebookState,
    p: Plan,
    observed: Observation,
    exc: Exception,
) -> None:
    """A repair whose restart raised says so (`attempt_raised`); the error
    then goes back to the worker, retried with back-off. Best effort: the
    database may be what failed, and the deadline bounds the repair anyway."""
    said = attempt_raised(nb, p, observed, _error_text(exc, row["session_token"]))
    if said is None:
        return
    try:
        await _write(deps, row, said, observed)
    except Exception as write_exc:
        log.warning("repair_error_not_recorded", notebook_id=row["id"], error=repr(write_exc))


async def _record_unobserved(
    deps: Deps, row: dict[str, Any], nb: NotebookState, exc: Exception
) -> None:
    """A start whose runtime cannot be looked at says why, within its
    deadline (`unobserved`): before, it read `starting` with no word for
    ever, its deadline never armed. Best effort, as `_record_raised`."""
    now = deps.clock.now()
    said = unobserved(nb, _error_text(exc, row["session_token"]), now)
    if said is None:
        return
    state = dict(row["runtime_state"] or {})
    if said.status is Status.FAILED:
        # What the start made (a Secret, Services) is not seen either: the
        # first pass that can look again tears it down, pods or not.
        state[TEARDOWN_PENDING] = True
    kept = Observation(session_id=row["session_id"], runtime_state=state)
    try:
        if Action.ARM_DEADLINE in said.actions and not await _arm_deadline(deps, row, now):
            return
        await _write(deps, row, said, kept)
    except Exception as write_exc:
        log.warning("unobserved_not_recorded", notebook_id=row["id"], error=repr(write_exc))


async def _arm_deadline(deps: Deps, row: dict[str, Any], now: datetime) -> bool:
    """The start deadline of this session counts from now. Committed before
    the attempt, so a start whose attempts keep failing (a transient error
    every time, a worker killed mid-start) still fails once it passes;
    False if a member changed the notebook meanwhile."""
    deadline = now + timedelta(seconds=deps.start_deadline_seconds)
    async with deps.pool.connection() as conn, conn.transaction():
        armed = await fetchone(
            conn,
            "reconciler_arm_deadline",
            {
                "id": row["id"],
                "generation": row["generation"],
                "session_id": row["session_id"],
                "deadline": deadline,
            },
        )
    return armed is not None


async def _auto_stop(conn: AsyncConnection[Any], row: dict[str, Any]) -> bool:
    """Desired state → stopped (generation + 1), unless a ping or a member's
    change got there first."""
    stopped = await fetchone(
        conn,
        "reconciler_auto_stop",
        {
            "id": row["id"],
            "generation": row["generation"],
            "last_active_at": row["last_active_at"],
            "idle_timeout_seconds": row["idle_timeout_seconds"],
            "detached_timeout_seconds": row["detached_timeout_seconds"],
            "idle_timeout_cap": row["idle_timeout_cap"],
            "detached_timeout_cap": row["detached_timeout_cap"],
        },
    )
    return stopped is not None


async def _pinged_since(
    conn: AsyncConnection[Any], row: dict[str, Any], locked: dict[str, Any]
) -> bool:
    """A ping landed after the pass read the row (on a running notebook it
    moves no status, only presence and last_active_at). Presence is read
    after the row lock: a ping locks the row before writing it, so every
    ping that started before is committed by now."""
    if locked["last_active_at"] != row["last_active_at"]:
        return True
    newest = await fetchone(conn, "reconciler_newest_presence", {"id": row["id"]})
    return (newest or {}).get("last_seen_at") != row["last_seen_at"]


async def _write(
    deps: Deps,
    row: dict[str, Any],
    p: Plan,
    observed: Observation,
    *,
    auto_stop: bool = False,
) -> bool:
    """THE place that writes status (with its event) and observed fields;
    with `auto_stop`, the auto-stop's desired state in the same transaction."""
    p = _without_secrets(p, row)  # also for the repairs' and the unobserved's records
    now = deps.clock.now()
    moves = (p.status.value, p.status_message) != (row["status"], row["status_message"])
    async with deps.pool.connection() as conn, conn.transaction():
        locked = await fetchone(conn, "reconciler_lock_generation", {"id": row["id"]})
        if locked is None or locked["generation"] != row["generation"]:
            return False  # intent moved while we worked: plan again, write nothing stale
        if locked["status"] != row["status"]:
            return False  # e.g. a ping moved idle → running meanwhile: plan again
        if p.presence and moves and await _pinged_since(conn, row, locked):
            return False  # running → idle decided on a ping older than one just made
        if auto_stop and not await _auto_stop(conn, row):
            return False
        if moves:
            await conn.execute(
                query("set_status"),
                {
                    "id": row["id"],
                    "status": p.status.value,
                    "status_message": p.status_message,
                    "reason": p.reason,
                    "actor": ACTOR,
                    "now": now,
                    "record_unchanged": False,
                },
            )
        if row.get("seeded") and p.status in PROVISIONED:
            # Marimo is up on the notebook's file, so that file exists now
            # (and a restore's is written: none is taken while it runs).
            await conn.execute(query("reconciler_drop_seed"), {"id": row["id"]})
        if Action.DELETE in p.actions:
            await conn.execute(
                query("reconciler_delete_notebook"),
                {"id": row["id"], "reason": DELETED, "now": now, "trash_days": deps.trash_days},
            )
            return True
        await conn.execute(
            query("reconciler_update_observed"),
            {
                "id": row["id"],
                "runtime_state": Jsonb(observed.runtime_state),
                "executing": p.executing,
                "touch": p.touch_last_active,
                "now": now,
                "clear_session": p.status is Status.STOPPED,
                "disarm_deadline": p.disarm_deadline,
            },
        )
    return True
