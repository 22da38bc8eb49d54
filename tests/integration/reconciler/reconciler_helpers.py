"""Helpers for the reconciler tests: find the processes started for
notebooks; run a worker in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from common.settings import Settings
from reconciler.reconcile import reconcile_once
from reconciler.runtime.base import LogTail, Observation


def processes_under(root: Path | str) -> list[psutil.Process]:
    """Live processes whose working directory or command line is under `root`."""
    root = str(root)
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            if p.cwd().startswith(root) or any(root in a for a in p.cmdline()):
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def processes_for(data_dir: Path, notebook_id: str) -> list[psutil.Process]:
    """Sail, Marimo and the kernel of one notebook (all run in its directory)."""
    return processes_under(data_dir / "notebooks" / notebook_id)


async def until_none_for(data_dir: Path, notebook_id: str, timeout: float = 30) -> None:
    """Until the notebook has no process left: `failed` is written before its
    teardown (so the reason is never lost to a worker dying mid-teardown),
    which ends Marimo within the stop grace after."""
    deadline = time.monotonic() + timeout
    while left := processes_for(data_dir, notebook_id):
        assert time.monotonic() < deadline, f"still running: {left}"
        await asyncio.sleep(0.1)


async def reconcile_until_running(deps: Any, rows: Any, nid: str, timeout: float = 60) -> None:
    """Run passes (as a worker would, without one) until the notebook is
    `running`; the failure names its last status message."""
    deadline = time.monotonic() + timeout
    while (row := await rows.get(nid))["status"] != "running":
        assert time.monotonic() < deadline, row["status_message"]
        await reconcile_once(deps, nid)
        await asyncio.sleep(0.05)


def kinds(procs: list[psutil.Process]) -> list[str]:
    """'sail' / 'marimo' for each group leader (kernels and helpers ignored)."""
    out = []
    for p in procs:
        try:
            if p.pid != os.getpgid(p.pid):
                continue
            cmd = " ".join(p.cmdline())
        except (psutil.Error, OSError):
            continue
        if "spark server" in cmd:
            out.append("sail")
        elif "marimo" in cmd and " edit " in f" {cmd} ":
            out.append("marimo")
    return sorted(out)


async def worker_process(
    settings: Settings, metrics_port: int | None = None
) -> asyncio.subprocess.Process:
    """A reconciler worker in its own process (reconciler_worker_proc.py), for
    tests that signal or SIGKILL it."""
    raw = {**settings.__dict__, "data_dir": str(settings.data_dir)}
    port = [str(metrics_port)] if metrics_port is not None else []
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "reconciler_worker_proc.py"),
        json.dumps(raw),
        *port,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


class NoFile:
    """For a test's stand-in runtime: no notebook file and no output to read
    (the copy a stop or a running notebook's pass takes finds none, and keeps
    nothing; a stop's read of the logs finds them empty)."""

    async def read_file(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> bytes | None:
        return None

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        return {"sail": LogTail(b""), "marimo": LogTail(b"")}
