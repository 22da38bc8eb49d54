"""Warm start for the local runtime: pre-started `sail spark server`
processes per workload shape, claimed by a start.

A start that needs a Sail takes a warm one of its shape (so it waits only for
Marimo) and the same `ensure_running` call then tops the shape up again. The
shape is everything a Sail process depends on (mode, workers, env), so a
claimed Sail is exactly the process a cold start would have spawned, except
its working directory (below).

Layout under `{data_dir}/pool/`:
  {shape}/{wid}.json   one warm Sail: its `procs.Proc` record
  {shape}/{wid}.log    its output
  {shape}/{wid}.d/     its working directory (moved to the notebook's run
                       directory as `sail-work/` when claimed)
  {shape}/{wid}.draining  a warm Sail a closing runtime or a collecting refill
                       is stopping (out of the pool)
  {shape}/{wid}.spawning  a warm Sail being spawned, not yet claimable
  {shape}/.refill      flock: one refill of a shape at a time on this host
  .workers             flock held shared by every open runtime using the pool

Claiming is rename(2) of `{wid}.json` to a path owned by the claiming
notebook: atomic on one filesystem, so of two workers racing for one warm
Sail exactly one finds the file. Warm Sails run in their own process groups,
like notebook processes; a new worker finds them by these files and checks
each pid (create time, command line) as it does for notebooks, so they are
adopted after a worker restart. The last runtime on the host to close stops
them (see `close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import secrets
import shutil
import signal
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import structlog

from common.clock import Clock, SystemClock
from common.private_files import private_dir
from reconciler.runtime import probes, procs
from reconciler.runtime.base import WorkloadSpec, shape_digest

log = structlog.get_logger(__name__)

CLAIM = "sail.claim"  # in a notebook's run directory: a claimed Sail not yet in state.json
WORK = "sail-work"  # in a notebook's run directory: a claimed Sail's working directory
REFILL_ATTEMPTS = 3
# A shape nobody claimed from or refilled for this long (its config edited
# since, or deleted) gives its warm Sails back at the next refill of any
# shape, as the Kubernetes pool collects warm pods after an hour.
SHAPE_IDLE_SECONDS = 3600
SPAWNING = ".spawning"  # a warm Sail being spawned, not yet recorded (`{wid}.spawning`)


def shape(workload: WorkloadSpec) -> str:
    """What a local Sail process depends on, as a short digest."""
    return shape_digest({"mode": workload.mode, "workers": workload.workers, "env": workload.env})


def poolable(workload: WorkloadSpec) -> bool:
    """A workload with a secret environment is not pooled: a warm Sail would
    hold its values before any session asked for them, and its shape (a
    directory's name, logged) would be a digest of them, as on Kubernetes
    (kubernetes/pool.py `poolable`)."""
    return not workload.secret_env


def take(entry: Path, dest: Path) -> bool:
    """The atomic claim: only one of any number of racers renames `entry`
    away; the others find it gone. `dest` must be the claimer's own path."""
    try:
        os.rename(entry, dest)
    except FileNotFoundError:
        return False
    return True


async def remove_tree(path: Path | str, *, strict: bool = False) -> None:
    """rmtree in a thread: a directory a notebook's Spark jobs wrote to can
    hold gigabytes, and the worker's event loop (its queue heartbeats) must
    not wait for it. `strict`: what stays (read-only directories a
    notebook's tools made, as Go's module cache is, for a worker that is not
    root) is made writable and removed again, and an OSError names what
    still stays, so a delete is retried rather than leaving the data."""
    await asyncio.to_thread(_remove_tree, Path(path), strict)


def _remove_tree(path: Path, strict: bool) -> None:
    if path.is_symlink():  # rmtree refuses one, and nothing is followed out of ours
        path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)
    if not strict or not os.path.lexists(path):
        return
    _make_removable(path)
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        raise OSError(f"could not remove {path}: {_first_left(path)}")


