"""The `local` runtime: per notebook, a `sail spark server` and a
`marimo edit --headless` child process on loopback ports.

Layout under the data directory:
  notebooks/{id}/notebook.py   the notebook (kept across stop/start; removed on delete)
  run/{id}/state.json          pids, ports, create times and session id of what runs
  run/{id}/token               Marimo's token (0600), outside the directory Marimo serves
  run/{id}/{sail,marimo}.log   the processes' output: the failure reason comes from here
  run/{id}/sail-work/          a claimed warm Sail's working directory (removed at stop)
  pool/                        the optional warm Sail pool (local_pool.py)

Both processes run in their own process groups (start_new_session), so they
outlive a worker; a new worker reads state.json, checks each pid against its
create time and command line, and adopts what still runs instead of starting
duplicates. Children get a small allow-listed environment (never the worker's
DATABASE_URL or keys) plus the workload config's env.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from common import notebook_logs
from common.clock import Clock, SystemClock
from common.ids import is_valid_id
from common.platform_env import user_env
from common.private_files import private_dir, write_private_json
from reconciler.runtime import probes, procs, seeding
from reconciler.runtime.base import (
    ABSENT,
    Component,
    LogTail,
    Observation,
    Phase,
    SessionSpec,
    TerminalError,
    WorkloadSpec,
)
from reconciler.runtime.local_pool import (
    CLAIM,
    WORK,
    LocalPool,
    flock,
    poolable,
    remove_tree,
    remove_warm_files,
    shape,
)
from reconciler.runtime.local_pool import read as read_proc
from reconciler.runtime.template import NOTEBOOK_FILE, TEMPLATE

log = structlog.get_logger(__name__)

# How long a pool refill waits for the start it follows before going ahead.
REFILL_WAIT_SECONDS = 10

# In state.json while a process is being spawned and not yet recorded there.
PENDING = "spawning"

# A process whose port was taken between `free_port` and its bind (another
# program on the host got it first) is started again on another port this
# many times before the clash counts as its failure (state.json counts them
# per component, as `{sail,marimo}_port_retries`).
PORT_RETRIES = 1

_ENV_ALLOW = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")


def _bin(name: str) -> str:
    """The console script next to this interpreter (the venv's), else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def _port_retries(state: dict[str, object], key: str) -> int:
    """How many port clashes of `key` ("sail", "marimo") this start retried."""
    return int(str(state.get(f"{key}_port_retries") or 0))


class LocalRuntime:
    def __init__(
        self,
        data_dir: Path,
        *,
        stop_grace_seconds: float = 10,
        warm_pool_size: int = 0,
        clock: Clock | None = None,
    ) -> None:
        # Judges the warm pool's idle shapes (LocalPool.collect).
        self.clock = clock or SystemClock()
        self.data_dir = Path(data_dir).resolve()  # process cwds are compared to it
        self.stop_grace = float(stop_grace_seconds)
        self._http: aiohttp.ClientSession | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._refills: dict[str, asyncio.Task[None]] = {}  # per shape
        self._refill_again: set[str] = set()  # shapes started while their refill ran
        # Warm Sails per workload shape (local_pool.py); None = off.
        self.pool = (
            LocalPool(self.data_dir / "pool", warm_pool_size, self._sail_argv, clock=self.clock)
            if warm_pool_size > 0
            else None
        )
        # With the pool off, warm Sails an earlier run left (a worker killed
        # with the pool on, restarted without it) are stopped from the first
        # sweep on, unless a runtime with the pool on still uses them.
        self._leftover_drain: asyncio.Task[None] | None = None

    # -- paths and state ---------------------------------------------------

    def notebook_dir(self, notebook_id: str) -> Path:
        return self.data_dir / "notebooks" / notebook_id

    def run_dir(self, notebook_id: str) -> Path:
        return self.data_dir / "run" / notebook_id

    def _read_state(self, notebook_id: str) -> dict[str, object] | None:
        try:
            raw = json.loads((self.run_dir(notebook_id) / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return raw if isinstance(raw, dict) else None

    def _write_state(self, notebook_id: str, state: dict[str, object]) -> None:
        # Atomic (a reader never sees half a state) and the owner's alone.
        write_private_json(self.run_dir(notebook_id) / "state.json", state)

    async def _record(
        self,
        notebook_id: str,
        state: dict[str, object],
        spawned: procs.Proc | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Write `state` (naming the process just spawned, if any). A process
        nothing records would run on untracked, and each retry would start
        another: if the write fails (a full disk), the process goes, and the
        notebook fails with the reason."""
        try:
            self._write_state(notebook_id, state)
        except OSError as exc:
            if spawned is not None and cwd is not None:
                await procs.stop(spawned, signal.SIGKILL, 0, cwd)
            raise TerminalError(
                f"cannot record the notebook's processes: {exc.strerror or exc}"
            ) from exc

    async def _spawn(
        self, notebook_id: str, state: dict[str, object], key: str, argv: list[str], **kw: Any
    ) -> procs.Proc:
        """Spawn one process and record it in state.json as `key`. The state
        says a spawn is under way (PENDING) before it starts, so a worker
        killed between the spawn and the record leaves that mark: the next
        start or stop of the notebook then stops what runs unrecorded
        (`_stop_unrecorded`), and until then `observe` reports it."""
        state[PENDING] = True
        await self._record(notebook_id, state)
        proc = procs.spawn(argv, **kw)
        state[key] = proc.to_json()
        del state[PENDING]
        await self._record(notebook_id, state, proc, kw["cwd"])
        return proc

    async def _stop_unrecorded(self, notebook_id: str, state: dict[str, object] | None) -> None:
        """Processes whose output goes to the notebook's run directory and
        that `state` (None: no state.json) does not name: spawned by a worker
        killed before it recorded them (the PENDING mark), or left when the
        record was deleted under them (the data directory or `run/{id}`
        removed while the notebook ran). Stopped, not adopted: nothing can
        reach them (no record, no token file), and a start then spawns
        afresh on the one path that records what it spawns. The caller
        writes or removes the state next."""
        if state is not None:
            state.pop(PENDING, None)
        records = (procs.Proc.from_json((state or {}).get(k)) for k in ("sail", "marimo"))
        known = {p.pid for p in records if p is not None and procs.is_alive(p)}
        found = await asyncio.to_thread(self._logging_here, notebook_id)
        for pid in await procs.stop_unrecorded(found, known):
            log.warning("local_unrecorded_stopped", notebook_id=notebook_id, pid=pid)

    def _logging_here(self, notebook_id: str) -> list[procs.Proc]:
        """Sail and Marimo group leaders whose output goes to a file of the
        notebook's run directory, also one deleted since (a /proc scan)."""
        run_dir = self.run_dir(notebook_id)
        found = procs.logging_under(run_dir)
        return [f.proc for f in found if Path(f.proc.log).parent == run_dir]

    @contextlib.asynccontextmanager
    async def _lock(self, notebook_id: str) -> AsyncIterator[None]:
        """One operation per notebook at a time: an asyncio lock within this
        worker, an flock across workers on this host (released by the kernel
        if a worker dies, so never stale)."""
        async with self._locks.setdefault(notebook_id, asyncio.Lock()):
            locks = private_dir(self.data_dir / "run" / ".locks")
            async with flock(locks / notebook_id):
                yield

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    # -- observe -----------------------------------------------------------

    async def observe(self, notebook_id: str) -> Observation:
        state = self._read_state(notebook_id)
        # A claimed warm Sail not yet recorded (a worker killed in between)
        # runs with nothing else naming it: only a stop or start reaps it.
        claimed = (self.run_dir(notebook_id) / CLAIM).exists()
        if state is None:
            # No record, yet something may run: a claim, or processes whose
            # record was deleted under them. The scan only when the record
            # is missing, so never for a running notebook's routine look.
            lost = claimed or bool(await asyncio.to_thread(self._logging_here, notebook_id))
            return Observation(session_id=None, untracked=lost)
        sail = procs.Proc.from_json(state.get("sail"))
        marimo = procs.Proc.from_json(state.get("marimo"))
        base_url = str(state.get("base_url", f"/notebooks/{notebook_id}"))

        async def component(name: str, proc: procs.Proc | None) -> Component:
            if proc is None:
                return ABSENT
            if not procs.is_alive(proc):
                retries = _port_retries(state, name.lower())
                if retries < PORT_RETRIES and procs.port_clash(proc):
                    # Not a failure yet: the next ensure_running starts it on another port.
                    return Component(Phase.ABSENT, f"{name}'s port {proc.port} was in use")
                reason = procs.death_reason(name, proc, (self._token(notebook_id),))
                return Component(Phase.FAILED, reason, unwatched=procs.ended_unwatched(proc))
            healthy = (
                await probes.sail_healthy(proc.port)
                if name == "Sail"
                else await probes.marimo_healthy(self._client(), proc.port, base_url)
            )
            return Component(Phase.READY if healthy else Phase.STARTING)

        sail_c, marimo_c = await asyncio.gather(
            component("Sail", sail), component("Marimo", marimo)
        )
        executing: bool | None = False
        if marimo is not None and marimo_c.phase is Phase.READY:
            # None when Marimo cannot say (no token, the probe failed): unknown, not idle.
            token = self._token(notebook_id)
            executing = (
                await probes.marimo_executing(self._client(), marimo.port, base_url, token)
                if token
                else None
            )
        marimo_url = f"http://127.0.0.1:{marimo.port}" if marimo else None
        sail_url = f"sc://127.0.0.1:{sail.port}" if sail else None
        runtime_state: dict[str, object] = {"runtime": "local"}
        if marimo is not None:
            runtime_state |= {
                "marimo_url": marimo_url,
                "marimo_pid": marimo.pid,
                # the file as Marimo knows it (cwd + its argv): the proxy pins
                # a viewer's X-Notebook-Id to it
                "notebook_path": str(self.notebook_dir(notebook_id) / NOTEBOOK_FILE),
            }
        if sail is not None:
            warm = bool(state.get("sail_warm"))
            runtime_state |= {"sail_url": sail_url, "sail_pid": sail.pid, "sail_warm": warm}
        return Observation(
            session_id=str(state.get("session_id") or "") or None,
            sail=sail_c,
            marimo=marimo_c,
            marimo_url=marimo_url,
            sail_url=sail_url,
            executing=executing,
            runtime_state=runtime_state,
            untracked=bool(state.get(PENDING)) or claimed,
        )

    def _token(self, notebook_id: str) -> str:
        try:
            return (self.run_dir(notebook_id) / "token").read_text().strip()
        except OSError:
            return ""

    # -- ensure running ----------------------------------------------------

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        try:
            return await self._ensure_running(spec)
        except (FileNotFoundError, PermissionError) as exc:
            # A missing or unusable sail/marimo executable: no retry will help.
            raise TerminalError(f"cannot start: {exc}") from exc

    async def _ensure_running(self, spec: SessionSpec) -> Observation:
        nid = spec.notebook_id
        async with self._lock(nid):
            state = self._read_state(nid)
            if state is not None and state.get("session_id") != spec.session_id:
                await self._stop_locked(nid)
                state = None
            else:
                await self._reap_claim(nid, state)
                await self._stop_unrecorded(nid, state)
            run_dir = self.run_dir(nid)
            nb_dir = self.notebook_dir(nid)
            # The notebook's code and its run state are its owner's: not
            # readable by other users of the host.
            private_dir(run_dir)
            private_dir(nb_dir)
            # Where there is none (a restore's, below, only with Marimo down).
            self._seed(spec, replacing=False)
            token_file = run_dir / "token"
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(spec.session_token)
            state = state or {"session_id": spec.session_id, "notebook_id": nid}
            state["base_url"] = spec.base_url
            sail = procs.Proc.from_json(state.get("sail"))
            marimo = procs.Proc.from_json(state.get("marimo"))
            # A home of the session's own: Marimo keeps its user settings
            # (AI provider keys among them) under ~/.config, which with the
            # worker's HOME every notebook of every member on the host shared.
            home = private_dir(run_dir / "home")
            env = {**self._env(spec), "HOME": str(home)}
            need_sail = sail is None or not procs.is_alive(sail)
            pooled = self.pool is not None and poolable(spec.workload)
            if need_sail and pooled and (marimo is None or not procs.is_alive(marimo)):
                # No live Marimo depends on Sail's port, so a warm one will do.
                claimed = await self._claim(spec, state)
                if claimed is not None:
                    sail = claimed
            if sail is None or not procs.is_alive(sail):
                # Restart on the same port when possible, so a live Marimo's
                # SPARK_REMOTE stays right; otherwise Marimo must follow.
                # Never on one it just found taken.
                clash = self._count_clash(state, "sail", sail)
                if sail is not None and not clash and procs.port_is_free(sail.port):
                    port = sail.port
                    procs.reserve_port(port)  # Marimo's free_port below must not get it
                else:
                    port = procs.free_port()
                if sail is not None and port != sail.port and marimo is not None:
                    await procs.stop(marimo, signal.SIGTERM, self.stop_grace, nb_dir)
                    marimo = None
                state["sail_warm"] = False
                if marimo is None:
                    state.pop("marimo", None)
                sail = await self._spawn(
                    nid,
                    state,
                    "sail",
                    self._sail_argv(port),
                    env=self._sail_env(spec, env),
                    cwd=nb_dir,
                    log=run_dir / "sail.log",
                    port=port,
                )
            if marimo is None or not procs.is_alive(marimo):
                # Not under a live editor: a restore's seed goes over the file
                # as Marimo (re)starts, which before it runs is a retry's.
                self._seed(spec, replacing=True)
                clash = self._count_clash(state, "marimo", marimo)
                if marimo is not None and not clash and procs.port_is_free(marimo.port):
                    port = marimo.port
                    procs.reserve_port(port)
                else:
                    port = procs.free_port()
                marimo_env = {**env, "SPARK_REMOTE": f"sc://127.0.0.1:{sail.port}"}
                marimo = await self._spawn(
                    nid,
                    state,
                    "marimo",
                    self._marimo_argv(port, spec.base_url, token_file),
                    env=marimo_env,
                    cwd=nb_dir,
                    log=run_dir / "marimo.log",
                    port=port,
                )
            if pooled:
                # The pool's Sails serve any notebook: the worker's env, not this session's HOME.
                self._schedule_refill(spec, self._sail_env(spec, self._env(spec)), marimo)
        return await self.observe(nid)

    def _seed(self, spec: SessionSpec, *, replacing: bool) -> None:
        """The notebook's file where there is none (`replacing` False), or a
        restore's over it (True); reconciler/runtime/seeding.py."""
        replaces = spec.seed_replaces if replacing else None
        if replacing and replaces is None:
            return
        nb_dir = self.notebook_dir(spec.notebook_id)
        did = seeding.seed(
            str(nb_dir / NOTEBOOK_FILE),
            (spec.seed or TEMPLATE).encode("utf-8"),
            replaces,
            spec.session_id,
            mode=0o600,  # the notebook's code is its owner's, not the host's users'
        )
        if did.startswith("restored"):
            log.info("notebook_file_restored", notebook_id=spec.notebook_id, did=did)

    @staticmethod
    def _count_clash(state: dict[str, object], key: str, dead: procs.Proc | None) -> bool:
        """Whether the process being replaced died of a port clash; counted
        in the state (`observe` reports a clash as a failure once the
        retries are used up), reset by a start for any other reason."""
        clash = dead is not None and procs.port_clash(dead)
        state[f"{key}_port_retries"] = _port_retries(state, key) + 1 if clash else 0
        return clash

    def _schedule_refill(
        self, spec: SessionSpec, sail_env: dict[str, str], marimo: procs.Proc
    ) -> None:
        """Top the shape's pool up (which also fills it on the shape's first
        start) in a background task of this runtime, one per shape at a time."""
        digest = shape(spec.workload)
        task = self._refills.get(digest)
        if task is None or task.done():
            self._refills[digest] = asyncio.create_task(self._refill_after(spec, sail_env, marimo))
        else:
            self._refill_again.add(digest)  # a claim it may have counted before

    async def _refill_after(
        self, spec: SessionSpec, sail_env: dict[str, str], marimo: procs.Proc
    ) -> None:
        assert self.pool is not None
        # Not while the start it follows is coming up (its Marimo alive, not
        # yet answering): on a small host a new Sail's own start would compete
        # for CPU with that Marimo.
        client = self._client()
        await probes.comes_up(
            marimo,
            lambda: probes.marimo_healthy(client, marimo.port, spec.base_url),
            REFILL_WAIT_SECONDS,
            0.05,
        )
        digest = shape(spec.workload)
        while True:
            self._refill_again.discard(digest)
            try:
                await self.pool.refill(spec.workload, sail_env)
            except Exception:  # the next start tries again
                log.exception("local_warm_refill_failed", notebook_id=spec.notebook_id)
                return
            if digest not in self._refill_again:
                return

    async def refilled(self) -> None:
        """Wait for the pool refills under way (tests, benchmarks)."""
        pending = [t for t in self._refills.values() if not t.done()]
        self._refills = {k: t for k, t in self._refills.items() if not t.done()}
        await asyncio.gather(*pending, return_exceptions=True)

    async def warm_up(self, workload: WorkloadSpec) -> int:
        """Fill a shape's pool now rather than at its first start (what an
        operator's warm-up or a benchmark calls); returns Sails spawned."""
        if self.pool is None:
            return 0
        spec = SessionSpec("", "", "", workload, "")
        return await self.pool.refill(workload, self._sail_env(spec, self._env(spec)))

    async def _claim(self, spec: SessionSpec, state: dict[str, object]) -> procs.Proc | None:
        """Take a warm Sail into this notebook's state (under its lock)."""
        assert self.pool is not None
        run_dir = self.run_dir(spec.notebook_id)
        proc = await self.pool.claim(spec.workload, run_dir)
        if proc is None:
            return None
        state["sail"] = proc.to_json()
        state["sail_warm"] = True
        state.pop("marimo", None)  # a dead Marimo's port is reused if free, not needed
        self._write_state(spec.notebook_id, state)
        (run_dir / CLAIM).unlink(missing_ok=True)  # state.json owns it now
        return proc

    async def _reap_claim(self, notebook_id: str, state: dict[str, object] | None) -> None:
        """A worker that died between claiming a warm Sail and recording it
        in state.json left `sail.claim`: stop that Sail unless state owns it."""
        claim_file = self.run_dir(notebook_id) / CLAIM
        proc = read_proc(claim_file)
        if proc is None:
            claim_file.unlink(missing_ok=True)
            return
        owned = procs.Proc.from_json((state or {}).get("sail"))
        if owned is None or owned.pid != proc.pid:
            await procs.stop(proc, signal.SIGINT, self.stop_grace, Path(proc.cwd))
            # Cut short before its files moved here, they are still the pool's
            # (the record names where they were): nobody else would remove them.
            await remove_warm_files(proc)
        claim_file.unlink(missing_ok=True)

    def _env(self, spec: SessionSpec) -> dict[str, str]:
        env = {k: v for k in _ENV_ALLOW if (v := os.environ.get(k)) is not None}
        env.update(user_env(spec.workload.env))
        env.update(user_env(spec.workload.secret_env))
        return env

    @staticmethod
    def _sail_env(spec: SessionSpec, env: dict[str, str]) -> dict[str, str]:
        if spec.workload.mode == "cluster":
            workers = str(max(1, spec.workload.workers))
            return {
                **env,
                "SAIL_MODE": "local-cluster",
                "SAIL_CLUSTER__WORKER_INITIAL_COUNT": workers,
                "SAIL_CLUSTER__WORKER_MAX_COUNT": workers,
            }
        return env

    @staticmethod
    def _sail_argv(port: int) -> list[str]:
        return [_bin("sail"), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)]

    @staticmethod
    def _marimo_argv(port: int, base_url: str, token_file: Path) -> list[str]:
        # --quiet: no start-up banner, which would write the token into marimo.log.
        return [
            _bin("marimo"),
            "--quiet",
            "edit",
            NOTEBOOK_FILE,
            "--headless",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--base-url",
            base_url.rstrip("/"),
            "--token-password-file",
            str(token_file),
            "--skip-update-check",
            "--no-sandbox",
        ]

    # -- stop / delete -----------------------------------------------------

    async def ensure_stopped(self, notebook_id: str) -> None:
        async with self._lock(notebook_id):
            await self._stop_locked(notebook_id)

    async def _stop_locked(self, notebook_id: str) -> None:
        state = self._read_state(notebook_id)
        await self._reap_claim(notebook_id, state)
        await self._stop_unrecorded(notebook_id, state)
        if state is None:
            return
        sail = procs.Proc.from_json(state.get("sail"))
        marimo = procs.Proc.from_json(state.get("marimo"))
        # Sail's graceful stop is SIGINT (SIGTERM kills it at once); Marimo's is SIGTERM.
        cwd, grace = self.notebook_dir(notebook_id), self.stop_grace
        # A claimed warm Sail keeps the working directory it was started in.
        sail_cwd = Path(sail.cwd) if sail and sail.cwd else cwd
        await asyncio.gather(
            procs.stop(sail, signal.SIGINT, grace, sail_cwd) if sail else asyncio.sleep(0),
            procs.stop(marimo, signal.SIGTERM, grace, cwd) if marimo else asyncio.sleep(0),
        )
        run_dir = self.run_dir(notebook_id)
        for name in ("state.json", "token"):
            (run_dir / name).unlink(missing_ok=True)
        await remove_tree(run_dir / WORK)  # a claimed warm Sail's scratch

    async def read_file(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> bytes | None:
        """From the disk, whatever runs: the file is there between sessions too."""
        path = self.notebook_dir(notebook_id) / NOTEBOOK_FILE

        def read() -> bytes | None:
            try:
                with path.open("rb") as f:
                    return f.read(max_bytes + 1)
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        """From the files the processes write: this session's output, from
        where its process's began (a warm Sail's in the pool's file)."""
        state = self._read_state(notebook_id) or {}

        def read(name: str) -> LogTail:
            proc = procs.Proc.from_json(state.get(name))
            if proc is None:  # never spawned (its Sail failed first): its file is older runs'
                return LogTail(None, "It has not started.")
            data = procs.last_bytes(proc.log, proc.log_offset, max_bytes)
            return LogTail(data) if data is not None else LogTail(None, "It has written nothing.")

        names = notebook_logs.COMPONENTS
        found = await asyncio.to_thread(lambda: [read(name) for name in names])
        return dict(zip(names, found, strict=True))

    async def delete(self, notebook_id: str) -> None:
        async with self._lock(notebook_id):
            await self._stop_locked(notebook_id)
            await remove_tree(self.notebook_dir(notebook_id), strict=True)
            await remove_tree(self.run_dir(notebook_id), strict=True)
            (self.data_dir / "run" / ".locks" / notebook_id).unlink(missing_ok=True)
        self._locks.pop(notebook_id, None)

    # -- inventory -----------------------------------------------------------

    async def active_ids(self) -> set[str]:
        """Notebooks with a run state (`run/{id}/state.json`), a claimed warm
        Sail not yet recorded (`run/{id}/sail.claim`), or a Sail or Marimo
        whose output goes to `run/{id}/` though its record is gone (the data
        directory deleted under it): what may still run. A run directory
        holding only logs, and a notebook's file, are not listed (a stopped
        notebook has both). In a thread: one directory entry per notebook
        ever started on this host, and one pass over /proc."""
        if self.pool is None and self._leftover_drain is None:
            # In the background: the sweep lists the runtime inside its
            # transaction, and a drain stops warm Sails one by one.
            self._leftover_drain = asyncio.create_task(self._drain_pool_left_over())
        return await asyncio.to_thread(self._active_ids)

    async def _drain_pool_left_over(self) -> None:
        root = self.data_dir / "pool"
        try:
            if root.is_dir() and any(p.is_dir() for p in root.iterdir()):
                await LocalPool(root, 0, self._sail_argv, clock=self.clock).close()
        except Exception:  # the close tries again
            log.exception("local_warm_leftovers_drain_failed")

    def _active_ids(self) -> set[str]:
        run = self.data_dir / "run"
        try:
            entries = list(run.iterdir())
        except OSError:
            entries = []
        ids = {
            e.name
            for e in entries
            if is_valid_id(e.name) and ((e / "state.json").exists() or (e / CLAIM).exists())
        }
        for found in procs.logging_under(run):
            where = Path(found.proc.log).parent
            if where.parent == run and is_valid_id(where.name):
                ids.add(where.name)
        return ids

    async def close(self) -> None:
        for task in self._refills.values():
            task.cancel()
        await self.refilled()
        if self.pool is not None:
            await self.pool.close()
        else:
            if self._leftover_drain is not None:
                await asyncio.gather(self._leftover_drain, return_exceptions=True)
            await self._drain_pool_left_over()
        if self._http is not None:
            await self._http.close()
