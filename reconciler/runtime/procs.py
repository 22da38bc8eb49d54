"""Child processes that outlive the worker: spawn in their own process group,
recognise them again later (pid + start time + cmdline), read why they died,
and stop them gracefully then forcefully.

A process is recognised by when it started in clock ticks since boot (from
/proc) and the boot it started in, not by psutil's create time: that one is
computed from the wall clock's idea of the boot time, which moves whenever
the clock is stepped (NTP, a laptop resuming), and a running notebook would
then be taken for dead and restarted, its kernel's state lost."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from common import notebook_logs

# Popen handles of the processes this worker spawned, so it can reap them and
# learn their exit codes, with the start time each was spawned at. Adopted
# processes (spawned by a dead worker) are not our children: their exit code
# is unknown, their log still tells why.
_CHILDREN: dict[int, tuple[subprocess.Popen[bytes], int | None, float]] = {}


@dataclass(frozen=True)
class Proc:
    pid: int
    port: int
    create_time: float
    log: str
    # Its working directory, where its helpers run (`members` matches them by
    # it); "" in records written before it was kept: the notebook directory.
    cwd: str = ""
    # When it started (ticks since boot) and in which boot; None and "" in
    # records written before they were kept: then `create_time` is compared.
    start_ticks: int | None = None
    boot_id: str = ""
    # Where its own output starts in `log` (earlier runs' output precedes it).
    log_offset: int = 0
    # The worker process that spawned it (pid, start ticks): while that one
    # runs, it saw the exit; 0 and None when not known (found, or older).
    spawner_pid: int = 0
    spawner_ticks: int | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> Proc | None:
        if not isinstance(raw, dict):
            return None
        try:
            pid, port = int(raw["pid"]), int(raw["port"])
            cwd = str(raw.get("cwd") or "")
            ticks = raw.get("start_ticks")
            return cls(
                pid,
                port,
                float(raw["create_time"]),
                str(raw["log"]),
                cwd,
                None if ticks is None else int(ticks),
                str(raw.get("boot_id") or ""),
                int(raw.get("log_offset") or 0),
                int(raw.get("spawner_pid") or 0),
                None if raw.get("spawner_ticks") is None else int(raw["spawner_ticks"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@functools.cache  # read once: a process outlives no boot
def boot_id() -> str:
    """This boot's id ("" where the kernel does not say)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/<pid>/stat field
    22); None if it is gone. Read past the last ')': the command name may
    hold spaces and parentheses."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


# Ports handed out lately, never handed out again soon: the OS may give back
# a port just released (seen: Sail's and Marimo's picks, one after the
# other, the same), before whoever got it first has bound it.
_RECENT_PORTS: collections.deque[int] = collections.deque(maxlen=256)


def reserve_port(port: int) -> None:
    """A port about to be bound again (a restart on its old port) is not
    handed out by `free_port` meanwhile, to this restart's other process."""
    if port not in _RECENT_PORTS:
        _RECENT_PORTS.append(port)


def free_port() -> int:
    """A port the OS says is free now (bind 0), and not one this process
    handed out lately. Racy by nature against other processes; a clash shows
    up as a failed start with the process's own "address in use" log line."""
    for _ in range(32):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _RECENT_PORTS:
            break
    _RECENT_PORTS.append(port)
    return port


