"""Pure decisions about the copy of a notebook's file (docs/api.md "A
notebook's file"): when a running notebook's file is due to be copied, and
which bytes read can be kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common import notebook_file
from common.clock import FakeClock
from common.statuses import Status
from reconciler.plan import Plan
from reconciler.reconcile import COPIES_TRIED_MAX, Deps, _note_copy_try, copy_due
from reconciler.runtime.base import Component, Observation, Phase

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
EVERY = 600
READY = Observation(session_id="S1", marimo=Component(Phase.READY))


def row(kept_minutes_ago: int | None = None, session: str = "S1") -> dict[str, object]:
    kept = None if kept_minutes_ago is None else NOW - timedelta(minutes=kept_minutes_ago)
    return {"id": "NB1", "session_id": session, "file_kept_at": kept}


def staying(status: Status) -> Plan:
    return Plan((), status, "")


@pytest.mark.parametrize("status", [Status.RUNNING, Status.IDLE, Status.DETACHED])
def test_a_running_notebook_without_a_copy_or_with_an_old_one_is_due(status: Status) -> None:
    assert copy_due(row(), staying(status), READY, NOW, EVERY)
    assert copy_due(row(10), staying(status), READY, NOW, EVERY)  # exactly the interval
    assert not copy_due(row(9), staying(status), READY, NOW, EVERY)


def test_a_try_that_kept_nothing_counts_as_a_copy_for_the_interval() -> None:
    assert not copy_due(row(), staying(Status.RUNNING), READY, NOW, EVERY, NOW)
    tried = NOW - timedelta(minutes=10)
    assert copy_due(row(60), staying(Status.RUNNING), READY, NOW, EVERY, tried)
    assert not copy_due(row(60), staying(Status.RUNNING), READY, NOW, EVERY, NOW)


@pytest.mark.parametrize(
    ("plan", "observed", "session"),
    [
        # not (or no longer) running: a stop copies in its own pass
        (staying(Status.STARTING), READY, "S1"),
        (staying(Status.STOPPING), READY, "S1"),
        (staying(Status.STOPPED), READY, "S1"),
        # Marimo not there to read it (Kubernetes reads through it)
        (staying(Status.RUNNING), Observation("S1", marimo=Component(Phase.STARTING)), "S1"),
        (staying(Status.RUNNING), Observation("S1", marimo=Component(Phase.FAILED)), "S1"),
        # an older session's Marimo, or none: not this session's file
        (staying(Status.RUNNING), READY, "S2"),
        (staying(Status.RUNNING), Observation(None, marimo=Component(Phase.READY)), "S1"),
    ],
)
def test_nothing_is_copied_but_from_the_sessions_ready_marimo(
    plan: Plan, observed: Observation, session: str
) -> None:
    assert not copy_due(row(session=session), plan, observed, NOW, EVERY)


def test_what_is_read_is_kept_only_whole_as_text() -> None:
    limit = notebook_file.MAX_BYTES
    assert notebook_file.keepable("x = 'é'\n".encode()) == ("x = 'é'\n", notebook_file.KEPT)
    assert notebook_file.keepable(b"") == ("", notebook_file.KEPT)  # an empty file is a file
    assert notebook_file.keepable(b"a" * limit)[1] == notebook_file.KEPT
    assert notebook_file.keepable(b"a" * (limit + 1)) == (None, notebook_file.TOO_LARGE)
    assert notebook_file.keepable(None) == (None, notebook_file.UNREADABLE)
    assert notebook_file.keepable(b"\xff\xfe") == (None, notebook_file.NOT_TEXT)
    assert notebook_file.keepable(b"a\x00b") == (None, notebook_file.NOT_TEXT)


def test_the_tries_a_worker_remembers_stay_bounded() -> None:
    """Notebooks another worker stopped leave their tries here: past the
    bound, those older than the interval (which decide nothing) go."""
    clock = FakeClock(NOW)
    deps = Deps(pool=None, runtime=None, clock=clock, file_copy_seconds=EVERY)  # type: ignore[arg-type]
    for i in range(COPIES_TRIED_MAX):
        _note_copy_try(deps, f"OLD{i}")
    clock.advance(EVERY)
    _note_copy_try(deps, "RECENT")
    clock.advance(1)
    _note_copy_try(deps, "NEW")  # one past the bound: the old ones go
    assert set(deps.copies_tried) == {"RECENT", "NEW"}
