"""Which dead processes of a start ended unwatched (their spawner gone too:
the platform went down with them), so that the start makes them again; one
spawned by a worker that still runs ended under its eyes: a failure (a
review: with several workers, a crash seen by another one was restarted)."""

from __future__ import annotations

import dataclasses
import os
import subprocess

from reconciler.runtime import procs


def _dead() -> procs.Proc:
    """A process that has ended, spawned outside `procs` (its exit unknown to it)."""
    child = subprocess.Popen(["true"])
    ticks = procs.start_ticks(child.pid)
    child.wait()
    return procs.Proc(child.pid, 0, 0.0, "/dev/null", "", ticks, procs.boot_id())


def test_spawned_by_a_worker_that_still_runs_is_a_failure() -> None:
    me = os.getpid()
    proc = dataclasses.replace(_dead(), spawner_pid=me, spawner_ticks=procs.start_ticks(me))
    assert not procs.ended_unwatched(proc)


def test_spawned_by_a_worker_that_is_gone_ended_unwatched() -> None:
    spawner = _dead()  # a worker that was killed
    proc = dataclasses.replace(_dead(), spawner_pid=spawner.pid, spawner_ticks=spawner.start_ticks)
    assert procs.ended_unwatched(proc)


def test_from_another_boot_or_with_no_spawner_recorded_it_ended_unwatched() -> None:
    me = os.getpid()
    mine = dataclasses.replace(_dead(), spawner_pid=me, spawner_ticks=procs.start_ticks(me))
    assert procs.ended_unwatched(dataclasses.replace(mine, boot_id="another-boot"))
    # Written before spawners were kept (or found by a scan): as before, unwatched.
    assert procs.ended_unwatched(dataclasses.replace(mine, spawner_pid=0, spawner_ticks=None))


def test_a_claimed_warm_sail_is_watched_by_the_worker_that_claimed_it() -> None:
    refiller = _dead()  # the worker that filled the pool has exited since
    warm = dataclasses.replace(
        _dead(), spawner_pid=refiller.pid, spawner_ticks=refiller.start_ticks
    )
    assert procs.ended_unwatched(warm)
    assert not procs.ended_unwatched(procs.watched_by_me(warm))


def test_the_spawner_is_recorded_and_read_back() -> None:
    me = os.getpid()
    proc = dataclasses.replace(_dead(), spawner_pid=me, spawner_ticks=procs.start_ticks(me))
    assert procs.Proc.from_json(proc.to_json()) == proc
    older = {k: v for k, v in proc.to_json().items() if not k.startswith("spawner")}
    assert procs.Proc.from_json(older) == dataclasses.replace(
        proc, spawner_pid=0, spawner_ticks=None
    )
