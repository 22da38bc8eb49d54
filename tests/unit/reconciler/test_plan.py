"""plan() over every desired state × status × observation: an explicit table
for what each case must decide, and invariants checked over the whole product."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from common.statuses import PROVISIONED, SAVE_WINDOW_SECONDS, STOP_REQUESTED, Desired, Status
from reconciler.plan import (
    TEARDOWN_POLL_SECONDS,
    UNKNOWN_ACTIVITY,
    UNRESPONSIVE_GRACE_SECONDS,
    Action,
    NotebookState,
    attempt_raised,
    duration,
    plan,
    repair_retrying,
)
from reconciler.runtime.base import ABSENT, Component, Observation, Phase

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
S = "SESSION1"

READY = Component(Phase.READY)
STARTING = Component(Phase.STARTING)
DEAD = Component(Phase.FAILED, "exited with code 1: boom")
BAD = Component(Phase.FAILED, "image pull failed", terminal=True)
GOING = Component(Phase.STARTING, "terminating", terminating=True)

OBS = {
    "nothing": Observation(session_id=None),
    "starting": Observation(S, sail=STARTING, marimo=STARTING),
    "sail_ready": Observation(S, sail=READY, marimo=STARTING),
    "marimo_absent": Observation(S, sail=READY, marimo=ABSENT),
    "ready": Observation(S, sail=READY, marimo=READY),
    "executing": Observation(S, sail=READY, marimo=READY, executing=True),
    "unknown": Observation(S, sail=READY, marimo=READY, executing=None),  # probe failed
    "sail_dead": Observation(S, sail=DEAD, marimo=READY),
    "marimo_dead": Observation(S, sail=READY, marimo=DEAD),
    "terminal": Observation(S, sail=BAD, marimo=READY),
    "old_session": Observation("OLD", sail=READY, marimo=READY),
    "old_terminating": Observation("OLD", sail=GOING, marimo=GOING),
    "old_half_gone": Observation("OLD", sail=GOING, marimo=READY),
    "terminating": Observation(S, sail=GOING, marimo=GOING),
    # This session's Marimo pod being deleted (evicted, its node lost).
    "marimo_terminating": Observation(S, sail=READY, marimo=GOING),
    # A worker died between spawning a process and recording it.
    "untracked": Observation(S, untracked=True),
}


def nb(desired: Desired, status: Status, **kw: object) -> NotebookState:
    # A provisioned notebook's deadline was disarmed when it became healthy;
    # a repair arms its own at its first attempt.
    deadline = None if status in PROVISIONED else NOW + timedelta(seconds=60)
    base = NotebookState(
        id="NB",
        desired=desired,
        status=status,
        status_message="",
        generation=3,
        session_id=S,
        start_deadline_at=deadline,
        last_active_at=NOW - timedelta(seconds=10),
        last_seen_at=NOW - timedelta(seconds=10),
        executing=False,
        idle_timeout_seconds=3600,
        detached_timeout_seconds=14400,
        presence_window_seconds=150,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


R, ST, D = Desired.RUNNING, Desired.STOPPED, Desired.DELETED
E_RUN, E_STOP, E_DEL = Action.ENSURE_RUNNING, Action.ENSURE_STOPPED, Action.DELETE
ARM = Action.ARM_DEADLINE

# (desired, status, observation) -> (actions, status, message contains)
TABLE = [
    # starting
    (R, Status.STARTING, "nothing", (E_RUN,), Status.STARTING, "starting Sail"),
    (R, Status.STARTING, "starting", (), Status.STARTING, "starting Sail"),
    (R, Status.STARTING, "sail_ready", (), Status.STARTING, "waiting for Marimo"),
    (R, Status.STARTING, "marimo_absent", (E_RUN,), Status.STARTING, "waiting for Marimo"),
    # this session's pods being deleted are not absent, but only a start
    # replaces them (the runtime's, once they are stuck there): idempotent
    (R, Status.STARTING, "terminating", (E_RUN,), Status.STARTING, "starting Sail"),
    (R, Status.STARTING, "marimo_terminating", (E_RUN,), Status.STARTING, "waiting for Marimo"),
    (R, Status.STARTING, "ready", (), Status.RUNNING, ""),
    (R, Status.STARTING, "sail_dead", (E_STOP,), Status.FAILED, "exited with code 1: boom"),
    (R, Status.STARTING, "marimo_dead", (E_STOP,), Status.FAILED, "Marimo: exited with code 1"),
    (R, Status.STARTING, "old_session", (E_STOP,), Status.STARTING, "previous session"),
    (R, Status.STARTING, "old_terminating", (E_STOP,), Status.STARTING, "previous session"),
    (R, Status.STOPPED, "old_terminating", (E_STOP,), Status.STARTING, "previous session"),
    # provisioned and present
    (R, Status.RUNNING, "ready", (), Status.RUNNING, ""),
    (R, Status.IDLE, "ready", (), Status.RUNNING, ""),
    (R, Status.DETACHED, "executing", (), Status.RUNNING, ""),
    # provisioned and broken: repaired within a fresh deadline, or failed if hopeless
    (
        R,
        Status.RUNNING,
        "marimo_dead",
        (ARM, E_RUN),
        Status.STARTING,
        "restarting after Marimo",
    ),
    (
        R,
        Status.IDLE,
        "sail_dead",
        (ARM, E_RUN),
        Status.STARTING,
        "restarting after Sail",
    ),
    # alive but not answering its probe: the status kept within the grace (armed here)
    (R, Status.RUNNING, "starting", (ARM,), Status.RUNNING, ""),
    (R, Status.IDLE, "sail_ready", (ARM,), Status.IDLE, ""),
    (R, Status.RUNNING, "nothing", (ARM, E_RUN), Status.STARTING, "restart"),
    (R, Status.RUNNING, "terminal", (E_STOP,), Status.FAILED, "image pull failed"),
    # failed stays failed; leftovers are removed
    (R, Status.FAILED, "nothing", (), Status.FAILED, ""),
    (R, Status.FAILED, "marimo_dead", (E_STOP,), Status.FAILED, ""),
    # stop
    (ST, Status.STOPPING, "ready", (E_STOP,), Status.STOPPING, ""),
    # nothing observed: one more teardown (what observe does not list) before `stopped`
    (ST, Status.STOPPING, "nothing", (E_STOP,), Status.STOPPED, ""),
    (ST, Status.STARTING, "starting", (E_STOP,), Status.STOPPING, "stopping"),
    (ST, Status.STOPPED, "nothing", (), Status.STOPPED, ""),
    (ST, Status.RUNNING, "nothing", (E_STOP,), Status.STOPPED, ""),
    (ST, Status.FAILED, "nothing", (), Status.FAILED, ""),
    # a process spawned but never recorded (worker killed): found by a start or a teardown
    (R, Status.STARTING, "untracked", (E_RUN,), Status.STARTING, "starting Sail"),
    (ST, Status.STOPPING, "untracked", (E_STOP,), Status.STOPPING, ""),
    (ST, Status.RUNNING, "untracked", (E_STOP,), Status.STOPPING, ""),
    (R, Status.FAILED, "untracked", (E_STOP,), Status.FAILED, ""),
    # delete: always tear down and remove
    (D, Status.RUNNING, "ready", (E_DEL,), Status.STOPPING, "deleting"),
    (D, Status.STOPPED, "nothing", (E_DEL,), Status.STOPPING, "deleting"),
]


@pytest.mark.parametrize(("desired", "status", "obs", "actions", "to", "message"), TABLE)
def test_plan_table(desired, status, obs, actions, to, message) -> None:
    p = plan(nb(desired, status), OBS[obs], NOW)
    assert p.actions == actions
    assert p.status is to
    assert message in p.status_message


@pytest.mark.parametrize(
    ("desired", "status", "obs"), list(itertools.product(Desired, Status, OBS))
)
def test_plan_invariants_over_every_case(desired: Desired, status: Status, obs: str) -> None:
    o = OBS[obs]
    p = plan(nb(desired, status), o, NOW)
    both_ready = o.sail.phase is Phase.READY and o.marimo.phase is Phase.READY
    # Never running (or idle/detached) with a component down; one alive but
    # not answering only within the grace, which this pass may arm.
    if p.status in (Status.RUNNING, Status.IDLE, Status.DETACHED):
        alive = (Phase.READY, Phase.STARTING)
        if both_ready:
            assert not p.actions
        else:
            assert o.sail.phase in alive and o.marimo.phase in alive, (o, p)
            assert p.actions in ((), (Action.ARM_DEADLINE,)) and p.outcome == "unresponsive"
    if desired is Desired.DELETED:
        assert p.actions == (Action.DELETE,)
    if desired is Desired.STOPPED:
        assert Action.ENSURE_RUNNING not in p.actions
        assert p.status in (Status.STOPPING, Status.STOPPED, Status.FAILED)
    if p.status is Status.FAILED and status is not Status.FAILED:
        assert p.status_message and Action.ENSURE_STOPPED in p.actions  # reason, torn down
        assert p.record_first  # the reason is committed before the teardown
    if Action.AUTO_STOP in p.actions:
        assert p.record_first  # desired state, status and reason in one transaction
    if p.record_first:
        assert p.status in (Status.FAILED, Status.STOPPING) and p.status_message
    if p.status is Status.STARTING:
        assert p.requeue_after is not None and p.requeue_after <= 1
    if p.status is Status.STOPPED and status is not Status.STOPPED:
        assert p.actions == (Action.ENSURE_STOPPED,)  # a teardown cut short is finished first
    if Action.ARM_DEADLINE in p.actions:
        assert p.actions[0] is Action.ARM_DEADLINE  # committed before the attempt it bounds
    if p.disarm_deadline:  # only once healthy, never while a start or repair is under way
        assert both_ready and p.status in (*PROVISIONED, Status.STOPPING)
    # Exactly the decisions made on presence and activity are written only if
    # no ping landed meanwhile (running/idle/detached of a healthy notebook, auto-stop).
    healthy = both_ready and o.session_id == S
    assert p.presence == (desired is R and status in PROVISIONED and healthy)


@pytest.mark.parametrize(("status", "obs"), list(itertools.product(Status, OBS)))
def test_a_start_no_pass_attempted_yet_arms_its_deadline_and_never_fails_on_it(
    status: Status, obs: str
) -> None:
    """The API's deadline (from the request) is not the plan's: until a pass
    arms one for the session, time spent waiting for a worker never counts."""
    p = plan(nb(R, status, start_deadline_at=None), OBS[obs], NOW + timedelta(days=1))
    assert p.outcome != "deadline"
    if Action.ENSURE_RUNNING in p.actions:
        assert p.actions[0] is Action.ARM_DEADLINE


P = TEARDOWN_POLL_SECONDS

# (desired, status, observation) -> how soon to look again: at once after a
# teardown that is done when the action returns (local processes), spaced out
# while the runtime still shows components terminating (pods), never spun.
REQUEUE = [
    (R, Status.STARTING, "old_session", 0),
    (R, Status.STARTING, "old_terminating", P),
    (R, Status.STARTING, "old_half_gone", P),
    (R, Status.STOPPED, "old_terminating", P),
    (ST, Status.STOPPING, "ready", 0),
    (ST, Status.STOPPING, "terminating", P),
    (ST, Status.RUNNING, "terminating", P),
    (ST, Status.STOPPING, "nothing", None),
    (R, Status.STARTING, "starting", 0.05),
    # a start that asks the runtime to replace a terminating pod: each pass
    # calls its API, so not faster than a teardown
    (R, Status.STARTING, "terminating", P),
    (R, Status.STARTING, "marimo_terminating", P),
]


@pytest.mark.parametrize(("desired", "status", "obs", "requeue"), REQUEUE)
def test_plan_requeue_table(desired, status, obs, requeue) -> None:
    assert plan(nb(desired, status), OBS[obs], NOW).requeue_after == requeue


def test_a_first_attempt_arms_the_deadline_before_starting() -> None:
    fresh = nb(R, Status.STARTING, start_deadline_at=None)
    assert plan(fresh, OBS["nothing"], NOW).actions == (ARM, E_RUN)
    assert plan(fresh, OBS["starting"], NOW).actions == (ARM,)  # started before it was armed
    assert plan(fresh, OBS["ready"], NOW).status is Status.RUNNING
    armed = nb(R, Status.STARTING)
    assert plan(armed, OBS["nothing"], NOW).actions == (E_RUN,)  # armed once per session


def test_a_start_whose_pod_stays_terminating_asks_again_then_fails_at_its_deadline() -> None:
    """A pod of this session stuck being deleted (its node lost): every
    pass asks the runtime to start (which deletes it with no grace once it
    is stuck, and creates it again); if it never goes, the deadline fails
    the start with what was left."""
    starting = nb(R, Status.STARTING, status_message="restarting after Marimo: not ready")
    fresh = replace(starting, start_deadline_at=None)
    assert plan(fresh, OBS["marimo_terminating"], NOW).actions == (ARM, E_RUN)
    assert plan(starting, OBS["marimo_terminating"], NOW).actions == (E_RUN,)
    late = plan(starting, OBS["marimo_terminating"], NOW + timedelta(seconds=61))
    assert late.status is Status.FAILED and late.outcome == "deadline"
    assert "Marimo: terminating" in late.status_message


def test_a_teardown_not_seen_to_finish_is_finished_once_for_a_failed_notebook() -> None:
    """runtime_state not emptied: the teardown of a failed start was cut short."""
    for desired in (R, ST):
        left = nb(desired, Status.FAILED, status_message="boom", leftovers=True)
        p = plan(left, OBS["nothing"], NOW)
        assert (p.actions, p.status, p.status_message) == ((E_STOP,), Status.FAILED, "boom")
        assert plan(nb(desired, Status.FAILED), OBS["nothing"], NOW).actions == ()


def test_start_deadline_fails_and_tears_down_with_what_was_not_ready() -> None:
    late = nb(R, Status.STARTING, start_deadline_at=NOW - timedelta(seconds=1))
    p = plan(late, OBS["sail_ready"], NOW)
    assert p.status is Status.FAILED
    assert p.actions == (Action.ENSURE_STOPPED,)
    assert "start deadline" in p.status_message and "Marimo" in p.status_message


def test_no_ping_within_window_goes_idle_then_auto_stops_after_idle_timeout() -> None:
    gone = NOW - timedelta(seconds=151)
    p = plan(nb(R, Status.RUNNING, last_seen_at=gone, last_active_at=gone), OBS["ready"], NOW)
    assert (p.status, p.actions) == (Status.IDLE, ())
    stale = NOW - timedelta(seconds=3600)
    p = plan(nb(R, Status.IDLE, last_seen_at=stale, last_active_at=stale), OBS["ready"], NOW)
    assert p.status is Status.STOPPING
    assert p.actions == (Action.AUTO_STOP, Action.ENSURE_STOPPED)
    assert p.status_message == "idle for 1 h" and p.auto_stop_reason == "idle"
    assert p.record_first


def test_idle_timeout_zero_never_auto_stops() -> None:
    old = NOW - timedelta(days=30)
    p = plan(
        nb(R, Status.IDLE, last_seen_at=old, last_active_at=old, idle_timeout_seconds=0),
        OBS["ready"],
        NOW,
    )
    assert (p.status, p.actions) == (Status.IDLE, ())


def test_the_organizations_cap_stops_an_idle_notebook_its_own_timeout_would_keep() -> None:
    """A cap set after the member chose "never" (or longer) still bounds it
    (migration 0019), and the history says whose limit it was."""
    at_cap = NOW - timedelta(seconds=1800)
    for own in (0, 3600):
        state = nb(
            R,
            Status.IDLE,
            last_seen_at=at_cap,
            last_active_at=at_cap,
            idle_timeout_seconds=own,
            idle_timeout_cap=1800,
        )
        p = plan(state, OBS["ready"], NOW)
        assert p.actions == (Action.AUTO_STOP, Action.ENSURE_STOPPED), own
        assert p.status_message == "idle for 30 min (the organization's limit)"
        early = replace(state, last_active_at=at_cap + timedelta(seconds=1))
        assert plan(early, OBS["ready"], NOW).actions == ()


def test_a_cap_above_the_notebooks_own_timeout_changes_nothing() -> None:
    stale = NOW - timedelta(seconds=3600)
    state = nb(R, Status.IDLE, last_seen_at=stale, last_active_at=stale, idle_timeout_cap=7200)
    p = plan(state, OBS["ready"], NOW)
    assert p.status_message == "idle for 1 h" and p.auto_stop_reason == "idle"


def test_the_detached_cap_bounds_a_running_cell_nobody_watches() -> None:
    old = NOW - timedelta(seconds=3600)
    state = nb(
        R,
        Status.DETACHED,
        last_seen_at=old,
        last_active_at=old,
        detached_timeout_seconds=0,
        detached_timeout_cap=3600,
    )
    p = plan(state, OBS["executing"], NOW)
    assert p.status is Status.STOPPING and p.auto_stop_reason == "detached"
    assert p.status_message == "detached for 1 h (the organization's limit)"
    # the idle cap does not reach a detached notebook
    state = replace(state, detached_timeout_cap=0, idle_timeout_cap=300)
    assert plan(state, OBS["executing"], NOW).status is Status.DETACHED


def test_executing_without_presence_is_detached_and_ending_work_restarts_idle_timer() -> None:
    gone = NOW - timedelta(seconds=500)
    p = plan(nb(R, Status.IDLE, last_seen_at=gone, last_active_at=gone), OBS["executing"], NOW)
    assert p.status is Status.DETACHED and p.executing
    p = plan(nb(R, Status.DETACHED, last_seen_at=gone, last_active_at=gone), OBS["ready"], NOW)
    assert p.status is Status.IDLE and p.touch_last_active


def test_detached_auto_stops_after_detached_timeout() -> None:
    old = NOW - timedelta(seconds=14400)
    p = plan(nb(R, Status.DETACHED, last_seen_at=old, last_active_at=old), OBS["executing"], NOW)
    assert p.status is Status.STOPPING and p.status_message == "detached for 4 h"
    assert p.auto_stop_reason == "detached"


def test_a_fresh_start_counts_as_presence_for_one_window() -> None:
    p = plan(
        nb(R, Status.RUNNING, last_seen_at=None, start_requested_at=NOW - timedelta(seconds=5)),
        OBS["ready"],
        NOW,
    )
    assert p.status is Status.RUNNING


def test_teardown_in_progress_is_polled_not_spun() -> None:
    """A stop acts and looks again at once (a local teardown is done when the
    action returns); while the runtime still shows components terminating
    (pods), the next looks are spaced out so its API is not hammered."""
    from reconciler.plan import TEARDOWN_POLL_SECONDS

    up = OBS["sail_ready"]
    going = Observation(S, sail=Component(Phase.STARTING, "terminating", terminating=True))
    assert plan(nb(Desired.STOPPED, Status.STOPPING), up, NOW).requeue_after == 0
    again = plan(nb(Desired.STOPPED, Status.STOPPING), going, NOW)
    assert again.actions == (Action.ENSURE_STOPPED,)
    assert again.requeue_after == TEARDOWN_POLL_SECONDS > 0


def test_an_unknown_executing_never_reads_as_idle_for_the_idle_timeout() -> None:
    """The runtime could not ask the kernel (the probe failed or timed out):
    a notebook past its idle timeout is not stopped, since its kernel may be
    running a long job; it shows what was last known."""
    stale = NOW - timedelta(seconds=3600)
    idle = nb(R, Status.IDLE, last_seen_at=stale, last_active_at=stale)
    assert plan(idle, OBS["ready"], NOW).actions == (Action.AUTO_STOP, Action.ENSURE_STOPPED)
    p = plan(idle, OBS["unknown"], NOW)
    assert (p.status, p.actions, p.executing, p.touch_last_active) == (
        Status.IDLE,
        (),
        False,
        False,
    )
    assert p.status_message == UNKNOWN_ACTIVITY  # said, not silent
    lapsed = plan(
        nb(R, Status.RUNNING, last_seen_at=stale, last_active_at=stale), OBS["unknown"], NOW
    )
    assert (lapsed.status, lapsed.actions) == (Status.IDLE, ())


def test_an_unknown_executing_keeps_detached_work_detached() -> None:
    gone = NOW - timedelta(seconds=3600)
    detached = nb(R, Status.DETACHED, last_seen_at=gone, last_active_at=gone, executing=True)
    p = plan(detached, OBS["unknown"], NOW)
    # Not "work ended" (which would go idle and restart the idle timer).
    assert (p.status, p.actions, p.executing, p.touch_last_active) == (
        Status.DETACHED,
        (),
        True,
        False,
    )
    present = plan(replace(detached, last_seen_at=NOW), OBS["unknown"], NOW)
    assert (present.status, present.executing) == (Status.RUNNING, True)


def test_an_unknown_executing_is_still_bounded_by_the_detached_timeout() -> None:
    old = NOW - timedelta(seconds=14400)
    for executing in (True, False):
        p = plan(
            nb(R, Status.IDLE, last_seen_at=old, last_active_at=old, executing=executing),
            OBS["unknown"],
            NOW,
        )
        assert p.actions == (Action.AUTO_STOP, Action.ENSURE_STOPPED)
        assert p.auto_stop_reason == "detached" and "4 h" in p.status_message
    never = nb(R, Status.IDLE, last_seen_at=old, last_active_at=old, detached_timeout_seconds=0)
    assert plan(never, OBS["unknown"], NOW).actions == ()


def test_a_repair_arms_its_deadline_once_and_fails_when_it_passes() -> None:
    """A repair keeps its session: the deadline its first attempt armed
    bounds every later attempt (each of which may have raised), instead of
    being armed again by each of them."""
    first = plan(nb(R, Status.RUNNING), OBS["marimo_dead"], NOW)
    assert (first.actions, first.status, first.outcome) == ((ARM, E_RUN), Status.STARTING, "repair")
    armed = nb(R, Status.IDLE, start_deadline_at=NOW + timedelta(seconds=1))
    again = plan(armed, OBS["marimo_dead"], NOW)
    assert (again.actions, again.status) == ((E_RUN,), Status.STARTING)
    assert again.status_message == "restarting after Marimo: exited with code 1: boom"

    raised = replace(
        armed,
        start_deadline_at=NOW,
        status_message="restarting Marimo failed, retrying: OSError: [Errno 28] disk full",
    )
    late = plan(raised, OBS["marimo_dead"], NOW)
    assert (late.actions, late.status, late.outcome) == ((E_STOP,), Status.FAILED, "deadline")
    assert late.status_message == (
        "restarting Marimo failed until the start deadline passed:"
        " OSError: [Errno 28] disk full (Marimo: exited with code 1: boom)"
    )
    assert late.record_first
    # The message replaced meanwhile (a ping moved idle to running): no last error to quote.
    pinged = replace(raised, status=Status.RUNNING, status_message="")
    assert plan(pinged, OBS["sail_dead"], NOW).status_message == (
        "restarting Sail failed until the start deadline passed (Sail: exited with code 1: boom)"
    )


def test_a_restart_that_raised_moves_to_starting_and_says_so() -> None:
    """Never `running` with a component down, also while the repair's
    restart keeps raising."""
    for status in PROVISIONED:
        broken = nb(R, status, executing=True, start_deadline_at=NOW)
        p = plan(broken, OBS["marimo_dead"], NOW - timedelta(seconds=1))
        said = attempt_raised(broken, p, OBS["marimo_dead"], "OSError: [Errno 24] Too many")
        assert said is not None
        assert (said.actions, said.status, said.executing) == ((), Status.STARTING, True)
        assert said.status_message == (
            "restarting Marimo failed, retrying: OSError: [Errno 24] Too many"
        )
        assert not (said.record_first or said.presence or said.disarm_deadline)
    both = Observation(S, sail=DEAD, marimo=ABSENT)
    p = plan(nb(R, Status.RUNNING), both, NOW)
    said = attempt_raised(nb(R, Status.RUNNING), p, both, "boom")
    assert said is not None and said.status_message.startswith("restarting Sail and Marimo failed")
    # A teardown records nothing (it is retried); a start's attempt, below.
    stop = nb(ST, Status.STOPPING)
    assert attempt_raised(stop, plan(stop, OBS["ready"], NOW), OBS["ready"], "x") is None


def test_a_repair_whose_restart_raised_goes_on_as_a_repair_while_starting() -> None:
    """`starting` after a restart that raised still sees the Marimo that died
    before the repair: restarted again (and said again if it raises), not
    failed as if the restart had failed; past the deadline, failed with the
    last error; a component that cannot be retried fails at once; once both
    are ready, running."""
    retrying = nb(
        R,
        Status.STARTING,
        start_deadline_at=NOW + timedelta(seconds=1),
        status_message="restarting Marimo failed, retrying: OSError: [Errno 28] disk full",
    )
    again = plan(retrying, OBS["marimo_dead"], NOW)
    assert (again.actions, again.status, again.outcome) == ((E_RUN,), Status.STARTING, "repair")
    assert again.status_message == "restarting after Marimo: exited with code 1: boom"
    assert attempt_raised(retrying, again, OBS["marimo_dead"], "boom") is not None

    late = plan(retrying, OBS["marimo_dead"], NOW + timedelta(seconds=1))
    assert (late.actions, late.status, late.outcome) == ((E_STOP,), Status.FAILED, "deadline")
    assert late.status_message == (
        "restarting Marimo failed until the start deadline passed:"
        " OSError: [Errno 28] disk full (Marimo: exited with code 1: boom)"
    )
    hopeless = Observation(S, sail=READY, marimo=BAD)
    assert plan(retrying, hopeless, NOW).status is Status.FAILED
    healthy = plan(retrying, OBS["ready"], NOW)
    assert (healthy.status, healthy.outcome, healthy.disarm_deadline) == (
        Status.RUNNING,
        "ready",
        True,
    )
    # A start (not a repair) whose Marimo died is the start's own failure,
    # also when the message of a restart that went through quotes a log line
    # that reads like a retry.
    start = replace(retrying, status_message="waiting for Marimo")
    assert plan(start, OBS["marimo_dead"], NOW).status is Status.FAILED
    logged = replace(
        retrying,
        status_message="restarting after Marimo: exited with code 1: "
        "metastore connect failed, retrying: timed out",
    )
    assert plan(logged, OBS["marimo_dead"], NOW).status is Status.FAILED


def test_healthy_again_disarms_the_deadline_of_the_start_or_repair() -> None:
    started = plan(nb(R, Status.STARTING), OBS["ready"], NOW)
    assert (started.status, started.disarm_deadline) == (Status.RUNNING, True)
    repaired = nb(R, Status.RUNNING, start_deadline_at=NOW - timedelta(days=1))
    assert plan(repaired, OBS["ready"], NOW).disarm_deadline  # an arm not cleared before
    assert not plan(nb(R, Status.RUNNING), OBS["ready"], NOW).disarm_deadline  # nothing to do
    assert not plan(repaired, OBS["marimo_dead"], NOW).disarm_deadline


def test_an_unresponsive_component_gets_a_grace_then_the_repair_then_the_deadline() -> None:
    """Alive but missing its health check: the status stays for
    UNRESPONSIVE_GRACE_SECONDS from the first such look (one missed probe
    under load must not take a running notebook offline); then the repair
    (starting, restart what is missing) within the deadline armed by that
    first look; past it, failed."""
    first = plan(nb(R, Status.RUNNING), OBS["sail_ready"], NOW)
    assert (first.actions, first.status, first.outcome) == (
        (Action.ARM_DEADLINE,),
        Status.RUNNING,
        "unresponsive",
    )
    assert first.requeue_after is not None
    armed = replace(nb(R, Status.RUNNING), start_deadline_at=NOW + timedelta(seconds=120))
    within = plan(armed, OBS["sail_ready"], NOW + timedelta(seconds=UNRESPONSIVE_GRACE_SECONDS - 1))
    assert (within.actions, within.status) == ((), Status.RUNNING)
    after = plan(armed, OBS["sail_ready"], NOW + timedelta(seconds=UNRESPONSIVE_GRACE_SECONDS))
    assert (after.actions, after.status) == ((Action.ENSURE_RUNNING,), Status.STARTING)
    assert "restarting after Marimo starting" in after.status_message
    late = plan(armed, OBS["sail_ready"], NOW + timedelta(seconds=120))
    assert (late.status, late.outcome) == (Status.FAILED, "deadline")
    # Answering again within the grace: healthy, the deadline disarmed.
    back = plan(armed, OBS["ready"], NOW + timedelta(seconds=5))
    assert back.status is Status.RUNNING and back.disarm_deadline
    # A short start deadline: the grace is half of it, so the repair still
    # gets the other half instead of the deadline failing it untried.
    short = replace(armed, start_deadline_seconds=20, start_deadline_at=NOW + timedelta(seconds=20))
    assert plan(short, OBS["sail_ready"], NOW + timedelta(seconds=9)).status is Status.RUNNING
    repair = plan(short, OBS["sail_ready"], NOW + timedelta(seconds=10))
    assert (repair.actions, repair.status) == ((Action.ENSURE_RUNNING,), Status.STARTING)
    # A component down is no grace: the repair at once.
    dead = plan(nb(R, Status.RUNNING), OBS["marimo_dead"], NOW)
    assert dead.status is Status.STARTING


def test_a_start_says_what_its_component_waits_for() -> None:
    """An unschedulable pod (no node fits yet) waits within the deadline,
    and the member reads why in the status message."""
    node = Component(Phase.STARTING, "pod: Unschedulable", waiting_for="a node: 0/3 nodes fit")
    p = plan(nb(R, Status.STARTING), Observation(S, sail=node, marimo=STARTING), NOW)
    assert (p.status, p.status_message) == (
        Status.STARTING,
        "starting Sail (waiting for a node: 0/3 nodes fit)",
    )


def test_a_start_attempt_that_raised_says_so_and_its_failure_repeats_it() -> None:
    """A start whose runtime refuses every attempt (a namespace that does not
    exist, a quota full) says why while it retries, and its failure at the
    deadline names that error, not only what was absent."""
    start = nb(R, Status.STARTING, start_deadline_at=NOW + timedelta(seconds=1))
    p = plan(start, OBS["nothing"], NOW)
    error = 'ApiException (404): namespaces "notebooks" not found'
    said = attempt_raised(start, p, OBS["nothing"], error)
    assert said is not None
    assert (said.actions, said.status) == ((), Status.STARTING)
    assert said.status_message == f"start attempt failed, retrying: {error}"
    retrying = replace(start, status_message=said.status_message)
    assert not repair_retrying(retrying)  # a start, not a repair: no repair's marker
    again = plan(retrying, OBS["nothing"], NOW)
    assert (again.actions, again.status) == ((E_RUN,), Status.STARTING)
    late = plan(retrying, OBS["nothing"], NOW + timedelta(seconds=1))
    assert (late.status, late.outcome) == (Status.FAILED, "deadline")
    assert late.status_message == f"start deadline passed: {error} (Sail absent; Marimo absent)"
    # A start whose last attempt did not raise fails as before, on what was absent.
    plain = plan(start, OBS["nothing"], NOW + timedelta(seconds=1))
    assert plain.status_message == "start deadline passed (Sail absent; Marimo absent)"


def test_a_start_whose_processes_ended_unwatched_is_made_again_within_its_deadline() -> None:
    """Killed with the whole platform (no worker saw them end): started
    again, not failed on it; one seen to fail still fails the start, and so
    does the deadline."""
    start = nb(R, Status.STARTING, start_deadline_at=NOW + timedelta(seconds=1))
    crashed = Component(Phase.FAILED, "Sail exited: starting", unwatched=True)
    both = Observation(S, sail=crashed, marimo=replace(crashed, detail="Marimo exited"))
    again = plan(start, both, NOW)
    assert (again.actions, again.status) == ((E_RUN,), Status.STARTING)
    assert again.status_message == "starting Sail"
    seen = Observation(S, sail=crashed, marimo=Component(Phase.FAILED, "Marimo exited with code 1"))
    assert plan(start, seen, NOW).status is Status.FAILED
    late = plan(start, both, NOW + timedelta(seconds=1))
    assert (late.status, late.outcome) == (Status.FAILED, "deadline")
    assert late.status_message == "start deadline passed (Sail exited: starting; Marimo exited)"


def test_timeouts_are_told_as_members_set_them() -> None:
    assert [duration(s) for s in (3600, 7200, 600, 60, 150, 90, 0)] == [
        "1 h",
        "2 h",
        "10 min",
        "1 min",
        "150 s",
        "90 s",
        "0 s",
    ]


def test_a_requested_stop_is_not_said_once_stopped_and_an_automatic_ones_reason_is() -> None:
    """ "Stop requested" on a stopped notebook read as still pending (a user
    audit); "idle for 1 h" says why it stopped."""
    asked = nb(ST, Status.STOPPING, status_message="Stop requested")
    done = plan(asked, OBS["nothing"], NOW)
    assert (done.status, done.status_message) == (Status.STOPPED, "")
    assert done.reason == "Sail and Marimo have stopped"  # its event says what happened
    idle = nb(ST, Status.STOPPING, status_message="idle for 1 h")
    assert plan(idle, OBS["nothing"], NOW).status_message == "idle for 1 h"


def test_a_members_stop_leaves_an_open_editor_its_save_window_then_stops() -> None:
    """Marimo's editor saves 1 s after the last keystroke, only while its
    socket is open: stopped at once, the last words typed were lost (the
    durability audit). With a member present, the teardown waits out the
    window from the stop; without one, or for an automatic stop, it does not."""
    asked = nb(
        ST,
        Status.STOPPING,
        status_message=STOP_REQUESTED,
        status_changed_at=NOW - timedelta(seconds=1),
    )
    waiting = plan(asked, OBS["ready"], NOW)
    assert (waiting.actions, waiting.status, waiting.status_message) == (
        (),
        Status.STOPPING,
        STOP_REQUESTED,
    )
    assert waiting.requeue_after == pytest.approx(SAVE_WINDOW_SECONDS - 1)
    after = NOW + timedelta(seconds=SAVE_WINDOW_SECONDS - 1)
    assert plan(asked, OBS["ready"], after).actions == (E_STOP,)
    # Nobody pinged within the presence window: nothing typed is unsaved.
    for seen in (None, NOW - timedelta(seconds=150)):
        assert plan(replace(asked, last_seen_at=seen), OBS["ready"], NOW).actions == (E_STOP,)
    # An automatic stop, a Marimo already down, a delete: at once.
    assert plan(replace(asked, status_message="idle for 1 h"), OBS["ready"], NOW).actions == (
        E_STOP,
    )
    assert plan(asked, OBS["marimo_dead"], NOW).actions == (E_STOP,)
    assert plan(replace(asked, desired=D), OBS["ready"], NOW).actions == (E_DEL,)
    # A stamp from a clock ahead of the worker's: within the tolerance, the
    # whole wait stays under window + tolerance, pass after pass; far ahead
    # (it would wait its whole lead), no window at all.
    slightly = replace(asked, status_changed_at=NOW + timedelta(seconds=0.9))
    waited, at = 0.0, NOW
    while (step := plan(slightly, OBS["ready"], at)).actions == ():
        assert step.requeue_after is not None
        waited += step.requeue_after
        at += timedelta(seconds=step.requeue_after)
    assert step.actions == (E_STOP,)
    assert waited == pytest.approx(SAVE_WINDOW_SECONDS + 0.9)
    far = replace(asked, status_changed_at=NOW + timedelta(seconds=60))
    assert plan(far, OBS["ready"], NOW).actions == (E_STOP,)
