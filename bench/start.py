"""Start-to-running latency through the system vs the floor, and
commit-to-pickup latency of a reconcile job.

- system: `POST /api/v1/workloads/notebooks/{id}/start` on the real API app
  (row update + status + transactional enqueue, one commit) → queue → worker →
  Sail + Marimo → status `running` in the row. Measured from sending the
  request to the row reading `running` (polled every 5 ms).
- floor: the same Sail and Marimo command lines spawned directly by this
  script, in parallel, polled for health every 5 ms until both answer.
- pool on vs off: the same system start with the local runtime's warm Sail
  pool (size 1, NOTEBOOKS_LOCAL_WARM_POOL_SIZE) and without it, interleaved
  in the same run with one worker; before each pool-on start the pool's Sail
  is ready (the steady state of a pool), and the refill it triggers runs
  during the measured start, as it does in service.
- pickup: an enqueue committed → the worker's reconcile handler entered, on
  an idle worker (LISTEN/NOTIFY, asyncpg driver). Target p99 ≤ 50 ms.

Usage: python bench/start.py [--runs 5] [--pickups 200]
Runs its own embedded PostgreSQL, the API app and a worker in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from aiohttp.test_utils import TestClient, TestServer
from psycopg.rows import dict_row

import reconciler.worker as worker_mod
from common.embedded_db import database_url, start_embedded
from common.ids import new_id
from common.jobs import enqueue_reconcile
from common.logging import configure_logging
from common.settings import Settings
from common.tokens import hash_token, new_token, token_prefix
from reconciler.runtime import probes, procs
from reconciler.runtime.base import LogTail, Observation, SessionSpec, WorkloadSpec
from reconciler.runtime.local import LocalRuntime
from reconciler.runtime.template import NOTEBOOK_FILE, TEMPLATE
from sql.migrate import migrate


def _create_app():  # type: ignore[no-untyped-def]
    # `python bench/start.py` puts bench/ first on sys.path, where bench/api.py
    # would shadow the api package.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    from api.app import create_app

    return create_app


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def floor_once(root: Path) -> float:
    """Sail and Marimo started directly, in parallel, until both are healthy."""
    nb_dir = root / "floor"
    nb_dir.mkdir(parents=True, exist_ok=True)
    (nb_dir / NOTEBOOK_FILE).write_text(TEMPLATE)
    token = nb_dir / "token"
    token.write_text("t" * 40)
    sail_port, marimo_port = procs.free_port(), procs.free_port()
    base = "/notebooks/FLOOR"
    t0 = time.monotonic()
    sail = procs.spawn(
        LocalRuntime._sail_argv(sail_port),
        env=_env(),
        cwd=nb_dir,
        log=nb_dir / "sail.log",
        port=sail_port,
    )
    marimo = procs.spawn(
        LocalRuntime._marimo_argv(marimo_port, base, token),
        env={**_env(), "SPARK_REMOTE": f"sc://127.0.0.1:{sail_port}"},
        cwd=nb_dir,
        log=nb_dir / "marimo.log",
        port=marimo_port,
    )
    import aiohttp

    async with aiohttp.ClientSession() as http:
        while True:
            ok = await asyncio.gather(
                probes.sail_healthy(sail_port), probes.marimo_healthy(http, marimo_port, base)
            )
            if all(ok):
                break
            await asyncio.sleep(0.005)
    took = time.monotonic() - t0
    await asyncio.gather(
        procs.stop(sail, signal.SIGINT, 5, nb_dir), procs.stop(marimo, signal.SIGTERM, 5, nb_dir)
    )
    return took


def _env() -> dict[str, str]:
    return {k: v for k in ("PATH", "HOME", "LANG") if (v := os.environ.get(k))}


class Switch:
    """The worker's runtime: pool off or on, switched between runs (both
    over one data directory, so either can observe and stop what the other
    started)."""

    def __init__(self, off: LocalRuntime, on: LocalRuntime) -> None:
        self.off, self.on = off, on
        self.current = off

    async def observe(self, notebook_id: str) -> Observation:
        return await self.current.observe(notebook_id)

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        return await self.current.ensure_running(spec)

    async def ensure_stopped(self, notebook_id: str) -> None:
        await self.current.ensure_stopped(notebook_id)

    async def read_file(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> bytes | None:
        return await self.current.read_file(notebook_id, observed, max_bytes)

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        return await self.current.read_logs(notebook_id, observed, max_bytes)

    async def delete(self, notebook_id: str) -> None:
        await self.current.delete(notebook_id)

    async def active_ids(self) -> set[str]:
        return await self.current.active_ids()  # one data directory: either lists all

    async def close(self) -> None:
        await self.off.close()
        await self.on.close()


async def pool_ready(rt: LocalRuntime, workload: WorkloadSpec) -> None:
    """Wait until the shape's warm Sail answers (a pool's steady state)."""
    assert rt.pool is not None
    while True:
        members = rt.pool.members(workload)
        if members and all(
            await asyncio.gather(*(probes.sail_healthy(p.port) for _, p in members))
        ):
            return
        await asyncio.sleep(0.01)


async def sail_ready_once(rt: LocalRuntime, workload: WorkloadSpec) -> float:
    """`ensure_running` called → this session's Sail answers its health check,
    straight on the runtime (no row: the sweep never sees it)."""
    nid = "S" + new_id()
    spec = SessionSpec(nid, new_id(), "t" * 40, workload, f"/notebooks/{nid}")
    t0 = time.monotonic()
    obs = await rt.ensure_running(spec)
    port = int(str(obs.sail_url).rsplit(":", 1)[1])
    while not await probes.sail_healthy(port):  # noqa: ASYNC110 - timing a poll
        await asyncio.sleep(0.005)
    took = time.monotonic() - t0
    await rt.ensure_stopped(nid)
    return took


class Bench:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.org, self.member, self.config = new_id(), new_id(), new_id()
        self.auth: dict[str, str] = {}

    async def setup(self, conn: psycopg.AsyncConnection) -> None:
        await conn.execute("insert into organizations (id, name) values (%s, 'bench')", (self.org,))
        await conn.execute(
            "insert into members (id, organization_id, email, name) values (%s, %s, 'b@x', 'B')",
            (self.member, self.org),
        )
        await conn.execute(
            "insert into workload_configs (id, organization_id, name) values (%s, %s, 'b')",
            (self.config, self.org),
        )
        token = new_token()
        await conn.execute(
            "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
            " values (%s, %s, 'bench', %s, %s)",
            (new_id(), self.member, token_prefix(token), hash_token(token)),
        )
        self.auth = {"Authorization": f"Bearer {token}"}

    async def notebook(self, conn: psycopg.AsyncConnection) -> str:
        nid = new_id()
        await conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " created_by, updated_by) values (%s, %s, %s, %s, 'nb', %s, %s)",
            (nid, self.org, self.member, self.config, self.member, self.member),
        )
        return nid

    async def start(self, api: TestClient, nid: str) -> None:
        # Through the real API app: its start writes the row and enqueues in one commit.
        resp = await api.post(f"/api/v1/workloads/notebooks/{nid}/start", headers=self.auth)
        if resp.status != 202:
            raise RuntimeError(f"start: {resp.status} {await resp.text()}")

    async def stop(self, api: TestClient, nid: str) -> None:
        resp = await api.post(f"/api/v1/workloads/notebooks/{nid}/stop", headers=self.auth)
        if resp.status != 202:
            raise RuntimeError(f"stop: {resp.status} {await resp.text()}")

    @staticmethod
    async def wait_status(conn: psycopg.AsyncConnection, nid: str, status: str) -> None:
        while True:
            cur = await conn.execute(
                "select status, status_message from notebooks where id=%s", (nid,)
            )
            row = await cur.fetchone()
            if row and row["status"] == status:
                return
            if row and row["status"] == "failed":
                raise RuntimeError(f"start failed: {row['status_message']}")
            await asyncio.sleep(0.005)


async def run(runs: int, pickups: int) -> None:
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench-start-"))
    server = start_embedded(root / "pg", cleanup="stop")
    try:
        dsn = database_url(server)
        await migrate(dsn)
        settings = Settings(
            database_url=dsn,
            data_dir=root / "data",
            signing_keys=(("k", "s" * 40),),
            secret_key="m" * 40,
            log_level="warning",
            sweep_interval_seconds=10,
        )
        configure_logging("console", "warning")
        picked: dict[str, float] = {}
        original = worker_mod.reconcile_once

        async def timed(deps, notebook_id):  # type: ignore[no-untyped-def]
            picked.setdefault(notebook_id, time.monotonic())
            return await original(deps, notebook_id)

        worker_mod.reconcile_once = timed  # type: ignore[assignment]
        stop = asyncio.Event()
        grace = settings.stop_grace_seconds
        runtime = Switch(
            LocalRuntime(settings.data_dir, stop_grace_seconds=grace),
            LocalRuntime(settings.data_dir, stop_grace_seconds=grace, warm_pool_size=1),
        )
        task = asyncio.create_task(
            worker_mod.run_worker(settings, stop=stop, runtime=runtime)  # type: ignore[arg-type]
        )
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)
        bench = Bench(dsn)
        await bench.setup(conn)
        api = TestClient(TestServer(_create_app()(settings)))
        await api.start_server()
        await asyncio.sleep(1)  # let the worker connect and LISTEN

        # Commit-to-pickup on an idle worker: ids that have no row (a no-op reconcile).
        lat = []
        for _ in range(pickups):
            nid = "P" + new_id()
            async with conn.transaction():
                await enqueue_reconcile(conn, [nid])
            t0 = time.monotonic()
            while nid not in picked:  # noqa: ASYNC110 - timing a handler in this loop
                await asyncio.sleep(0.0005)
            lat.append((picked[nid] - t0) * 1000)
            await asyncio.sleep(0.01)

        workload = WorkloadSpec()  # the bench's config: all defaults
        await runtime.on.warm_up(workload)
        system, warm, floor, stops = [], [], [], []
        stops_by: dict[bool, list[float]] = {False: [], True: []}
        sail_cold: list[float] = []
        sail_warm: list[float] = []
        for i in range(runs):
            order = ((False, system), (True, warm))
            for pool_on, figures in order if i % 2 == 0 else order[::-1]:  # no order bias
                runtime.current = runtime.on if pool_on else runtime.off
                if pool_on:
                    await pool_ready(runtime.on, workload)
                nid = await bench.notebook(conn)
                t0 = time.monotonic()
                await bench.start(api, nid)
                await bench.wait_status(conn, nid, "running")
                figures.append(time.monotonic() - t0)
                cur = await conn.execute(
                    "select runtime_state->>'sail_warm' as w from notebooks where id=%s", (nid,)
                )
                used = ((await cur.fetchone()) or {}).get("w") == "true"
                if used != pool_on:
                    raise RuntimeError(f"pool {'on' if pool_on else 'off'} but sail_warm={used}")
                t0 = time.monotonic()
                await bench.stop(api, nid)
                await bench.wait_status(conn, nid, "stopped")
                stops.append(time.monotonic() - t0)
                stops_by[pool_on].append(stops[-1])
            floor.append(await floor_once(root / f"floor{i}"))
            await pool_ready(runtime.on, workload)
            sail_warm.append(await sail_ready_once(runtime.on, workload))
            sail_cold.append(await sail_ready_once(runtime.off, workload))

        await api.close()
        stop.set()
        await asyncio.wait_for(task, 30)
        await runtime.close()  # the last user of the pool: its warm Sail is stopped
        await conn.close()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"cpus {os.cpu_count()}; load average before: {_load(load_before)};"
        f" after: {_load(os.getloadavg())}"
    )
    print(f"start-to-running over {runs} runs (seconds)")
    print(f"  system  median {statistics.median(system):.3f}  p95 {pct(system, 95):.3f}")
    print(f"  floor   median {statistics.median(floor):.3f}  p95 {pct(floor, 95):.3f}")
    print(
        f"  ratio   median {statistics.median(system) / statistics.median(floor):.2f}x"
        f"  p95 {pct(system, 95) / pct(floor, 95):.2f}x   (target <= 1.2x)"
    )
    print(f"  stop-to-stopped median {statistics.median(stops):.3f}  max {max(stops):.3f}")
    print(f"start-to-running, warm Sail pool on vs off, same run, {runs} runs each (seconds)")
    print(f"  pool off  median {statistics.median(system):.3f}  p95 {pct(system, 95):.3f}")
    print(f"  pool on   median {statistics.median(warm):.3f}  p95 {pct(warm, 95):.3f}")
    print(
        f"  stop-to-stopped median, pool off {statistics.median(stops_by[False]):.3f}"
        f"  pool on {statistics.median(stops_by[True]):.3f}"
    )
    print(
        f"  on/off    median {statistics.median(warm) / statistics.median(system):.2f}x"
        f"  p95 {pct(warm, 95) / pct(system, 95):.2f}x"
    )
    print(
        f"  ensure_running -> Sail healthy, median: pool off {statistics.median(sail_cold):.3f}"
        f"  pool on {statistics.median(sail_warm):.3f}"
    )
    print(f"commit-to-pickup over {pickups} jobs (ms)")
    print(
        f"  median {statistics.median(lat):.1f}  p95 {pct(lat, 95):.1f}"
        f"  p99 {pct(lat, 99):.1f}  max {max(lat):.1f}   (target p99 <= 50 ms)"
    )


def _load(avg: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pickups", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.runs, args.pickups))


if __name__ == "__main__":
    main()