def port_is_free(port: int) -> bool:
    """Whether Sail or Marimo could listen on `port` now. Both bind with
    SO_REUSEADDR (tokio's and asyncio's default), so the probe does too: a
    killed Sail's accepted connections linger on its port (TIME_WAIT,
    FIN_WAIT2) for up to a minute, and a probe without it took that for a
    port in use, moved Sail and restarted the Marimo (and kernel) that
    pointed at it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# A log bigger than this when a process is spawned on it is moved to
# `<log>.1` (replacing the one before) and a new one begun: every restart
# appends, so a notebook restarted for months would otherwise fill the disk.
# What one process writes in its lifetime is not capped.
LOG_ROTATE_BYTES = 10 * 1024 * 1024


def rotate(log: Path) -> None:
    """Keep one previous file of `log` once it is over LOG_ROTATE_BYTES."""
    try:
        if log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(log, log.with_name(log.name + ".1"))
    except FileNotFoundError:
        pass


def spawn(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path, port: int) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    rotate(log)  # only ever a dead process's log: spawns follow a stop or a death
    # 0600: Marimo prints its URL with the session token into this log.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        out.write(b"\n")  # a restart's lines start on their own line
        out.flush()
        offset = out.tell()
        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: survives the worker, killed as a group
        )
    try:
        created = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:
        created = 0.0
    ticks = start_ticks(popen.pid)
    _CHILDREN[popen.pid] = (popen, ticks, created)
    return Proc(popen.pid, port, created, str(log), str(cwd), ticks, boot_id(), offset, *_me())


@dataclass(frozen=True)
class Found:
    """A process found by where its output goes (`logging_under`)."""

    proc: Proc
    log_deleted: bool  # its log was removed under it (a data directory deleted)


def logging_to(log: Path, programs: tuple[str, ...] = ("sail", "marimo")) -> list[Proc]:
    """Live process-group leaders running one of `programs` whose output goes
    to `log` (`spawn` makes it their stdout), as records `stop` accepts: how
    a process is found again when the worker that spawned it died before
    recording it. Linux (/proc), as the local runtime is."""
    return [f.proc for f in logging_under(log.parent, programs) if f.proc.log == str(log)]


def logging_under(root: Path, programs: tuple[str, ...] = ("sail", "marimo")) -> list[Found]:
    """Like `logging_to`, for every log below `root`, also one removed since
    the process opened it: how a process whose record was deleted with its
    directory is found. One pass over /proc (a readlink per group leader)."""
    prefix = str(root).rstrip("/") + "/"
    found = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) != pid:
                continue
            ticks = start_ticks(pid)
            link = os.readlink(f"/proc/{pid}/fd/1")
            target = link.removesuffix(" (deleted)")
            if not target.startswith(prefix):
                continue
            p = psutil.Process(pid)
            argv, cwd, created = p.cmdline(), p.cwd(), p.create_time()
        except (psutil.Error, OSError):
            continue
        # The same process throughout (its pid not reused meanwhile), and ours:
        # not, say, something a kernel started in its own session.
        if ticks is None or start_ticks(pid) != ticks:
            continue
        if not any(Path(arg).name in programs for arg in argv[:2]):
            continue
        try:
            port = int(argv[argv.index("--port") + 1])
        except (ValueError, IndexError):
            port = 0
        proc = Proc(pid, port, created, target, cwd, ticks, boot_id())
        found.append(Found(proc, link != target))
    return found


async def stop_unrecorded(
    found: Iterable[Proc], recorded: AbstractSet[int] = frozenset()
) -> list[int]:
    """SIGKILL (whole group) the processes `found` (by their output: a
    `logging_to` or `logging_under`) whose pid is not in `recorded`: spawned
    by a killed worker and never recorded, or left when their record was
    deleted, so nobody's. Returns their pids, for the caller's log line."""
    stopped = []
    for proc in found:
        if proc.pid not in recorded:
            await stop(proc, signal.SIGKILL, 0, Path(proc.cwd))
            stopped.append(proc.pid)
    return stopped


def same_process(proc: Proc, p: psutil.Process) -> bool:
    """`p` (found at `proc.pid`) is the process `proc` recorded, not another
    that got its pid."""
    if proc.start_ticks is not None and proc.boot_id:
        return proc.boot_id == boot_id() and start_ticks(p.pid) == proc.start_ticks
    return abs(p.create_time() - proc.create_time) <= 0.05  # an older record


def _child(proc: Proc) -> subprocess.Popen[bytes] | None:
    """Our Popen of the process `proc` records; None if we did not spawn it.
    An entry at its pid spawned at another time is a child of ours that died
    on its own (never stopped, so never removed) whose pid the kernel then
    gave to a process another worker spawned: judged by it, that live
    process would read as dead. Such an entry is dropped."""
    entry = _CHILDREN.get(proc.pid)
    if entry is None:
        return None
    popen, ticks, created = entry
    if proc.start_ticks is not None and ticks is not None:
        ours = ticks == proc.start_ticks
    else:
        ours = abs(created - proc.create_time) <= 0.05
    if ours:
        return popen
    if popen.poll() is not None:
        del _CHILDREN[proc.pid]
    return None


def ended_unwatched(proc: Proc) -> bool:
    """`proc` (dead) ended with no running worker watching it: its spawner
    (for a claimed warm Sail, the worker that claimed it) is gone too, the
    whole platform down with it. Seen by another worker while its spawner
    runs, it is a failure like any other. A record with no spawner (written
    before they were kept, or found by a scan) counts as unwatched when its
    exit is unknown here, as all did before."""
    if exit_code(proc) is not None:
        return False
    if proc.boot_id and proc.boot_id != boot_id():
        return True  # a host restart: nothing of that boot runs
    if not proc.spawner_pid or proc.spawner_ticks is None:
        return True
    return start_ticks(proc.spawner_pid) != proc.spawner_ticks


def watched_by_me(proc: Proc) -> Proc:
    """`proc` with this worker as the one that watches it (a claimed warm Sail)."""
    pid, ticks = _me()
    return dataclasses.replace(proc, spawner_pid=pid, spawner_ticks=ticks)


@functools.cache  # a process's own pid and start never change
def _me() -> tuple[int, int | None]:
    """This worker as a spawner: its pid and start ticks."""
    pid = os.getpid()
    return pid, start_ticks(pid)


def exit_code(proc: Proc) -> int | None:
    """The exit code if we are its parent and it has exited, else None."""
    popen = _child(proc)
    return None if popen is None else popen.poll()


def is_alive(proc: Proc) -> bool:
    """Alive and really the process we started (pids get reused)."""
    popen = _child(proc)
    if popen is not None and popen.poll() is not None:
        return False
    try:
        p = psutil.Process(proc.pid)
        if not same_process(proc, p):
            return False
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        # Empty for a moment right after spawn: the kernel fills a new
        # program's arguments only after the exec that let Popen return
        # (measured: a warm Sail checked at once was taken for dead). The
        # start time above already tells a reused pid apart.
        cmdline = p.cmdline()
        return not cmdline or str(proc.port) in cmdline
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


# What Sail ("Address already in use (os error 98)") and Marimo ("[Errno 98]
# error while attempting to bind on address …: address already in use") print
# when their port was taken between `free_port` and their bind.
_PORT_IN_USE = re.compile(r"address already in use|errno 98\b|os error 98\b", re.IGNORECASE)


def port_clash(proc: Proc) -> bool:
    """`proc` (dead) exited because its port was in use: its own output
    (from `log_offset`, not an earlier run's) says so."""
    try:
        with open(proc.log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(proc.log_offset, f.tell() - 16_384))
            text = f.read().decode(errors="replace")
    except OSError:
        return False
    return _PORT_IN_USE.search(text) is not None


# Marimo's start-up banner: what it prints when it starts well, never why it
# stopped (and its URL is Marimo's own address, no use to a member).
_BANNER = re.compile(r"in your browser|➜\s+(URL|Network):")


def tail(path: str | Path, start: int = 0, lines: int = 8, max_bytes: int = 16_384) -> str:
    """The last `lines` lines of `path` written from byte `start` on (a
    process's own output: earlier runs' precedes its `log_offset`)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(start, f.tell() - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip() and not _BANNER.search(ln)]
    return "\n".join(kept[-lines:])


def last_bytes(path: str | Path, start: int, max_bytes: int) -> bytes | None:
    """What was written to `path` from byte `start` on, its last `max_bytes`
    (and one more, to tell a cut); None when there is no such file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            # A log rotated under an older record: the whole new file.
            start = start if start <= end else 0
            f.seek(max(start, end - max_bytes - 1))
            return f.read(max_bytes + 1)
    except FileNotFoundError:
        return None


def death_reason(name: str, proc: Proc, secrets: tuple[str, ...] = ()) -> str:
    code = exit_code(proc)
    how = f"exited with code {code}" if code is not None else "exited"
    # Shown to members: never a token (Marimo logs its URL with one).
    last = notebook_logs.redacted(tail(proc.log, proc.log_offset), secrets)
    return f"{name} {how}" + (f": {last}" if last else "")


def members(proc: Proc, cwd: Path) -> list[psutil.Process]:
    """Live processes of `proc`'s group that are really ours: while the
    leader is verified (pid, create time, cmdline), its whole group (a kernel
    may have moved to another directory) and all its descendants, also those
    that left the group (Marimo's terminal and LSP server, a cell's
    `setsid`); once it is gone, the members working in the notebook's
    directory (Marimo's kernel, Sail's workers). A pid reused by an unrelated
    process group is never matched."""
    if (popen := _child(proc)) is not None:
        popen.poll()  # reap our own child, so a dead leader is not a zombie
    leader_ok = is_alive(proc)
    found: dict[int, psutil.Process] = {}  # the group first, in pid order: the leader leads
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) != proc.pid:
                continue
            if leader_ok or _within(p.cwd(), cwd):
                found[p.pid] = p
        except (psutil.Error, ProcessLookupError, PermissionError, OSError):
            continue
    if leader_ok:
        with contextlib.suppress(psutil.Error):
            for p in psutil.Process(proc.pid).children(recursive=True):
                found.setdefault(p.pid, p)
    return [p for p in found.values() if _running(p)]


