"""Fixtures for reconciler tests: rows written directly by SQL (as the API
would), an in-process worker, and a guarantee that no Sail or Marimo process
outlives a test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from reconciler_helpers import processes_under

from common.db import open_pool
from common.ids import new_id
from common.jobs import enqueue_reconcile
from common.settings import Settings
from sql import query


def _kill_all(data_dir: Path) -> None:
    for p in processes_under(data_dir):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            p.kill()


@pytest.fixture
def rsettings(settings: Settings) -> Iterator[Settings]:
    """Settings tuned for tests (short sweep, heartbeat and grace); kills
    every process still running under the data directory afterwards (tests
    that end with a notebook running leave its teardown to this; tests of
    stopping assert that nothing is left themselves)."""
    s = Settings(
        **{
            **settings.__dict__,
            "sweep_interval_seconds": 1,
            "heartbeat_timeout_seconds": 4,
            "stop_grace_seconds": 5,
            "start_deadline_seconds": 60,
            "worker_concurrency": 4,
        }
    )
    s.data_dir.mkdir(parents=True, exist_ok=True)
    yield s
    _kill_all(s.data_dir)


@pytest.fixture
async def pool(rsettings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    """A small pool for calling reconcile passes directly (Deps.pool)."""
    p = await open_pool(rsettings.database_url, min_size=1, max_size=2)
    yield p
    await p.close()


@pytest.fixture
async def db(rsettings: Settings) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
    conn = await psycopg.AsyncConnection.connect(
        rsettings.database_url, autocommit=True, row_factory=dict_row
    )
    yield conn
    await conn.close()


class Rows:
    """Writes rows the way the API does (same columns, same status query)."""

    def __init__(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        self.conn = conn
        self.org = new_id()
        self.member = new_id()

    async def setup(self) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                "insert into organizations (id, name) values (%s, 'org')", (self.org,)
            )
            await self.conn.execute(
                "insert into members (id, organization_id, email, name, organization_admin)"
                " values (%s, %s, 'a@example.com', 'A', true)",
                (self.member, self.org),
            )

    async def config(
        self, *, env: dict[str, str] | None = None, mode: str = "standalone", workers: int = 1
    ) -> str:
        cid = new_id()
        await self.conn.execute(
            "insert into workload_configs (id, organization_id, name, mode, workers, env)"
            " values (%s, %s, %s, %s, %s, %s)",
            (cid, self.org, f"cfg-{cid}", mode, workers, json.dumps(env or {})),
        )
        return cid

    async def notebook(self, config_id: str | None = None, **cols: Any) -> str:
        nid = new_id()
        config_id = config_id or await self.config()
        await self.conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " created_by, updated_by) values (%s, %s, %s, %s, 'nb', %s, %s)",
            (nid, self.org, self.member, config_id, self.member, self.member),
        )
        for col, value in cols.items():
            await self.conn.execute(f"update notebooks set {col} = %s where id = %s", (value, nid))
        return nid

    async def start(self, nid: str, *, now: datetime | None = None, deadline: int = 60) -> None:
        now = now or datetime.now(UTC)
        async with self.conn.transaction():
            await self.conn.execute(
                "update notebooks set desired_state = 'running', generation = generation + 1,"
                " session_id = %s, session_token = %s, start_requested_at = %s,"
                " start_deadline_at = %s, last_active_at = %s where id = %s",
                (
                    new_id(),
                    secrets.token_urlsafe(32),
                    now,
                    now + timedelta(seconds=deadline),
                    now,
                    nid,
                ),
            )
            await self._status(nid, "starting", now)
            await enqueue_reconcile(self.conn, [nid])

    async def stop(self, nid: str, *, message: str = "", now: datetime | None = None) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                "update notebooks set desired_state = 'stopped', generation = generation + 1"
                " where id = %s",
                (nid,),
            )
            await self._status(nid, "stopping", now or datetime.now(UTC), message)
            await enqueue_reconcile(self.conn, [nid])

    async def delete(self, nid: str) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                "update notebooks set desired_state = 'deleted', generation = generation + 1,"
                " deleted_at = now(), deleted_by = %s where id = %s",
                (self.member, nid),
            )
            await enqueue_reconcile(self.conn, [nid])

    async def ping(self, nid: str, at: datetime) -> None:
        await self.conn.execute(
            "insert into notebook_presence (notebook_id, member_id, last_seen_at)"
            " values (%s, %s, %s) on conflict (notebook_id, member_id)"
            " do update set last_seen_at = excluded.last_seen_at",
            (nid, self.member, at),
        )
        await self.conn.execute("update notebooks set last_active_at = %s where id = %s", (at, nid))

    async def _status(self, nid: str, status: str, now: datetime, message: str = "") -> None:
        await self.conn.execute(
            query("set_status"),
            {
                "id": nid,
                "status": status,
                "status_message": message,
                "reason": None,
                "actor": self.member,
                "now": now,
                "record_unchanged": False,
            },
        )

    async def get(self, nid: str) -> dict[str, Any] | None:
        cur = await self.conn.execute("select * from notebooks where id = %s", (nid,))
        return await cur.fetchone()

    async def events(self, nid: str) -> list[dict[str, Any]]:
        cur = await self.conn.execute(query("list_events"), {"notebook_id": nid})
        return await cur.fetchall()

    async def wait_for(
        self, nid: str, check: Callable[[dict[str, Any] | None], bool], timeout: float = 30
    ) -> dict[str, Any] | None:
        """Poll the row until `check` holds (a condition with a deadline, not a sleep)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        row = await self.get(nid)
        while not check(row):
            if loop.time() > until:
                raise AssertionError(f"timed out; last row: {_short(row)}")
            await asyncio.sleep(0.05)
            row = await self.get(nid)
        return row

    async def wait_status(self, nid: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        row = await self.wait_for(nid, lambda r: r is not None and r["status"] in statuses, timeout)
        assert row is not None
        return row

    async def wait_running(self, nid: str, timeout: float = 60) -> dict[str, Any]:
        """Wait for `running`; a failed start fails the test with its reason."""
        row = await self.wait_status(nid, "running", "failed", timeout=timeout)
        assert row["status"] == "running", row["status_message"]
        return row


def _short(row: dict[str, Any] | None) -> object:
    if row is None:
        return None
    return {k: row[k] for k in ("status", "status_message", "desired_state", "generation")}


@pytest.fixture
async def rows(db: psycopg.AsyncConnection[dict[str, Any]]) -> Rows:
    r = Rows(db)
    await r.setup()
    return r


@pytest.fixture
async def worker(
    rsettings: Settings,
) -> AsyncIterator[Callable[..., Awaitable[Callable[[], Awaitable[None]]]]]:
    """Start an in-process worker (call the returned function); stopped at the end."""
    from reconciler.worker import run_worker

    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Callable[[], Awaitable[None]]:
        stop = asyncio.Event()
        settings = Settings(**{**rsettings.__dict__, **overrides})
        task = asyncio.create_task(run_worker(settings, stop=stop))
        stops.append((stop, task))

        async def shutdown() -> None:
            stop.set()
            await asyncio.wait_for(task, 20)

        return shutdown

    yield start
    for stop, _ in stops:
        stop.set()
    for _, task in stops:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)
