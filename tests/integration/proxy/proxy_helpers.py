"""Helpers for the proxy tests: a real Marimo on a free port, the notebook's
row in a fresh database, and the proxy app served on another free port."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aiohttp import web
from aiohttp.test_utils import TestServer

from common import clock
from common.clock import FakeClock
from common.session_token import mint
from common.settings import Settings
from proxy.app import LISTENING, create_app
from proxy.cookie import COOKIE_NAME
from proxy.serve import Served, start
from reconciler.runtime.procs import free_port

NOTEBOOK_ID = "NBPROXYTEST1"
NOTEBOOK_SOURCE = """import marimo

app = marimo.App()


@app.cell
def _():
    answer = 6 * 7
    answer
    return (answer,)


if __name__ == "__main__":
    app.run()
"""


@dataclass(frozen=True)
class Marimo:
    url: str
    token: str
    notebook_id: str


def start_marimo(
    workdir: Path, notebook_id: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Marimo]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "nb.py").write_text(NOTEBOOK_SOURCE)
    port = free_port()
    token = secrets.token_urlsafe(24)
    marimo_bin = Path(sys.executable).parent / "marimo"
    proc = subprocess.Popen(
        [
            str(marimo_bin),
            "edit",
            "nb.py",
            "--headless",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--base-url",
            f"/notebooks/{notebook_id}",
            "--token-password",
            token,
            "--skip-update-check",
        ],
        cwd=workdir,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "marimo.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/notebooks/{notebook_id}/health", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError((workdir / "marimo.log").read_text()[-2000:]) from None
            time.sleep(0.1)
    return proc, Marimo(url=url, token=token, notebook_id=notebook_id)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass(frozen=True)
class World:
    org: str
    owner: str
    editor: str
    viewer: str
    outsider: str
    team: str
    viewer_team: str
    notebook: str
    session_id: str


def api_token_of(member: str) -> str:
    """The id of the API token each world member opens notebooks with."""
    return f"T{member}"


def insert_world(
    dsn: str, marimo_url: str, marimo_token: str, notebook_id: str = NOTEBOOK_ID
) -> World:
    w = World(
        org="ORG1",
        owner="OWNER1",
        editor="EDITOR1",
        viewer="VIEWER1",
        outsider="OUTSIDER1",
        team="TEAMED1",
        viewer_team="TEAMVW1",
        notebook=notebook_id,
        session_id="SESSION1",
    )
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("insert into organizations (id, name) values (%s, 'org')", (w.org,))
        for m in (w.owner, w.editor, w.viewer, w.outsider):
            conn.execute(
                "insert into members (id, organization_id, email, name) values (%s, %s, %s, %s)",
                (m, w.org, f"{m.lower()}@example.com", m),
            )
            conn.execute(
                "insert into api_tokens (id, member_id, name, prefix, secret_hash) "
                "values (%s, %s, 't', 'p', %s)",
                (api_token_of(m), m, f"hash-{m}".encode()),
            )
        conn.execute(
            "insert into teams (id, organization_id, name) values (%s, %s, 'eds')", (w.team, w.org)
        )
        conn.execute(
            "insert into teams (id, organization_id, name) values (%s, %s, 'vws')",
            (w.viewer_team, w.org),
        )
        conn.execute(
            "insert into team_memberships (team_id, member_id, role) values "
            "(%s, %s, 'editor'), (%s, %s, 'viewer')",
            (w.team, w.editor, w.viewer_team, w.viewer),
        )
        conn.execute(
            "insert into workload_configs (id, organization_id, name) values "
            "('WC1', %s, 'default')",
            (w.org,),
        )
        conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " desired_state, status, session_id, session_token, runtime_state, created_by,"
            " updated_by) values (%s, %s, %s, 'WC1', 'nb', 'running', 'running', %s, %s,"
            " %s::jsonb, %s, %s)",
            (
                w.notebook,
                w.org,
                w.owner,
                w.session_id,
                marimo_token,
                f'{{"marimo_url": "{marimo_url}", "sail_url": "sc://127.0.0.1:1"}}',
                w.owner,
                w.owner,
            ),
        )
        conn.execute(
            "insert into notebook_teams (notebook_id, team_id) values (%s, %s), (%s, %s)",
            (w.notebook, w.team, w.notebook, w.viewer_team),
        )
    return w


class SteppingClock(clock.SteppingClock):
    """The proxy's own timers (the WebSocket heartbeat, the express lane's
    sweep) run when a test moves this clock, never on their own
    (forward.Proxy.sleep)."""

    async def asleep_until(self, due: float) -> None:
        """Wait until some timer sleeps until `due`: it has done what it does
        before then, and `advance` to `due` wakes it."""
        await eventually(lambda: due in self.asleep, f"a timer to sleep until {due}")


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    """Wait until `condition()` is true (polled), failing with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await _value(condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


# SQL setting a `stopping` notebook's status change far enough back that its
# save window for open editors (common/statuses.py) is over: what a test of
# a stop ending connections means (the window has a test of its own).
PAST_STOP = "status_changed_at = now() - interval '1 minute'"


def sql(dsn: str, statement: str, params: tuple[object, ...] = ()) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


class ProxyUnderTest:
    def __init__(self, server: Served, settings: Settings, clock: FakeClock, world: World) -> None:
        self.server = server
        self.settings = settings
        self.clock = clock
        self.world = world
        self.base = f"http://127.0.0.1:{server.port}"
        self.origin = self.base
        # Prometheus's view: the metrics listener, not the public port.
        self.metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"

    def token(
        self,
        member: str,
        mode: str = "edit",
        *,
        notebook: str | None = None,
        session_id: str | None = None,
        token_id: str | None = None,
    ) -> str:
        token, _ = mint(
            self.settings.signing_keys,
            member_id=member,
            token_id=token_id or api_token_of(member),
            notebook_id=notebook or self.world.notebook,
            session_id=session_id or self.world.session_id,
            mode=mode,
            now=self.clock.now(),
        )
        return token

    def open_url(self, token: str, notebook: str | None = None) -> str:
        return f"{self.base}/notebooks/{notebook or self.world.notebook}/_open?token={token}"

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, member: str, mode: str = "edit") -> aiohttp.ClientSession:
        session = self.client()
        async with session.get(
            self.open_url(self.token(member, mode)), allow_redirects=False
        ) as resp:
            assert resp.status == 303, await resp.text()
        return session

    async def cookie(self, member: str, mode: str = "edit") -> str:
        """The value of the proxy's session cookie after a login, for raw requests."""
        async with await self.login(member, mode) as session:
            for cookie in session.cookie_jar:
                if cookie.key == COOKIE_NAME:
                    return cookie.value
        raise AssertionError("login set no cookie")

    def url(self, path: str) -> str:
        return f"{self.base}/notebooks/{self.world.notebook}{path}"


