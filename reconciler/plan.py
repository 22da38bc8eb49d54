"""Deciding what to do, apart from doing it (kopf / controller-runtime style).

`plan(desired, observed, now)` is pure: it reads the notebook's row (as
`NotebookState`) and what the runtime observed, and returns the actions to
apply, the status to show and when to look again. No I/O, no clock: `now`
comes in. Every status × observation is covered by the table-driven tests in
tests/unit/reconciler/test_plan.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import assert_never

from common.durations import capped, duration
from common.statuses import (
    PROVISIONED,
    SAVE_WINDOW_CLOCK_TOLERANCE_SECONDS,
    SAVE_WINDOW_SECONDS,
    STOP_REQUESTED,
    Desired,
    Status,
)
from reconciler.runtime.base import Component, Observation, Phase

# How soon to look again while a start or stop is under way (seconds). Short:
# readiness of Sail is ~0.15 s and Marimo ~1 s after spawn.
POLL_SECONDS = 0.05
# Components the runtime is still tearing down (pods terminating): look again
# soon, but do not spin against the runtime (a Kubernetes API server).
TEARDOWN_POLL_SECONDS = 0.5
# The status message of a notebook whose kernel could not be asked whether a
# cell runs: shown idle, yet not stopped as idle (the detached timeout bounds it).
UNKNOWN_ACTIVITY = "activity unknown: the kernel did not answer; not stopped as idle"
# What a `stopped` notebook found with something still running is stopping.
LEFT_RUNNING = "stopping what was found running for a stopped notebook"
# Between "restarting Marimo" and the error, in the message of a repair whose
# restart raised: the deadline's failure reason quotes that last error.
RETRYING = " failed, retrying: "
# A component that is alive but misses its health check (a Sail busy with a
# heavy job on a small host, a slow answer) is given this long, the status
# left as it is, before it counts as broken: one missed probe must not take a
# running notebook offline (the proxy serves only provisioned notebooks).
UNRESPONSIVE_GRACE_SECONDS = 30
# The history's reason for a start or repair that reached running.
READY = "Sail and Marimo are ready"


class Action(StrEnum):
    ENSURE_RUNNING = "ensure_running"  # create what is missing of the session (adopting the rest)
    ENSURE_STOPPED = "ensure_stopped"  # tear down (keep the notebook file)
    DELETE = "delete"  # tear down and remove storage, then the row
    # desired_state=stopped (the reconciler's own decision), committed with the
    # `stopping` status and its reason (Plan.record_first)
    AUTO_STOP = "auto_stop"
    # start_deadline_at = now, committed before the start it bounds: the
    # deadline measures an attempt (the first one of a session, or of a
    # repair), never the time a start waited in the queue for a worker.
    ARM_DEADLINE = "arm_deadline"


@dataclass(frozen=True)
class NotebookState:
    """The parts of a notebook row that decisions depend on."""

    id: str
    desired: Desired
    status: Status
    status_message: str
    generation: int
    session_id: str | None
    # The start deadline of this session, armed by its first attempt (or a
    # repair's) and disarmed once it is healthy; None until a pass has
    # attempted it, so time spent waiting for a worker never counts against
    # a start, and a provisioned notebook's None means no repair is under way.
    start_deadline_at: datetime | None
    last_active_at: datetime | None
    last_seen_at: datetime | None  # newest presence ping of any member
    executing: bool
    idle_timeout_seconds: int
    detached_timeout_seconds: int
    # The organization's caps on them (0: none, migration 0019): the tighter applies.
    idle_timeout_cap: int = 0
    detached_timeout_cap: int = 0
    presence_window_seconds: int = 150
    # A start counts as presence for one window: whoever started it is opening it.
    start_requested_at: datetime | None = None
    # runtime_state is not empty: a teardown was not seen to finish (it is
    # emptied once one does), so a `failed` notebook may still have leftovers.
    leftovers: bool = False
    # What ARM_DEADLINE adds to now (Deps.start_deadline_seconds): tells when
    # the armed deadline was armed.
    start_deadline_seconds: int = 120
    # When the status last changed: a member's Stop's save window counts from it.
    status_changed_at: datetime | None = None


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    status: Status
    status_message: str
    # The history's reason for a change the status message says nothing of
    # (a running or idle notebook's message is empty); None: the message.
    reason: str | None = None
    requeue_after: float | None = None  # seconds; None: nothing to wait for (the sweep looks)
    executing: bool = False
    touch_last_active: bool = False  # set last_active_at = now (detached work ended)
    outcome: str = "noop"  # metrics/log label: what this pass decided
    auto_stop_reason: str | None = None  # "idle" | "detached" when auto-stopping
    # Commit the status and its reason before acting: the teardown that follows
    # may fail or be cut short, and the reason must not be lost with it.
    record_first: bool = False
    # Decided on presence and activity (a ping, last_active_at): a status
    # change is written only if no ping landed since the row was read.
    presence: bool = False
    # Healthy: disarm the start deadline, so that the next repair arms its own
    # (a repair keeps the session, so nothing else tells an old arm from one).
    disarm_deadline: bool = False


def _executing(nb: NotebookState, observed: Observation) -> bool:
    """Whether the kernel runs a cell, as far as is known: when the runtime
    could not tell (None), what was last known."""
    return nb.executing if observed.executing is None else observed.executing


def _keep(nb: NotebookState, observed: Observation, outcome: str = "noop") -> Plan:
    executing = _executing(nb, observed)
    return Plan((), nb.status, nb.status_message, executing=executing, outcome=outcome)


def _describe(name: str, c: Component) -> str:
    if not c.detail:
        return f"{name} {c.phase.value}"
    return c.detail if c.detail.startswith(name) else f"{name}: {c.detail}"


def _components(observed: Observation) -> tuple[tuple[str, Component], ...]:
    return ("Sail", observed.sail), ("Marimo", observed.marimo)


def _failure(observed: Observation) -> str | None:
    """The real reason a component failed, or None."""
    reasons = [_describe(name, c) for name, c in _components(observed) if c.phase is Phase.FAILED]
    return "; ".join(reasons) or None


def _ended_unwatched(observed: Observation) -> bool:
    """Every failed component ended while no worker watched it: the
    platform was down (its processes killed with it), not the start's own
    failure. A start in progress then is made again, within its deadline,
    not failed on what the crash did (an audit killed a whole stack: both
    starting notebooks came back `failed`)."""
    failures = [c for _, c in _components(observed) if c.phase is Phase.FAILED]
    return bool(failures) and all(c.unwatched and not c.terminal for c in failures)


def _not_ready(observed: Observation) -> str:
    """What each component that is not ready is doing (or why it failed)."""
    return "; ".join(
        _describe(name, c) for name, c in _components(observed) if c.phase is not Phase.READY
    )


def _both_ready(observed: Observation) -> bool:
    return observed.sail.phase is Phase.READY and observed.marimo.phase is Phase.READY


def _progress(observed: Observation) -> str:
    if observed.sail.phase is not Phase.READY:
        return "starting Sail" + _waiting_for(observed.sail)
    return "waiting for Marimo" + _waiting_for(observed.marimo)


def _waiting_for(c: Component) -> str:
    return f" (waiting for {c.waiting_for})" if c.waiting_for else ""


def plan(nb: NotebookState, observed: Observation, now: datetime) -> Plan:
    match nb.desired:
        case Desired.DELETED:
            return Plan((Action.DELETE,), Status.STOPPING, "deleting", outcome="deleted")
        case Desired.STOPPED:
            return _plan_stopped(nb, observed, now)
        case Desired.RUNNING:
            return _plan_running(nb, observed, now)
        case _:
            assert_never(nb.desired)


def _plan_stopped(nb: NotebookState, observed: Observation, now: datetime) -> Plan:
    if (left := _save_window_left(nb, observed, now)) is not None:
        return Plan((), nb.status, nb.status_message, requeue_after=left, outcome="saving")
    if not observed.nothing_left:
        message = nb.status_message if nb.status is Status.STOPPING else "stopping"
        if nb.status is Status.STOPPED:  # found running for a stopped row (the sweep)
            message = LEFT_RUNNING
        return Plan(
            (Action.ENSURE_STOPPED,),
            Status.STOPPING,
            message or "stopping",
            requeue_after=_teardown_poll(observed),
            outcome="stopping",
        )
    if nb.status is Status.STOPPED:
        return _keep(nb, observed)
    if nb.status is Status.FAILED:
        return _failed_settled(nb, observed)  # a failed start stays failed until the next start
    # Nothing observed, but a teardown cut short (a worker killed after the
    # pods went) may have left what observe does not list (a Secret, Service,
    # NetworkPolicy): one more idempotent teardown before `stopped`. The
    # reason (e.g. "idle for 1 h") stays on the notebook and in the event
    # log; a requested stop's "Stop requested" does not (it read as pending).
    message = nb.status_message if nb.status is Status.STOPPING else ""
    if message == STOP_REQUESTED:
        return Plan(
            (Action.ENSURE_STOPPED,),
            Status.STOPPED,
            "",
            reason="Sail and Marimo have stopped",
            outcome="stopped",
        )
    return Plan((Action.ENSURE_STOPPED,), Status.STOPPED, message, outcome="stopped")


def _save_window_left(nb: NotebookState, observed: Observation, now: datetime) -> float | None:
    """Seconds before a member's Stop may stop Marimo, or None to go on now.
    An editor open on it (a member pinged within the presence window) saves
    what was typed last about 1 s after the last keystroke, only while its
    socket is open, and the proxy keeps edit sessions that long: without
    the wait, a Stop (anyone's) discarded it (the durability audit lost the
    last 0.3 s and, typing on, 13 s of work). An automatic stop needs none:
    nobody has pinged for a presence window, so nothing typed is unsaved."""
    if nb.status is not Status.STOPPING or nb.status_message != STOP_REQUESTED:
        return None
    if observed.marimo.phase is not Phase.READY or nb.status_changed_at is None:
        return None
    window = timedelta(seconds=nb.presence_window_seconds)
    if nb.last_seen_at is None or now - nb.last_seen_at >= window:
        return None
    ahead = (nb.status_changed_at - now).total_seconds()
    if ahead > SAVE_WINDOW_CLOCK_TOLERANCE_SECONDS:
        return None  # a stamp from a clock far ahead: no window at all, rather than its hour
    # At most the window at a time, and so at most window + tolerance in all.
    left = min(ahead + SAVE_WINDOW_SECONDS, SAVE_WINDOW_SECONDS)
    return left if left > 0 else None


def _failed_settled(nb: NotebookState, observed: Observation) -> Plan:
    """A failed notebook with nothing observed: kept as it is, after one more
    teardown if the last one was not seen to finish (cut short)."""
    if nb.leftovers:
        return Plan((Action.ENSURE_STOPPED,), nb.status, nb.status_message, outcome="cleanup")
    return _keep(nb, observed)


def _terminating(observed: Observation) -> bool:
    return observed.sail.terminating or observed.marimo.terminating


def _teardown_poll(observed: Observation) -> float:
    """Look again at once after a teardown, unless the runtime is still
    terminating components (pods): then do not spin against its API."""
    return TEARDOWN_POLL_SECONDS if _terminating(observed) else 0


def _plan_running(nb: NotebookState, observed: Observation, now: datetime) -> Plan:
    if nb.status is Status.FAILED:
        # Failed starts stay failed (with their reason) until a member starts
        # again; anything left over is torn down.
        if observed.nothing_left:
            return _failed_settled(nb, observed)
        return Plan((Action.ENSURE_STOPPED,), nb.status, nb.status_message, outcome="cleanup")
    if observed.session_id is not None and observed.session_id != nb.session_id:
        # Leftovers of an older session: remove them before starting this one.
        return Plan(
            (Action.ENSURE_STOPPED,),
            Status.STARTING if nb.status is not Status.STARTING else nb.status,
            "stopping the previous session",
            requeue_after=_teardown_poll(observed),
            outcome="replace_session",
        )
    match nb.status:
        case Status.STARTING | Status.STOPPED | Status.STOPPING:
            return _plan_starting(nb, observed, now)
        case Status.RUNNING | Status.IDLE | Status.DETACHED:
            return _plan_provisioned(nb, observed, now)
        case Status.FAILED:  # handled above
            raise AssertionError("unreachable")
        case _:
            assert_never(nb.status)


def _plan_starting(nb: NotebookState, observed: Observation, now: datetime) -> Plan:
    if repair_retrying(nb) and not _both_ready(observed):
        # The component that died before the repair is still what is
        # observed: no restart was issued yet, so it is not the restart's
        # own failure (which `_failure` below would fail at once).
        return _plan_repair(nb, observed, now)
    restart = _ended_unwatched(observed)
    if (reason := _failure(observed)) is not None and not restart:
        return failed(reason, "failed")
    if _both_ready(observed):
        return Plan(
            (),
            Status.RUNNING,
            "",
            reason=READY,
            executing=_executing(nb, observed),
            outcome="ready",
            disarm_deadline=nb.start_deadline_at is not None,
        )
    actions: tuple[Action, ...] = ()
    if nb.start_deadline_at is None:
        actions = (Action.ARM_DEADLINE,)  # this pass is the session's first attempt
    elif now >= nb.start_deadline_at:
        last = _start_error(nb.status_message)
        error = f": {last}" if last is not None else ""
        return failed(f"start deadline passed{error} ({_not_ready(observed)})", "deadline")
    if restart or Phase.ABSENT in (observed.sail.phase, observed.marimo.phase):
        actions = (*actions, Action.ENSURE_RUNNING)
    elif _terminating(observed):
        # A component of this session being deleted (its pod evicted, its
        # node lost) is not absent, yet nothing else would replace it: the
        # runtime's (idempotent) start removes it for good once it is stuck
        # there and creates it again once it is gone. Looked at no faster
        # than a teardown: each such pass calls the runtime's API.
        return Plan(
            (*actions, Action.ENSURE_RUNNING),
            Status.STARTING,
            _progress(observed),
            requeue_after=TEARDOWN_POLL_SECONDS,
            outcome="starting",
        )
    return Plan(
        actions,
        Status.STARTING,
        _progress(observed),
        requeue_after=POLL_SECONDS,
        outcome="starting",
    )


def _plan_provisioned(nb: NotebookState, observed: Observation, now: datetime) -> Plan:
    assert nb.status in PROVISIONED
    if not _both_ready(observed):
        if not _terminal(observed) and (waiting := _unresponsive(nb, observed, now)) is not None:
            return waiting
        return _plan_repair(nb, observed, now)
    healthy = _plan_presence(nb, observed, now)
    return replace(healthy, presence=True, disarm_deadline=nb.start_deadline_at is not None)


def _terminal(observed: Observation) -> bool:
    return any(c.terminal for _, c in _components(observed) if c.phase is Phase.FAILED)


def _plan_repair(nb: NotebookState, observed: Observation, now: datetime) -> Plan:
    """A component of a provisioned notebook is down. Never `running` with a
    component down: `starting` while the restart is issued (same session,
    same token, same file), within a deadline armed by the repair's first
    attempt. A component that fails again during that start ends in
    `failed`; so does one that cannot be retried (a bad image)."""
    broken = _not_ready(observed)
    if _terminal(observed):
        return failed(broken, "failed")
    actions: tuple[Action, ...] = (Action.ENSURE_RUNNING,)
    if nb.start_deadline_at is None:
        actions = (Action.ARM_DEADLINE, *actions)  # the repair's first attempt
    elif now >= nb.start_deadline_at:
        # Every restart since the first raised (or its write was lost).
        return failed(_repair_failed(nb, observed, broken), "deadline")
    return Plan(
        actions,
        Status.STARTING,
        f"restarting after {broken}",
        requeue_after=POLL_SECONDS,
        outcome="repair",
    )


def _unresponsive(nb: NotebookState, observed: Observation, now: datetime) -> Plan | None:
    """Every component alive, one not answering: the status kept, within the
    grace counted from the first such look (which arms the deadline, so a
    repair that follows counts from then too); None once the grace is over
    or when a component is down, for the repair to take over."""
    alive = (Phase.READY, Phase.STARTING)
    if not (observed.sail.phase in alive and observed.marimo.phase in alive):
        return None
    actions: tuple[Action, ...] = ()
    if nb.start_deadline_at is None:
        actions = (Action.ARM_DEADLINE,)
    else:
        armed_at = nb.start_deadline_at - timedelta(seconds=nb.start_deadline_seconds)
        # At most half the deadline: the repair that follows keeps its turn.
        grace = min(UNRESPONSIVE_GRACE_SECONDS, nb.start_deadline_seconds / 2)
        if now - armed_at >= timedelta(seconds=grace):
            return None
    return Plan(
        actions,
        nb.status,
        nb.status_message,
        requeue_after=POLL_SECONDS,
        executing=_executing(nb, observed),
        outcome="unresponsive",
    )


def _restarting(observed: Observation) -> str:
    names = [name for name, c in _components(observed) if c.phase is not Phase.READY]
    return "restarting " + " and ".join(names)


# What `_restarting` can say: the only heads of a message `attempt_raised`
# wrote. Matched whole, since other messages quote a component's log lines,
# which may say anything ("metastore connect failed, retrying: timed out").
_RESTARTING_HEADS = frozenset(
    {"restarting Sail", "restarting Marimo", "restarting Sail and Marimo"}
)


# The head of what `attempt_raised` writes for a start's own attempt.
_START_ATTEMPT = "start attempt"


def _raised_error(message: str, heads: frozenset[str]) -> str | None:
    """The error of a message `attempt_raised` wrote with one of `heads`, else None."""
    head, retrying, error = message.partition(RETRYING)
    return error if retrying and head in heads else None


def _retry_error(message: str) -> str | None:
    """The error of a repair's message `attempt_raised` wrote, else None."""
    return _raised_error(message, _RESTARTING_HEADS)