def _make_removable(root: Path) -> None:
    """Owner rwx on every directory under `root`, never through a symlink (a
    notebook may link anywhere; lstat, and only real directories)."""

    def writable(directory: str) -> None:
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(directory).st_mode):
                os.chmod(directory, 0o700)

    writable(str(root))
    for dirpath, dirnames, _ in os.walk(root):  # top-down: a child is fixed before entered
        for name in dirnames:
            writable(os.path.join(dirpath, name))


def _first_left(root: Path) -> str:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*filenames, *dirnames):
            return os.path.join(dirpath, name)
    return str(root)


async def remove_warm_files(proc: procs.Proc) -> None:
    """A warm Sail's files, once it is gone."""
    Path(proc.log).unlink(missing_ok=True)
    if proc.cwd:
        await remove_tree(proc.cwd)


def read(path: Path) -> procs.Proc | None:
    try:
        return procs.Proc.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


async def _acquire(fd: int, how: int, interval: float) -> None:
    """flock(2) without blocking the event loop: retry a non-blocking try."""
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def flock(path: Path, how: int = fcntl.LOCK_EX) -> AsyncIterator[int]:
    """An flock without blocking the event loop (released by the kernel if
    the holder dies, so never stale)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await _acquire(fd, how, 0.02)
        yield fd
    finally:
        os.close(fd)


class LocalPool:
    def __init__(
        self,
        root: Path,
        size: int,
        sail_argv: Callable[[int], list[str]],
        *,
        clock: Clock | None = None,
    ) -> None:
        self.root = root
        self.size = size
        # Judges idle shapes (`collect`): its wall time against the shape
        # directories' mtimes, which the filesystem sets from the real clock.
        self._clock = clock or SystemClock()
        self._argv = sail_argv
        self._workers_fd: int | None = None

    def shape_dir(self, workload: WorkloadSpec) -> Path:
        return self.root / shape(workload)

    async def _attach(self) -> None:
        """Hold `.workers` shared while this runtime is open (see `close`)."""
        if self._workers_fd is not None:
            return
        private_dir(self.root)
        fd = os.open(self.root / ".workers", os.O_RDWR | os.O_CREAT, 0o600)
        await _acquire(fd, fcntl.LOCK_SH, 0.05)  # waits only while a closing runtime drains
        self._workers_fd = fd

    def members(self, workload: WorkloadSpec) -> list[tuple[Path, procs.Proc]]:
        """This shape's warm Sails that are alive, oldest first."""
        return [
            (p, proc) for p, proc in self._entries(self.shape_dir(workload)) if procs.is_alive(proc)
        ]

    @staticmethod
    def _entries(directory: Path, pattern: str = "*.json") -> list[tuple[Path, procs.Proc]]:
        found = []
        for path in directory.glob(pattern):
            proc = read(path)
            if proc is not None:
                found.append((path, proc))
        return sorted(found, key=lambda e: e[1].create_time)

    async def claim(self, workload: WorkloadSpec, run_dir: Path) -> procs.Proc | None:
        """Take a warm Sail of this shape for the notebook whose run directory
        is `run_dir`: its record becomes `run_dir/sail.claim` (the caller
        records it in its state, then removes that file), its working
        directory `run_dir/sail-work`, its log `run_dir/sail.log`. None if
        there is none to be had."""
        if not poolable(workload):
            return None
        await self._attach()
        live = self.members(workload)
        ready = await asyncio.gather(*(probes.sail_healthy(p.port, 0.5) for _, p in live))
        dest = run_dir / CLAIM
        # Ready ones first (the whole Sail start saved); a starting one still saves some.
        for _, (path, proc) in sorted(zip(ready, live, strict=True), key=lambda r: not r[0]):
            if not take(path, dest):
                continue  # another worker took it first
            if not procs.is_alive(proc):  # died meanwhile
                await procs.stop(proc, signal.SIGKILL, 0, Path(proc.cwd))
                await remove_warm_files(proc)
                dest.unlink(missing_ok=True)
                continue
            # Now ours alone, watched by this worker (not by the one that
            # refilled the pool): its own scratch directory and log move with
            # it (a process's cwd and open log follow a rename).
            proc = procs.watched_by_me(proc)
            work, log_file = run_dir / WORK, run_dir / "sail.log"
            await remove_tree(work)  # a previous session's
            with contextlib.suppress(OSError):  # else it keeps its pool paths
                os.rename(proc.cwd, work)
                proc = dataclasses.replace(proc, cwd=str(work))
            with contextlib.suppress(OSError):
                os.replace(proc.log, log_file)
                proc = dataclasses.replace(proc, log=str(log_file))
            log.info("local_warm_claimed", pid=proc.pid, port=proc.port)
            return proc
        return None

    async def refill(self, workload: WorkloadSpec, env: dict[str, str]) -> int:
        """Spawn warm Sails until the shape has `size` alive (dead ones are
        removed, not counted) and wait for the new ones to answer; returns
        how many were added. Runs in the background of a start, or in
        `warm_up`, so waiting holds nobody up."""
        if self.size <= 0 or not poolable(workload):
            return 0
        await self._attach()
        directory = private_dir(self.shape_dir(workload))
        added = 0
        async with flock(directory / ".refill"):
            await self._stop_unrecorded(directory)
            await self._stop_drained(directory)
            await _stop_orphans(directory)
            alive = 0
            for path, proc in self._entries(directory):
                if procs.is_alive(proc):
                    alive += 1
                else:
                    await self._discard(path, proc)
            alive -= await self.collect(directory)
            # A Sail can die at once, e.g. when its port (picked with bind 0)
            # is taken before it binds: replaced, a few times at most.
            for _ in range(REFILL_ATTEMPTS):
                if alive >= self.size:
                    break
                new = [self._spawn(directory, env) for _ in range(self.size - alive)]
                for path, proc in new:
                    healthy = functools.partial(probes.sail_healthy, proc.port, 0.5)
                    if await probes.comes_up(proc, healthy, 30, 0.02):
                        alive += 1
                        added += 1
                    else:
                        log.warning("local_warm_died", reason=procs.death_reason("Sail", proc))
                        await self._discard(path, proc)
        if added:
            log.info("local_warm_refilled", shape=directory.name, spawned=added)
        return added

    async def collect(self, refilling: Path | None = None) -> int:
        """Stop the warm Sails no start will claim: every one of a shape idle
        for SHAPE_IDLE_SECONDS (a claim, or a refill that adds one, touches
        its directory),
        and in any shape the oldest beyond `size` (after it was lowered).
        Each is taken out with the rename a claim makes, so one claimed
        meanwhile stays its notebook's. Returns how many of `refilling`'s
        (the shape being refilled, never idle) were stopped."""
        now, ours, stopped = self._clock.now().timestamp(), 0, 0
        for directory in self.root.glob("*/"):
            try:
                idle = now - directory.stat().st_mtime > SHAPE_IDLE_SECONDS
            except OSError:
                continue
            entries = self._entries(directory)  # oldest first
            if idle and directory != refilling:
                doomed = entries
            else:
                doomed = entries[: max(0, len(entries) - self.size)]
            taken = sum(take(path, path.with_suffix(".draining")) for path, _ in doomed)
            if taken:
                stopped += await self._stop_drained(directory)
                if directory == refilling:
                    ours += taken
        if stopped:
            log.info("local_warm_collected", stopped=stopped)
        return ours

    def _spawn(self, directory: Path, env: dict[str, str]) -> tuple[Path, procs.Proc]:
        wid = secrets.token_hex(4)
        port = procs.free_port()
        # Each warm Sail has its own working directory: once claimed,
        # nothing of it is shared with another notebook's Sail.
        work = directory / f"{wid}.d"
        work.mkdir(mode=0o700)
        # `{wid}.spawning` exists until the record is claimable: a refill
        # killed before that leaves it, and the next one stops the Sail
        # (`_stop_unrecorded`). The record is written into it and it is then
        # renamed, so no moment has both a claimable record and the mark.
        pending = directory / f"{wid}{SPAWNING}"
        pending.touch(mode=0o600)
        proc = procs.spawn(
            self._argv(port), env=env, cwd=work, log=directory / f"{wid}.log", port=port
        )
        tmp = directory / f".{wid}.tmp"  # not *.json: never seen half-written
        tmp.write_text(json.dumps(proc.to_json()))
        os.replace(tmp, pending)
        path = directory / f"{wid}.json"
        os.rename(pending, path)
        return path, proc

    @staticmethod
    async def _discard(path: Path, proc: procs.Proc) -> None:
        await procs.stop(proc, signal.SIGKILL, 0, Path(proc.cwd))  # its group's leftovers
        path.unlink(missing_ok=True)
        await remove_warm_files(proc)

    @staticmethod
    async def _stop_unrecorded(directory: Path) -> None:
        """Warm Sails a refill spawned and was killed before recording
        (`{wid}.spawning` left): never claimable, so nobody's. Found by their
        output going to `{wid}.log`, stopped, their files removed. Runs under
        the shape's refill lock or in a drain, so no spawn is under way."""
        for mark in directory.glob(f"*{SPAWNING}"):
            wid = mark.name.removesuffix(SPAWNING)
            for pid in await procs.stop_unrecorded(procs.logging_to(directory / f"{wid}.log")):
                log.warning("local_warm_unrecorded_stopped", pid=pid)
            (directory / f".{wid}.tmp").unlink(missing_ok=True)
            (directory / f"{wid}.log").unlink(missing_ok=True)
            await remove_tree(directory / f"{wid}.d")
            mark.unlink(missing_ok=True)

    async def _stop_drained(self, directory: Path) -> int:
        """Warm Sails a drain took out of the pool (`*.draining`) but did not
        stop: its worker was killed. Seen by an attached runtime, a drain
        cannot be under way (it holds `.workers` exclusively), so they are
        nobody's: stopped, not left running uncounted."""
        stopped = 0
        for path, proc in self._entries(directory, "*.draining"):
            await procs.stop(proc, signal.SIGINT, 5, Path(proc.cwd or directory))
            path.unlink(missing_ok=True)
            await remove_warm_files(proc)
            stopped += 1
        return stopped

    async def drain(self) -> int:
        """Stop every warm Sail of every shape (and what a drain cut short
        left); returns how many."""
        stopped = 0
        for directory in self.root.glob("*/"):
            await self._stop_unrecorded(directory)
            for path, _ in self._entries(directory):
                take(path, path.with_suffix(".draining"))  # not claimable any more
            stopped += await self._stop_drained(directory)  # those, and any left before
        return stopped + await _stop_orphans(self.root)

    async def close(self) -> None:
        """Warm Sails serve nobody yet: when the last runtime using the pool
        on this host closes (a `make run` ended, the only worker stopped),
        they are stopped rather than left holding memory with no worker to
        hand them out. While another worker is open they stay for it. A
        worker that dies without closing leaves them to be adopted."""
        if not self.root.exists():
            # Never used on this host, or deleted (with the data directory)
            # under warm Sails that no file names any more: those go.
            if stopped := await _stop_orphans(self.root):
                log.info("local_warm_drained", stopped=stopped)
            if self._workers_fd is not None:
                os.close(self._workers_fd)
                self._workers_fd = None
            return
        await self._attach()  # also when unused by us: left-overs of an earlier run go too
        fd, self._workers_fd = self._workers_fd, None
        assert fd is not None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another runtime still uses the pool
            drained = await self.drain()
            if drained:
                log.info("local_warm_drained", stopped=drained)
        finally:
            os.close(fd)


async def _stop_orphans(root: Path) -> int:
    """Warm Sails whose files under `root` were removed while they ran (the
    data directory deleted): no record names them, so nothing would ever
    claim, count or stop them. Found by their output going to a deleted log
    under `root` (a claimed Sail's log was moved to its notebook first)."""
    found = await asyncio.to_thread(procs.logging_under, root, ("sail",))
    stopped = await procs.stop_unrecorded(f.proc for f in found if f.log_deleted)
    for pid in stopped:
        log.warning("local_warm_orphan_stopped", pid=pid)
    return len(stopped)