def _within(cwd: str, root: Path) -> bool:
    """`cwd` is `root` or below it (`notebooks/NB12` is not below
    `notebooks/NB1`); the kernel shows a removed directory with a suffix."""
    path = Path(cwd.removesuffix(" (deleted)"))
    return path == root or root in path.parents


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(procs: list[psutil.Process], sig: signal.Signals) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            p.send_signal(sig)


async def stop(proc: Proc, first: signal.Signals, grace: float, cwd: Path) -> None:
    """Send `first` to the process group, wait up to `grace` s, then SIGKILL
    whatever of it is left (only processes verified as ours, see `members`)."""
    loop = asyncio.get_running_loop()
    # Those seen while the leader was verified stay ours after it exits
    # (psutil's Process checks its pid has not been reused).
    seen: dict[int, psutil.Process] = {}

    def remaining() -> list[psutil.Process]:
        for p in members(proc, cwd):
            seen.setdefault(p.pid, p)
        return [p for p in seen.values() if _running(p)]

    left = remaining()
    if left:
        # The leader first (Sail's graceful stop is its own SIGINT handler);
        # the rest of the group gets the same signal.
        _signal(left, first)
        deadline = loop.time() + grace
        while left and loop.time() < deadline:
            await asyncio.sleep(0.05)
            left = remaining()
        if left:
            _signal(left, signal.SIGKILL)
            deadline = loop.time() + 5
            while left and loop.time() < deadline:
                await asyncio.sleep(0.05)
                left = remaining()
    if (popen := _child(proc)) is not None:
        del _CHILDREN[proc.pid]
        popen.poll()