def _start_error(message: str) -> str | None:
    """The error of a start attempt's message `attempt_raised` wrote, else None."""
    return _raised_error(message, frozenset({_START_ATTEMPT}))


def _repair_failed(nb: NotebookState, observed: Observation, broken: str) -> str:
    """The reason a repair failed at its deadline: the last error its restart
    raised (the message `attempt_raised` left, unless a ping replaced it),
    and what was down."""
    last = _retry_error(nb.status_message)
    error = f": {last}" if last is not None else ""
    return f"{_restarting(observed)} failed until the start deadline passed{error} ({broken})"


def repair_retrying(nb: NotebookState) -> bool:
    """`starting` because a repair's restart raised (`attempt_raised` said
    so): the component observed down is still the one that died before."""
    return nb.status is Status.STARTING and _retry_error(nb.status_message) is not None


def restarts_a_repair(nb: NotebookState, p: Plan) -> bool:
    """`p` is a repair's restart: a provisioned notebook's ENSURE_RUNNING,
    or a retry of one whose restart raised."""
    repairing = nb.status in PROVISIONED or repair_retrying(nb)
    return repairing and Action.ENSURE_RUNNING in p.actions


def attempt_raised(nb: NotebookState, p: Plan, observed: Observation, error: str) -> Plan | None:
    """What to record when applying `p` raised a transient error (the pass is
    retried with back-off): for a repair, `starting` with a message saying
    the restart fails; for a start's own attempt, the error it met (a
    namespace that does not exist, a quota full), which its failure at the
    deadline repeats; None for anything else (a teardown is retried).

    The message also marks the row (`repair_retrying`): the next pass reads
    the component that died before the repair as still to be restarted,
    not as the restart's own failure, so a transient error gets retries.
    The deadline the first attempt armed bounds it: past it, `plan` fails
    the notebook with this error."""
    if not restarts_a_repair(nb, p):
        if nb.status is not Status.STARTING or Action.ENSURE_RUNNING not in p.actions:
            return None
        return Plan((), Status.STARTING, f"{_START_ATTEMPT}{RETRYING}{error}", outcome="error")
    return Plan(
        (),
        Status.STARTING,
        f"{_restarting(observed)}{RETRYING}{error}",
        executing=nb.executing,
        outcome="error",
    )


