"""A small process supervisor for `notebooks up`: runs the Procfile's processes
until told to stop, restarting one that exits, with exponential backoff.

The restart decision (`Backoff.after_exit`) is pure and tested with explicit
times; `Supervisor` holds the process effects. Each child runs in its own
session (process group), so Ctrl-C on the terminal reaches only the supervisor,
which then stops the children in order: SIGTERM to the child's group, SIGKILL
after a grace period. Notebook processes that a worker starts live in process
groups of their own, so stopping a worker's group leaves them running for the
next worker to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger("supervisor")


@dataclass(frozen=True)
class Backoff:
    """Exponential restart delay: initial, initial*factor, ... capped at maximum.
    A run that lasted `healthy_after` seconds or more counts as a success, so
    the next crash starts over at `initial`."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    healthy_after: float = 30.0

    def after_exit(self, failures: int, ran_for: float) -> tuple[int, float]:
        """(consecutive failures so far, seconds the process just ran) ->
        (consecutive failures now, seconds to wait before restarting)."""
        failures = 1 if ran_for >= self.healthy_after else failures + 1
        delay = self.initial * self.factor ** (failures - 1)
        return failures, min(self.maximum, delay)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]


def parse_procfile(text: str) -> dict[str, str]:
    """`name: command` lines -> {name: command}; blank lines and # comments skipped."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"Procfile line {number}: expected 'name: command', got {line!r}")
        out[name.strip()] = command.strip()
    return out


def specs_from_procfile(path: Path, names: tuple[str, ...]) -> list[ProcessSpec]:
    """The processes `names` of the Procfile, `notebooks ...` run with this very
    interpreter (`python -m cli ...`) so no PATH lookup is needed."""
    entries = parse_procfile(path.read_text())
    specs = []
    for name in names:
        if name not in entries:
            raise ValueError(f"Procfile {path} has no {name!r} process")
        argv = shlex.split(entries[name])
        if argv and argv[0] == "notebooks":
            argv = [sys.executable, "-m", "cli", *argv[1:]]
        specs.append(ProcessSpec(name, tuple(argv)))
    return specs


def _die_with_parent() -> None:
    # Linux: if the supervisor is killed outright (SIGKILL), its children get
    # SIGTERM instead of living on as orphans. Best effort elsewhere.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the child leads its own session, so pgid == pid


@dataclass
class Supervisor:
    specs: list[ProcessSpec]
    env: Mapping[str, str]
    backoff: Backoff = field(default_factory=Backoff)
    grace_seconds: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    # Set on a second Ctrl-C: do not wait out the grace period.
    hurry: asyncio.Event = field(default_factory=asyncio.Event)
    # Observable state, for logs and tests.
    pids: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every process until `stop` is set; return once all have exited."""
        tasks = [asyncio.create_task(self._keep(spec, stop)) for spec in self.specs]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, spec: ProcessSpec, stop: asyncio.Event) -> None:
        failures = 0
        self.restarts.setdefault(spec.name, 0)
        while not stop.is_set():
            started = self.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *spec.argv,
                    env=dict(self.env),
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as e:  # e.g. a Procfile command that does not exist
                failures, delay = self.backoff.after_exit(failures, 0.0)
                self.restarts[spec.name] += 1
                log.error(
                    "process_spawn_failed",
                    process=spec.name,
                    error=str(e),
                    consecutive_failures=failures,
                    restart_in_seconds=delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            self.pids[spec.name] = proc.pid
            log.info("process_started", process=spec.name, pid=proc.pid)
            try:
                exited = await _first(proc.wait(), stop.wait())
            except asyncio.CancelledError:
                await self._terminate(spec.name, proc)
                raise
            if not exited:
                await self._terminate(spec.name, proc)
                return
            # Helpers the child left in its group would hold ports: clear them.
            _signal_group(proc.pid, signal.SIGKILL)
            failures, delay = self.backoff.after_exit(failures, self.monotonic() - started)
            self.restarts[spec.name] += 1
            log.warning(
                "process_exited",
                process=spec.name,
                pid=proc.pid,
                returncode=proc.returncode,
                consecutive_failures=failures,
                restart_in_seconds=delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _terminate(self, name: str, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.grace_seconds):
                    await _first(proc.wait(), self.hurry.wait())
            if proc.returncode is None:
                log.warning(
                    "process_killed", process=name, pid=proc.pid, grace_seconds=self.grace_seconds
                )
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)
        log.info("process_stopped", process=name, pid=proc.pid, returncode=proc.returncode)


async def _first(exit_wait: Awaitable[int], stop_wait: Awaitable[bool]) -> bool:
    """Wait for the process to exit or for stop; True when the process exited."""
    exited = asyncio.ensure_future(exit_wait)
    stopping = asyncio.ensure_future(stop_wait)
    try:
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not exited.done():
            exited.cancel()
    return exited.done() and not exited.cancelled()