async def serve_proxy(
    settings: Settings, world: World, clock: FakeClock | None = None, **kwargs: object
) -> tuple[Served, ProxyUnderTest]:
    """The proxy as production serves it: express lane in front of the app."""
    clock = clock or FakeClock(datetime.now(UTC))
    app = create_app(settings, clock=clock, **kwargs)  # type: ignore[arg-type]
    server = await start(app, "127.0.0.1", 0, metrics_port=0)
    return server, ProxyUnderTest(server, settings, clock, world)


@contextlib.asynccontextmanager
async def aiohttp_upstream(app: web.Application) -> AsyncIterator[str]:
    """`app` served on a port the OS picks; yields its base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def proxy_in_front(
    settings: Settings, upstream_url: str, token: str, notebook_id: str, **kwargs: object
) -> AsyncIterator[ProxyUnderTest]:
    """A running notebook whose Marimo is `upstream_url`, and the proxy for
    it. No periodic re-check: revocations come from NOTIFY (or the test)."""
    world = insert_world(settings.database_url, upstream_url, token, notebook_id)
    kwargs.setdefault("recheck_seconds", 3600)
    server, p = await serve_proxy(settings, world, **kwargs)
    try:
        yield p
    finally:
        await server.close()


async def wait_listening(p: ProxyUnderTest) -> None:
    await p.server.app[LISTENING].wait()


@dataclass
class Refreshes:
    """The re-check's lookups as seen by the access cache: each pass's keys
    (one statement each) and every failure."""

    keys: list[frozenset[tuple[str, str, str]]]
    failures: list[BaseException]


@contextlib.asynccontextmanager
async def refreshes(p: ProxyUnderTest, behaviour: str | None = None) -> AsyncIterator[Refreshes]:
    """Watch the access cache's `refresh` (a re-check pass's one lookup);
    with `behaviour` it fails ("raises") or never answers ("hangs": the
    failure seen is the pass's timeout cancelling it; "hangs_on_cancel":
    its cancellation waits too, as psycopg's does on a hung server, until
    the block ends)."""
    from proxy.app import CACHE

    cache = p.server.app[CACHE]
    original = cache.refresh
    seen = Refreshes([], [])
    never, unblocked = asyncio.Event(), asyncio.Event()

    async def refresh(keys: Any) -> Any:
        seen.keys.append(frozenset(keys))
        try:
            if behaviour == "hangs":
                await never.wait()
            if behaviour == "hangs_on_cancel":
                try:
                    await never.wait()
                except asyncio.CancelledError:
                    await unblocked.wait()
                    raise
            if behaviour is not None:
                raise RuntimeError("the database is not answering")
            return await original(keys)
        except BaseException as exc:
            seen.failures.append(exc)
            raise

    cache.refresh = refresh  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        unblocked.set()
        cache.refresh = original  # type: ignore[method-assign]