UNOBSERVED = "waiting for the runtime to answer: "


def unobserved(nb: NotebookState, error: str, now: datetime) -> Plan | None:
    """What to record when the runtime could not be looked at (an API server
    refusing the worker's reads, its Role short of a verb): a start says why
    it waits, within its deadline (armed now if it was not), and fails once
    that has passed; None otherwise (the error is retried with back-off).
    Nothing is acted on: what runs cannot be seen. A start failed so is
    cleaned up by the first pass that can look again."""
    if nb.status is not Status.STARTING:
        return None
    if nb.start_deadline_at is not None and now >= nb.start_deadline_at:
        reason = f"start deadline passed (the runtime could not be read: {error})"
        return Plan((), Status.FAILED, reason, outcome="deadline")
    if repair_retrying(nb):
        return None  # its message is its marker (the component to restart): kept
    arm = (Action.ARM_DEADLINE,) if nb.start_deadline_at is None else ()
    return Plan(arm, Status.STARTING, f"{UNOBSERVED}{error}", outcome="error")


def _plan_presence(nb: NotebookState, observed: Observation, now: datetime) -> Plan:
    """Healthy and provisioned: running, idle or detached, or auto-stopped."""
    window = timedelta(seconds=nb.presence_window_seconds)
    present = any(
        t is not None and now - t < window for t in (nb.last_seen_at, nb.start_requested_at)
    )
    executing = _executing(nb, observed)
    absent = f"no member present for {duration(nb.presence_window_seconds)}"
    if present:
        return Plan(
            (),
            Status.RUNNING,
            "",
            reason="a member is present",
            executing=executing,
            outcome=_moved(nb, "running"),
        )
    last_active = nb.last_active_at or now
    unknown = observed.executing is None
    if executing or unknown:
        # Unknown (the runtime could not ask the kernel) counts as executing
        # for stopping: the idle timeout never stops a kernel that may be
        # running a job; the detached timeout bounds it as it bounds real work.
        timeout = capped(nb.detached_timeout_seconds, nb.detached_timeout_cap)
        if timeout and now - last_active >= timedelta(seconds=timeout):
            what = "detached" if executing else "inactive (whether a cell runs is unknown)"
            what = f"{what} for {_limit(timeout, nb.detached_timeout_seconds)}"
            return _auto_stop(what, "detached", executing)
    if executing:
        return Plan(
            (),
            Status.DETACHED,
            "",
            reason=f"{absent}; a cell is running",
            executing=True,
            outcome=_moved(nb, "detached"),
        )
    if unknown:  # last known not executing: shown idle, but not stopped as idle
        return Plan((), Status.IDLE, UNKNOWN_ACTIVITY, outcome=_moved(nb, "idle"))
    # Idle: the timer counts from the last ping, or from when detached work ended.
    if nb.status is Status.DETACHED:
        return Plan(
            (),
            Status.IDLE,
            "",
            reason=f"the running cells finished; {absent}",
            touch_last_active=True,
            outcome="idle",
        )
    timeout = capped(nb.idle_timeout_seconds, nb.idle_timeout_cap)
    if timeout and now - last_active >= timedelta(seconds=timeout):
        return _auto_stop(f"idle for {_limit(timeout, nb.idle_timeout_seconds)}", "idle", False)
    return Plan((), Status.IDLE, "", reason=absent, outcome=_moved(nb, "idle"))


def _limit(timeout: int, own: int) -> str:
    """The timeout that stopped it, saying so when it was the organization's
    cap rather than the notebook's own: its owner set something else."""
    if timeout == own:
        return duration(timeout)
    return f"{duration(timeout)} (the organization's limit)"


def _moved(nb: NotebookState, to: str) -> str:
    return "noop" if nb.status.value == to else to


def failed(reason: str, outcome: str = "failed") -> Plan:
    """A start that failed: `failed` with the real reason, recorded before the teardown."""
    return Plan((Action.ENSURE_STOPPED,), Status.FAILED, reason, outcome=outcome, record_first=True)


def _auto_stop(message: str, reason: str, executing: bool) -> Plan:
    return Plan(
        (Action.AUTO_STOP, Action.ENSURE_STOPPED),
        Status.STOPPING,
        message,
        requeue_after=0,
        executing=executing,
        outcome="auto_stop",
        auto_stop_reason=reason,
        record_first=True,  # desired state, status and reason in one transaction
    )
