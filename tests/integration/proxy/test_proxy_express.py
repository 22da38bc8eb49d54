"""The express lane (proxy/express.py) in front of a small in-process upstream:
which requests the lane relays itself and which it hands to the aiohttp app
on the same socket, keep-alive on both sides, chunked bodies both ways,
pipelining, malformed requests, upstream connections that die, response
headers and large bodies. Raw sockets are used wherever the bytes on the
wire are the point."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from proxy_helpers import (
    PAST_STOP,
    ProxyUnderTest,
    SteppingClock,
    aiohttp_upstream,
    eventually,
    free_port,
    proxy_in_front,
    sql,
    wait_listening,
)

from common.settings import Settings
from proxy import metrics
from proxy.cookie import COOKIE_NAME
from proxy.cookie import LIFETIME as LOGIN_LIFETIME
from proxy.express import MAX_KNOWN_REQUESTS, MAX_REPLAY, QUIET_SECONDS

NB = "NBEXPRESS1"
BASE = f"/notebooks/{NB}"
TOKEN = "express-upstream-token"
TIMEOUT = 10.0
BIG = 5 * 1024 * 1024
UPSTREAM_CSP = "default-src 'self'"


@dataclass(frozen=True)
class Seen:
    """One request that reached the upstream app."""

    method: str
    path_qs: str
    peer: Any  # the proxy's end of the upstream TCP connection
    headers: CIMultiDictProxy[str]


class Upstream:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.transports: dict[Any, asyncio.BaseTransport] = {}
        self.upload_first = asyncio.Event()
        # The next request on this connection is not answered: upstream reads
        # it and closes (a kept-alive connection timing out as a request came).
        self.drop_peer: Any = None
        self.drop_next = 0  # as many next requests dropped so, on any connection
        self.big = os.urandom(BIG)
        self.slow_started = asyncio.Event()
        self.slow_release = asyncio.Event()
        self.slow_dropped = asyncio.Event()  # the proxy left before the answer

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.record], client_max_size=0)
        app.router.add_get(BASE + "/", self.index)
        app.router.add_get(BASE + "/echo", self.echo)
        app.router.add_post(BASE + "/upload", self.upload)
        app.router.add_get(BASE + "/chunked", self.chunked)
        app.router.add_get(BASE + "/big", self.big_body)
        app.router.add_get(BASE + "/close", self.close)
        app.router.add_get(BASE + "/die-length", self.die_length)
        app.router.add_get(BASE + "/die-chunked", self.die_chunked)
        app.router.add_get(BASE + "/slow", self.slow)
        app.router.add_get(BASE + "/slow-stream", self.slow_stream)
        return app

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")
        self.transports[peer] = request.transport
        self.seen.append(Seen(request.method, request.raw_path, peer, request.headers))
        dropped = self.drop_peer is not None and peer == self.drop_peer
        if dropped:
            self.drop_peer = None
        elif self.drop_next:
            self.drop_next -= 1
            dropped = True
        if dropped:
            await request.read()
            request.transport.close()
            raise web.HTTPServiceUnavailable()  # never sent: the connection is gone
        return await handler(request)

    async def index(self, _: web.Request) -> web.Response:
        return web.Response(text="<html>notebook</html>", content_type="text/html")

    async def echo(self, request: web.Request) -> web.Response:
        resp = web.json_response(
            {
                "method": request.method,
                "path_qs": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
        resp.headers["Server"] = "marimo-secret/1.0"
        resp.headers["X-Powered-By"] = "uvicorn"
        resp.headers["Content-Security-Policy"] = UPSTREAM_CSP
        resp.headers["Referrer-Policy"] = "unsafe-url"
        resp.headers["X-Upstream"] = "yes"
        return resp

    async def upload(self, request: web.Request) -> web.Response:
        got = bytearray()
        async for chunk in request.content.iter_any():
            got += chunk
            if b"part1" in got:
                self.upload_first.set()
        return web.json_response(
            {
                "length": len(got),
                "sha256": hashlib.sha256(got).hexdigest(),
                "body": got.decode("latin-1") if len(got) < 1000 else None,
                "transfer_encoding": request.headers.get("Transfer-Encoding"),
                "content_length": request.headers.get("Content-Length"),
            }
        )

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # no Content-Length: chunked on the wire
        resp.headers["Server"] = "marimo-secret/1.0"
        await resp.prepare(request)
        for part in (b"alpha-", b"beta-", b"gamma"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def big_body(self, _: web.Request) -> web.Response:
        return web.Response(body=self.big, content_type="application/octet-stream")

    async def close(self, _: web.Request) -> web.Response:
        resp = web.Response(text="closing")
        resp.force_close()  # `Connection: close`, then upstream closes
        return resp

    async def die_length(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 1000
        await resp.prepare(request)
        await resp.write(b"x" * 100)
        assert request.transport is not None
        request.transport.close()
        return resp

    async def slow(self, _: web.Request) -> web.Response:
        self.slow_started.set()
        await asyncio.wait_for(self.slow_release.wait(), TIMEOUT)
        return web.Response(text="finally")

    async def slow_stream(self, request: web.Request) -> web.StreamResponse:
        self.slow_started.set()
        try:
            await asyncio.wait_for(self.slow_release.wait(), TIMEOUT)
        except asyncio.CancelledError:  # (the test server's handlers are cancelled so)
            self.slow_dropped.set()
            raise
        resp = web.StreamResponse()  # no Content-Length: its head is sent at once
        await resp.prepare(request)
        if request.method != "HEAD":
            await resp.write(b"late")
        return resp

    async def die_chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"partial")
        assert request.transport is not None
        request.transport.close()
        return resp


@contextlib.asynccontextmanager
async def express_proxy(
    settings: Settings, **kwargs: object
) -> AsyncIterator[tuple[Upstream, ProxyUnderTest]]:
    upstream = Upstream()
    async with (
        aiohttp_upstream(upstream.app()) as url,
        proxy_in_front(settings, url, TOKEN, NB, **kwargs) as p,
    ):
        yield upstream, p


@pytest.fixture
async def express(settings: Settings) -> AsyncIterator[tuple[Upstream, ProxyUnderTest]]:
    async with express_proxy(settings) as pair:
        yield pair


@pytest.fixture
async def unnotified(settings: Settings) -> AsyncIterator[tuple[Upstream, ProxyUnderTest]]:
    """No LISTEN: the access cache changes only when a test invalidates it."""
    async with express_proxy(settings, listen_for_changes=False) as pair:
        yield pair


# Counters


@dataclass(frozen=True)
class Counts:
    relayed: int
    handed_off: int
    handoffs_metric: float

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.relayed - other.relayed,
            self.handed_off - other.handed_off,
            self.handoffs_metric - other.handoffs_metric,
        )


def counts(p: ProxyUnderTest) -> Counts:
    lane = p.server.lane
    return Counts(lane.relayed, lane.handed_off, metrics.HANDOFFS._value.get())


def relayed(n: int) -> Counts:
    return Counts(n, 0, 0.0)


def handed_off(n: int) -> Counts:
    return Counts(0, n, float(n))


def upstream_errors() -> float:
    """notebooks_proxy_upstream_errors_total{kind="other"}: a lane connection lost."""
    return metrics.UPSTREAM_ERRORS_TOTAL.labels("other")._value.get()


def idle_upstream(p: ProxyUnderTest) -> list[Any]:
    return [c for idle in p.server.lane.pool._idle.values() for c in idle]


# Raw HTTP/1.x on a socket


@dataclass(frozen=True)
class Raw:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    p: ProxyUnderTest,
    method: str,
    target: str,
    *,
    cookie: str | None = None,
    version: str = "1.1",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes | None = None,
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", f"Host: 127.0.0.1:{p.server.port}"]
    if cookie is not None:
        lines.append(f"Cookie: other=1; {COOKIE_NAME}={cookie}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return bytes(out)
        out += await reader.readexactly(size)
        assert await reader.readexactly(2) == b"\r\n"


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> Raw:
    """One response, its body framed as the headers say (to EOF if neither
    Content-Length nor chunked)."""

    async def read() -> Raw:
        block = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = block.split("\r\n")
        assert status_line.startswith("HTTP/1."), status_line
        status = int(status_line.split(" ", 2)[1])
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers.add(name.strip(), value.strip())
        if head or status in (204, 304) or status < 200:
            body = b""
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            body = await _read_chunked(reader)
        elif "Content-Length" in headers:
            body = await reader.readexactly(int(headers["Content-Length"]))
        else:
            body = await reader.read()
        return Raw(status, headers, body)

    return await asyncio.wait_for(read(), TIMEOUT)


async def rest(reader: asyncio.StreamReader) -> bytes:
    """Whatever the proxy still sends before closing: b"" means a clean EOF."""
    return await asyncio.wait_for(reader.read(), TIMEOUT)


@contextlib.asynccontextmanager
async def connection(
    p: ProxyUnderTest,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", p.server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def keeps_alive(resp: Raw) -> bool:
    return "close" not in resp.headers.get("Connection", "").lower()


# 1. The lane answers a member's plain requests, over kept-alive upstream connections


async def test_plain_gets_are_relayed_by_the_lane_over_kept_alive_upstream(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    n = 12
    async with await p.login(p.world.owner) as session:
        before, seen_before = counts(p), len(upstream.seen)
        for i in range(n):
            async with session.get(p.url(f"/echo?i={i}")) as resp:
                assert resp.status == 200
                assert (await resp.json())["path_qs"] == f"{BASE}/echo?i={i}"
                assert "Connection" not in resp.headers  # the client may keep it
        assert counts(p) - before == relayed(n)
        seen = upstream.seen[seen_before:]
        assert [s.path_qs for s in seen] == [f"{BASE}/echo?i={i}" for i in range(n)]
        assert len({s.peer for s in seen}) <= 2  # reused, not one connection each
        assert all(s.headers["Authorization"] == f"Bearer {TOKEN}" for s in seen)
        assert len(idle_upstream(p)) >= 1  # given back to the pool afterwards


# 2. Hand-off and return


HANDED_OFF = {
    # name: (method, target, send the cookie?, body, status aiohttp answers)
    "no cookie": ("GET", f"{BASE}/echo", False, None, 401),
    "viewer POST refused by policy": ("POST", f"{BASE}/upload", True, b"x=1", 403),
    "not under /notebooks": ("GET", "/healthz", True, None, 200),
}


@pytest.mark.parametrize("kind", sorted(HANDED_OFF))
async def test_handed_off_request_closes_the_connection_and_the_next_is_relayed(
    express,  # type: ignore[no-untyped-def]
    kind: str,
) -> None:
    upstream, p = express
    method, target, with_cookie, body, status = HANDED_OFF[kind]
    cookie = await p.cookie(p.world.viewer, "view")
    async with connection(p) as (reader, writer):
        before = counts(p)
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?n=1", cookie=cookie))
        first = await read_response(reader)
        assert first.status == 200 and first.json()["path_qs"] == f"{BASE}/echo?n=1"
        assert keeps_alive(first)
        assert counts(p) - before == relayed(1)

        seen_before = len(upstream.seen)
        writer.write(
            request_bytes(p, method, target, cookie=cookie if with_cookie else None, body=body)
        )
        second = await read_response(reader)
        assert second.status == status, second.body
        assert second.headers["Connection"] == "close"
        assert second.headers["X-Content-Type-Options"] == "nosniff"
        assert await rest(reader) == b""  # aiohttp closed the connection after it
        assert counts(p) - before == Counts(1, 1, 1.0)
        assert len(upstream.seen) == seen_before  # refused or answered by the proxy itself

    async with connection(p) as (reader, writer):
        before = counts(p)
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?n=2", cookie=cookie))
        again = await read_response(reader)
        assert again.status == 200 and again.json()["path_qs"] == f"{BASE}/echo?n=2"
        assert keeps_alive(again)
        assert counts(p) - before == relayed(1)  # the lane owns the new connection


# 3. Login with a browser-like client


async def test_login_is_answered_with_connection_close_then_the_page_is_relayed(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    before = counts(p)
    link = p.open_url(p.token(p.world.editor))
    async with p.client() as browser, browser.get(link) as resp:
        assert resp.status == 200
        assert await resp.text() == "<html>notebook</html>"
        assert resp.url.path == f"{BASE}/"
        assert "Connection" not in resp.headers
        (login,) = resp.history
        assert login.status == 303
        assert login.headers["Location"] == f"{BASE}/"
        assert login.headers["Connection"] == "close"
        assert COOKIE_NAME in login.cookies
    assert counts(p) - before == Counts(1, 1, 1.0)  # the login handed off, the page relayed
    assert [s.path_qs for s in upstream.seen] == [f"{BASE}/"]
    assert "Cookie" not in upstream.seen[0].headers  # no cookie reaches Marimo


# 4. HEAD


async def test_head_is_handed_off_and_answered_without_a_body(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    before = counts(p)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "HEAD", f"{BASE}/echo", cookie=cookie))
        resp = await read_response(reader, head=True)
        assert resp.status == 200
        assert resp.headers["X-Upstream"] == "yes"
        assert resp.headers["Connection"] == "close"
        assert "Server" not in resp.headers
        assert await rest(reader) == b""  # no body bytes, then the close
    assert counts(p) - before == handed_off(1)
    assert [(s.method, s.path_qs) for s in upstream.seen] == [("HEAD", f"{BASE}/echo")]


async def test_expect_100_continue_is_handed_off_and_works(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    async with await p.login(p.world.owner) as session:
        before = counts(p)
        async with session.post(p.url("/upload"), data=b"expected", expect100=True) as resp:
            assert resp.status == 200
            assert (await resp.json())["body"] == "expected"
        assert counts(p) - before == handed_off(1)


# 5. Chunked request bodies


async def test_chunked_request_body_reaches_upstream_whole_in_order_and_chunked(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    before = counts(p)
    async with connection(p) as (reader, writer):
        writer.write(
            request_bytes(
                p,
                "POST",
                f"{BASE}/upload",
                cookie=cookie,
                headers=(("Transfer-Encoding", "chunked"),),
            )
        )
        writer.write(b"6\r\npart1-\r\n")
        await writer.drain()
        # Upstream has the first chunk before the client sends the rest.
        await asyncio.wait_for(upstream.upload_first.wait(), TIMEOUT)
        writer.write(b"6\r\npart2-\r\n")
        writer.write(b"5\r\npart3\r\n0\r\n\r\n")
        resp = await read_response(reader)
        assert resp.status == 200
        got = resp.json()
        assert got["body"] == "part1-part2-part3"
        assert got["transfer_encoding"] == "chunked"
        assert got["content_length"] is None
        assert keeps_alive(resp)
        # The request ended where the last chunk said: the connection goes on.
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?after=chunked", cookie=cookie))
        after = await read_response(reader)
        assert after.json()["path_qs"] == f"{BASE}/echo?after=chunked"
    assert counts(p) - before == relayed(2)


# 6. Responses without Content-Length


async def test_response_without_length_is_rechunked_for_http11(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    cookie = await p.cookie(p.world.owner)
    before = counts(p)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/chunked", cookie=cookie))
        resp = await read_response(reader)
        assert resp.status == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in resp.headers
        assert resp.body == b"alpha-beta-gamma"
        assert keeps_alive(resp)
        writer.write(request_bytes(p, "GET", f"{BASE}/chunked", cookie=cookie))
        assert (await read_response(reader)).body == b"alpha-beta-gamma"
    assert counts(p) - before == relayed(2)


async def test_response_without_length_is_close_delimited_for_http10(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    cookie = await p.cookie(p.world.owner)
    before = counts(p)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/chunked", cookie=cookie, version="1.0"))
        resp = await read_response(reader)  # neither length nor chunked: read to EOF
        assert resp.status == 200
        assert resp.headers["Connection"] == "close"
        assert "Transfer-Encoding" not in resp.headers
        assert "Content-Length" not in resp.headers
        assert resp.body == b"alpha-beta-gamma"
        assert await rest(reader) == b""
    assert counts(p) - before == relayed(1)


# 7. Pipelining


@pytest.mark.parametrize("pool", ["cold", "warm"])
async def test_pipelined_requests_get_the_first_response_then_a_close(express, pool: str) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    if pool == "warm":  # a kept-alive upstream connection is waiting in the pool
        async with connection(p) as (reader, writer):
            writer.write(request_bytes(p, "GET", f"{BASE}/echo?warm", cookie=cookie))
            assert (await read_response(reader)).status == 200
        assert len(idle_upstream(p)) == 1
    before, seen_before = counts(p), len(upstream.seen)
    async with connection(p) as (reader, writer):
        writer.write(
            request_bytes(p, "GET", f"{BASE}/echo?n=1", cookie=cookie)
            + request_bytes(p, "GET", f"{BASE}/echo?n=2", cookie=cookie)
        )
        first = await read_response(reader)
        assert first.status == 200
        assert first.json()["path_qs"] == f"{BASE}/echo?n=1"
        assert first.headers["Connection"] == "close"
        assert await rest(reader) == b""  # no second response: the client retries
    delta = counts(p) - before
    assert delta.relayed + delta.handed_off == 1  # one answer, by one of the two
    assert [s.path_qs for s in upstream.seen[seen_before:]] == [f"{BASE}/echo?n=1"]
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?n=3", cookie=cookie))
        assert (await read_response(reader)).json()["path_qs"] == f"{BASE}/echo?n=3"


# 8. Malformed requests


MALFORMED = {
    "content-length and chunked": (
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "chunked and content-length": (
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
    ),
    "duplicate content-length": "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "transfer-encoding not ending in chunked": "Transfer-Encoding: gzip\r\n\r\n",
}


@pytest.mark.parametrize("pool", ["cold", "warm"])
@pytest.mark.parametrize("with_cookie", [False, True], ids=["no cookie", "member's cookie"])
@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_request_gets_400_and_never_reaches_upstream(
    express,  # type: ignore[no-untyped-def]
    kind: str,
    with_cookie: bool,
    pool: str,
) -> None:
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    if pool == "warm":
        async with connection(p) as (reader, writer):
            writer.write(request_bytes(p, "GET", f"{BASE}/echo?warm", cookie=cookie))
            assert (await read_response(reader)).status == 200
        assert len(idle_upstream(p)) == 1
    before, seen_before = counts(p), len(upstream.seen)
    cookie_line = f"Cookie: {COOKIE_NAME}={cookie}\r\n" if with_cookie else ""
    raw = (
        f"POST {BASE}/upload HTTP/1.1\r\nHost: 127.0.0.1:{p.server.port}\r\n"
        f"{cookie_line}{MALFORMED[kind]}"
    ).encode()
    async with connection(p) as (reader, writer):
        writer.write(raw)
        try:
            resp: Raw | None = await read_response(reader)
        except asyncio.IncompleteReadError:
            resp = None  # closed without an answer
        else:
            assert await rest(reader) == b""
    # A request that did go upstream is seen there before the next one is:
    # the probe's round trip orders the two.
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?probe", cookie=cookie))
        assert (await read_response(reader)).status == 200
    reached = [s.path_qs for s in upstream.seen[seen_before:]]
    status = resp.status if resp is not None else "closed without a response"
    assert (status, reached) == (400, [f"{BASE}/echo?probe"]), (
        f"answer: {status!r}; reached upstream: {reached!r}"
    )
    assert resp is not None
    assert_our_headers(p, resp.headers)  # aiohttp's own 400, made before any route
    assert counts(p) - before == Counts(1, 1, 1.0)  # the probe relayed, the 400 handed off


def assert_our_headers(p: ProxyUnderTest, headers: CIMultiDict[str]) -> None:
    assert "Server" not in headers
    assert headers.getall("Content-Security-Policy") == [
        f"frame-ancestors {p.settings.frame_ancestors}"
    ]
    assert headers.getall("X-Content-Type-Options") == ["nosniff"]
    assert headers.getall("Referrer-Policy") == ["no-referrer"]


async def test_a_request_only_aiohttp_refuses_gets_the_proxys_headers(express) -> None:  # type: ignore[no-untyped-def]
    # The lane parses this login and hands it off; aiohttp refuses its
    # 40000-byte header (its limit is serve.MAX_HEADER_FIELD, 32 KiB) before
    # any route runs.
    _, p = express
    raw = (
        f"GET {BASE}/_open?token=x HTTP/1.1\r\nHost: 127.0.0.1:{p.server.port}\r\n"
        f"X-Long: {'a' * 40_000}\r\n\r\n"
    ).encode()
    async with connection(p) as (reader, writer):
        writer.write(raw)
        resp = await read_response(reader)
        assert await rest(reader) == b""
    assert resp.status == 400
    assert_our_headers(p, resp.headers)


# 9. Upstream connections that close


async def test_upstream_connection_close_is_not_reused(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    async with await p.login(p.world.owner) as session:
        before = counts(p)
        async with session.get(p.url("/close")) as resp:
            assert resp.status == 200 and await resp.text() == "closing"
            assert "Connection" not in resp.headers  # upstream's close is hop-by-hop
        async with session.get(p.url("/echo")) as resp:
            assert resp.status == 200
        assert counts(p) - before == relayed(2)
        closed, echo = upstream.seen[-2:]
        assert closed.path_qs == f"{BASE}/close" and echo.path_qs == f"{BASE}/echo"
        assert closed.peer != echo.peer


async def test_idle_upstream_connection_closed_by_upstream_is_dropped_from_the_pool(
    express,
) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    async with await p.login(p.world.owner) as session:
        async with session.get(p.url("/echo?n=1")) as resp:
            assert resp.status == 200
        (pooled,) = idle_upstream(p)
        first_peer = upstream.seen[-1].peer
        upstream.transports[first_peer].close()  # upstream's keep-alive timeout
        for _ in range(500):
            if not pooled.usable:
                break
            await asyncio.sleep(0.01)
        assert not pooled.usable
        before = counts(p)
        async with session.get(p.url("/echo?n=2")) as resp:
            assert resp.status == 200
            assert (await resp.json())["path_qs"] == f"{BASE}/echo?n=2"
        assert counts(p) - before == relayed(1)
        assert upstream.seen[-1].peer != first_peer


async def test_small_request_on_a_connection_upstream_dropped_is_retried_by_aiohttp(
    express,
) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?n=1", cookie=cookie))
        assert (await read_response(reader)).status == 200
        upstream.drop_peer = upstream.seen[-1].peer  # closes when the next one comes
        before, errors = counts(p), upstream_errors()
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?n=2", cookie=cookie))
        resp = await read_response(reader)
        assert resp.status == 200
        assert resp.json()["path_qs"] == f"{BASE}/echo?n=2"
        assert resp.headers["Connection"] == "close"
        assert await rest(reader) == b""
    assert counts(p) - before == handed_off(1)
    assert upstream_errors() == errors  # retried, and answered: no error of the client's
    dropped, retried = upstream.seen[-2:]
    assert dropped.path_qs == retried.path_qs == f"{BASE}/echo?n=2"
    assert dropped.peer != retried.peer


async def test_a_retried_request_whose_retry_fails_too_counts_one_upstream_error(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?n=1", cookie=cookie))
        assert (await read_response(reader)).status == 200
        upstream.drop_peer = upstream.seen[-1].peer
        upstream.drop_next = 1  # the app's retry, on a new connection (a POST: only one)
        before, errors = counts(p), upstream_errors()
        refused = metrics.REQUESTS.labels("http", "upstream_error")._value.get()
        writer.write(request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=b"x=1"))
        assert (await read_response(reader)).status == 502
        assert await rest(reader) == b""
    assert counts(p) - before == handed_off(1)
    assert upstream_errors() == errors + 1
    assert metrics.REQUESTS.labels("http", "upstream_error")._value.get() == refused + 1
    assert [s.path_qs for s in upstream.seen[-2:]] == [f"{BASE}/upload"] * 2


async def test_large_request_on_a_connection_upstream_dropped_gets_502(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?n=1", cookie=cookie))
        assert (await read_response(reader)).status == 200
        upstream.drop_peer = upstream.seen[-1].peer
        before, seen_before, failures = counts(p), len(upstream.seen), upstream_errors()
        errors = metrics.REQUESTS.labels("http", "upstream_error")._value.get()
        body = os.urandom(1024 * 1024)  # far past what the lane keeps for a replay
        writer.write(request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=body))
        await writer.drain()
        resp = await read_response(reader)
        assert resp.status == 502
        assert "not reachable" in resp.body.decode()
        assert resp.headers["Connection"] == "close"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await rest(reader) == b""
    assert counts(p) - before == Counts(0, 0, 0.0)
    assert metrics.REQUESTS.labels("http", "upstream_error")._value.get() == errors + 1
    assert upstream_errors() == failures + 1
    assert [s.path_qs for s in upstream.seen[seen_before:]] == [f"{BASE}/upload"]


# 10. Upstream dying mid-body


@pytest.mark.parametrize("path", ["/die-length", "/die-chunked"])
async def test_upstream_dying_mid_body_gives_the_client_a_broken_body(express, path: str) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    async with await p.login(p.world.owner) as session:
        before = counts(p)
        async with session.get(p.url(path)) as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(resp.read(), TIMEOUT)
        assert counts(p) - before == Counts(0, 0, 0.0)  # the lane cut it; not relayed whole
        async with session.get(p.url("/echo")) as resp:
            assert resp.status == 200


# 11. Response headers


@pytest.mark.parametrize("path", ["/echo", "/chunked"])
async def test_security_headers_on_relayed_responses(express, path: str) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    async with await p.login(p.world.owner) as session:
        before = counts(p)
        async with session.get(p.url(path)) as resp:
            assert resp.status == 200
            await resp.read()
            headers = resp.headers
        assert counts(p) - before == relayed(1)
        ours = f"frame-ancestors {p.settings.frame_ancestors}"
        csp = headers.getall("Content-Security-Policy")
        assert sorted(csp) == sorted([ours, UPSTREAM_CSP] if path == "/echo" else [ours])
        assert headers.getall("X-Content-Type-Options") == ["nosniff"]
        assert headers.getall("Referrer-Policy") == ["no-referrer"]  # not upstream's
        assert "Server" not in headers
        assert "X-Powered-By" not in headers


# 12. Large bodies both ways


async def test_large_bodies_pass_through_intact(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    async with await p.login(p.world.owner) as session:
        before = counts(p)
        async with session.get(p.url("/big")) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Length"] == str(BIG)
            got = await asyncio.wait_for(resp.read(), TIMEOUT)
        assert len(got) == BIG
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(upstream.big).hexdigest()

        sent = os.urandom(BIG)
        async with session.post(p.url("/upload"), data=sent) as resp:
            assert resp.status == 200
            report = await resp.json()
        assert report["length"] == BIG
        assert report["sha256"] == hashlib.sha256(sent).hexdigest()
        assert report["content_length"] == str(BIG)
        assert counts(p) - before == relayed(2)


# Shutdown


async def test_shutdown_closes_idle_connections_and_lets_exchanges_finish(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    async with connection(p) as (idle_r, idle_w), connection(p) as (busy_r, busy_w):
        idle_w.write(request_bytes(p, "GET", f"{BASE}/echo", cookie=cookie))
        assert keeps_alive(await read_response(idle_r))
        busy_w.write(request_bytes(p, "GET", f"{BASE}/slow", cookie=cookie))
        await asyncio.wait_for(upstream.slow_started.wait(), TIMEOUT)

        closing = asyncio.create_task(p.server.close(grace_seconds=TIMEOUT))
        assert await rest(idle_r) == b""  # the idle connection is closed at once
        assert not closing.done()  # still waiting for the exchange in flight
        upstream.slow_release.set()
        finished = await read_response(busy_r)
        assert (finished.status, finished.body) == (200, b"finally")
        assert await rest(busy_r) == b""  # no keep-alive while shutting down
        await asyncio.wait_for(closing, TIMEOUT)


def heads_arriving(p: ProxyUnderTest) -> list[Any]:
    """The lane's connections with a request begun (in these tests: a head
    that never ends)."""
    return [c for c in p.server.lane.connections if not c.idle]


def open_connections(p: ProxyUnderTest) -> int:
    return sum(
        c.transport is not None and not c.transport.is_closing() for c in p.server.lane.connections
    )


async def test_quiet_connections_are_closed_idle_or_with_a_head_trickling_in(settings) -> None:  # type: ignore[no-untyped-def]
    """On the proxy's clock: a connection idle, or with a head begun, for
    longer than QUIET_SECONDS is closed by the next sweep (every
    QUIET_SECONDS / 5), which also closes upstream connections idle past
    MAX_IDLE_SECONDS."""
    clock = SteppingClock(datetime.now(UTC))
    async with express_proxy(settings, clock=clock) as (_, p):
        cookie = await p.cookie(p.world.owner)
        await clock.asleep_until(QUIET_SECONDS / 5)  # the sweep, started by the first connection
        async with connection(p) as (idle_r, idle_w), connection(p) as (slow_r, slow_w):
            idle_w.write(request_bytes(p, "GET", f"{BASE}/echo", cookie=cookie))
            assert keeps_alive(await read_response(idle_r))
            slow_w.write(b"GET " + BASE.encode() + b"/echo HTTP/1.1\r\nHost: x\r\n")  # never ends
            await eventually(lambda: len(heads_arriving(p)) == 1, "the head to begin")
            assert len(idle_upstream(p)) == 1

            clock.advance(QUIET_SECONDS)  # quiet for exactly QUIET_SECONDS: kept
            await clock.asleep_until(QUIET_SECONDS + QUIET_SECONDS / 5)  # (the sweep is done)
            assert open_connections(p) == 2
            assert idle_upstream(p) == []  # idle past MAX_IDLE_SECONDS

            clock.advance(QUIET_SECONDS / 5)  # the next sweep: quiet for longer
            assert await rest(idle_r) == b""
            assert await rest(slow_r) == b""


async def test_a_head_trickling_in_is_closed_however_often_a_byte_comes(settings) -> None:  # type: ignore[no-untyped-def]
    clock = SteppingClock(datetime.now(UTC))
    async with express_proxy(settings, clock=clock) as (_, p), connection(p) as (reader, writer):
        writer.write(f"GET {BASE}/echo HTTP/1.1\r\n".encode())
        await eventually(lambda: len(heads_arriving(p)) == 1, "the head to begin")
        (head,) = heads_arriving(p)
        while clock.monotonic() < QUIET_SECONDS + QUIET_SECONDS / 5:  # the first sweep past it
            writer.write(b"X")  # a byte every 5 s: never quiet for long
            await eventually(
                lambda: head._last_active == clock.monotonic(), "the byte to reach the lane"
            )
            clock.advance(5)
        assert await rest(reader) == b""  # closed: the head began QUIET_SECONDS + 15 s ago


# Known requests: bytes relayed before on the same connection skip parsing,
# never the access check


def known_requests(p: ProxyUnderTest) -> int:
    return p.server.lane.known_requests


async def test_a_repeated_request_is_relayed_as_known_with_the_same_upstream_form(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    request = request_bytes(p, "GET", f"{BASE}/echo?same=1", cookie=cookie)
    async with connection(p) as (reader, writer):
        before, seen_before = known_requests(p), len(upstream.seen)
        answers = []
        for _ in range(4):
            writer.write(request)
            answers.append(await read_response(reader))
        assert known_requests(p) - before == 3  # all but the first
        assert all(a.status == 200 and keeps_alive(a) for a in answers)
        assert all(a.headers["X-Content-Type-Options"] == "nosniff" for a in answers)
        assert all("Server" not in a.headers for a in answers)
        seen = upstream.seen[seen_before:]
        assert len(seen) == 4  # each one reached upstream
        first = dict(seen[0].headers)
        for later in seen[1:]:
            assert later.path_qs == f"{BASE}/echo?same=1"
            assert dict(later.headers) == first
        assert first["Authorization"] == f"Bearer {TOKEN}"
        assert "Cookie" not in first  # neither ours nor the browser's others


async def test_a_request_with_a_body_is_never_relayed_as_known(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    cookie = await p.cookie(p.world.owner)
    request = request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=b"a=1")
    async with connection(p) as (reader, writer):
        before = known_requests(p)
        for _ in range(3):
            writer.write(request)
            answer = await read_response(reader)
            assert answer.status == 200 and answer.json()["body"] == "a=1"
        assert known_requests(p) == before


@contextlib.asynccontextmanager
async def known_request(
    p: ProxyUnderTest, member: str
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]]:
    """A connection on which `member`'s GET was relayed twice, the second
    time as a known request; yields it with those request bytes."""
    cookie = await p.cookie(member)
    request = request_bytes(p, "GET", f"{BASE}/echo", cookie=cookie)
    async with connection(p) as (reader, writer):
        before = known_requests(p)
        for _ in range(2):
            writer.write(request)
            assert (await read_response(reader)).status == 200
        assert known_requests(p) - before == 1
        yield reader, writer, request


async def test_removing_access_closes_a_kept_alive_connection_between_requests(express) -> None:  # type: ignore[no-untyped-def]
    """Closed, but not counted as revoked: no exchange was cut (as on the
    app's path, which counts only requests in flight)."""
    upstream, p = express
    await wait_listening(p)
    async with known_request(p, p.world.editor) as (reader, writer, request):
        seen_before = len(upstream.seen)
        revoked = metrics.REVOKED.labels("access")._value.get()
        sql(
            p.settings.database_url,
            "delete from team_memberships where member_id = %s",
            (p.world.editor,),
        )
        assert await rest(reader) == b""  # closed by the proxy, idle as it was
        assert len(upstream.seen) == seen_before
        assert metrics.REVOKED.labels("access")._value.get() == revoked


async def test_removing_access_counts_a_relayed_request_awaiting_its_answer(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    await wait_listening(p)
    cookie = await p.cookie(p.world.editor)
    async with connection(p) as (reader, writer):
        before = counts(p)
        writer.write(request_bytes(p, "GET", f"{BASE}/echo", cookie=cookie))
        assert (await read_response(reader)).status == 200  # registered from here on
        writer.write(request_bytes(p, "GET", f"{BASE}/slow", cookie=cookie))
        await asyncio.wait_for(upstream.slow_started.wait(), TIMEOUT)
        revoked = metrics.REVOKED.labels("access")._value.get()
        sql(
            p.settings.database_url,
            "delete from team_memberships where member_id = %s",
            (p.world.editor,),
        )
        assert await rest(reader) == b""  # cut, no answer
        assert metrics.REVOKED.labels("access")._value.get() == revoked + 1
        assert counts(p) - before == relayed(1)  # the lane's (the first) alone
    upstream.slow_release.set()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ("delete from team_memberships where member_id = 'EDITOR1'", 403),
        # a stop whose save window (for open editors) is over
        (
            f"update notebooks set status = 'stopping', {PAST_STOP} where id = '{NB}'",
            503,
        ),
    ],
)
async def test_a_known_request_is_judged_again_when_its_access_changed(
    unnotified,  # type: ignore[no-untyped-def]
    change: str,
    status: int,
) -> None:
    upstream, p = unnotified
    assert p.world.editor == "EDITOR1"
    async with known_request(p, p.world.editor) as (reader, writer, request):
        seen_before, known_before = len(upstream.seen), known_requests(p)
        sql(p.settings.database_url, change)
        p.server.lane.cache.invalidate(f"notebook:{NB}")  # what the NOTIFY does first
        writer.write(request)
        assert (await read_response(reader)).status == status
        assert len(upstream.seen) == seen_before
        assert known_requests(p) == known_before


async def test_a_known_request_is_refused_once_the_session_expires(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    async with known_request(p, p.world.owner) as (reader, writer, request):
        seen_before = len(upstream.seen)
        p.clock.advance(LOGIN_LIFETIME.total_seconds() + 1)
        writer.write(request)
        refused = await read_response(reader)
        assert refused.status == 401
        assert len(upstream.seen) == seen_before


async def test_a_known_request_is_refused_once_the_api_token_expires(express) -> None:  # type: ignore[no-untyped-def]
    """The console's API tokens expire (12 h): what one opened ends with it,
    even on a kept-alive connection whose request the lane knows."""
    upstream, p = express
    sql(
        p.settings.database_url,
        "update api_tokens set expires_at = %s where id = 'TOWNER1'",
        (p.clock.now() + timedelta(seconds=60),),
    )
    async with known_request(p, p.world.owner) as (reader, writer, request):
        seen_before = len(upstream.seen)
        p.clock.advance(61)
        writer.write(request)
        refused = await read_response(reader)
        assert refused.status == 401
        assert len(upstream.seen) == seen_before


async def test_a_known_request_survives_its_access_being_looked_up_again(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    cookie = await p.cookie(p.world.owner)
    request = request_bytes(p, "GET", f"{BASE}/echo", cookie=cookie)
    async with connection(p) as (reader, writer):
        writer.write(request)
        assert (await read_response(reader)).status == 200
        p.server.lane.cache.invalidate("*")  # as after the cache's TTL
        async with connection(p) as (other_r, other_w):  # looks the same access up again
            other_w.write(request_bytes(p, "GET", f"{BASE}/echo?other", cookie=cookie))
            assert (await read_response(other_r)).status == 200
        before = known_requests(p)
        writer.write(request)
        assert (await read_response(reader)).status == 200
        assert known_requests(p) - before == 1


async def test_known_requests_are_bounded_per_connection_oldest_forgotten_first(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    cookie = await p.cookie(p.world.owner)
    requests = [
        request_bytes(p, "GET", f"{BASE}/echo?n={i}", cookie=cookie)
        for i in range(MAX_KNOWN_REQUESTS + 1)
    ]
    async with connection(p) as (reader, writer):
        for request in requests:  # the first is forgotten when the last is remembered
            writer.write(request)
            assert (await read_response(reader)).status == 200
        before = known_requests(p)
        writer.write(requests[0])
        assert (await read_response(reader)).status == 200
        assert known_requests(p) == before  # parsed and judged again
        writer.write(requests[-1])
        assert (await read_response(reader)).status == 200
        assert known_requests(p) == before + 1


# Known response heads: a repeated head is relayed by its Content-Length


class Canned:
    """An upstream that answers each request with the next script: bytes to
    write, events to wait for, or CLOSE."""

    CLOSE = object()

    def __init__(self) -> None:
        self.scripts: list[list[Any]] = []
        self.connections = 0
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")  # bodiless requests only
                self.requests += 1
                for step in self.scripts.pop(0):
                    if step is Canned.CLOSE:
                        writer.close()
                        return
                    if isinstance(step, asyncio.Event):
                        await asyncio.wait_for(step.wait(), TIMEOUT)
                    else:
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


CANNED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: canned/1.0\r\nX-Canned: yes\r\n\r\n"


@pytest.fixture
async def canned(settings: Settings) -> AsyncIterator[tuple[Canned, ProxyUnderTest]]:
    upstream = Canned()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with proxy_in_front(settings, f"http://127.0.0.1:{port}", TOKEN, NB) as p:
            yield upstream, p
    finally:
        server.close()
        await server.wait_closed()


def known_responses(p: ProxyUnderTest) -> int:
    return p.server.lane.known_responses


async def test_a_repeated_response_head_is_relayed_as_known(canned) -> None:  # type: ignore[no-untyped-def]
    upstream, p = canned
    cookie = await p.cookie(p.world.owner)
    upstream.scripts = [
        [CANNED_HEAD + b"hello"],
        [CANNED_HEAD + b"world"],
        [CANNED_HEAD + b"again"],
    ]
    async with connection(p) as (reader, writer):
        before = known_responses(p)
        bodies = []
        for i in range(3):
            writer.write(request_bytes(p, "GET", f"{BASE}/r{i}", cookie=cookie))
            answer = await read_response(reader)
            assert answer.status == 200 and keeps_alive(answer)
            assert answer.headers["X-Canned"] == "yes" and "Server" not in answer.headers
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            bodies.append(answer.body)
        assert bodies == [b"hello", b"world", b"again"]
        assert known_responses(p) - before == 2
    assert upstream.connections == 1  # kept alive throughout


@contextlib.asynccontextmanager
async def known_head_held(
    p: ProxyUnderTest, upstream: Canned, rest_of_body: Any
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A response relayed by llhttp, then one with the same head whose body
    stops after two bytes until the head has reached the client; upstream
    then goes on with `rest_of_body` (bytes, or Canned.CLOSE)."""
    cookie = await p.cookie(p.world.owner)
    release = asyncio.Event()
    upstream.scripts = [[CANNED_HEAD + b"hello"], [CANNED_HEAD + b"he", release, rest_of_body]]
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/a", cookie=cookie))
        assert (await read_response(reader)).body == b"hello"
        before = known_responses(p)
        writer.write(request_bytes(p, "GET", f"{BASE}/b", cookie=cookie))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"X-Canned: yes" in head
        assert known_responses(p) - before == 1
        release.set()
        yield reader, writer


@pytest.mark.parametrize(
    ("rest_of_body", "upstream_connections"),
    [(b"llo", 1), (b"lloJUNK", 2)],  # bytes past the body: that connection is not reused
    ids=["exact", "too long"],
)
async def test_a_known_head_streams_before_its_body_and_the_body_is_counted(
    canned,  # type: ignore[no-untyped-def]
    rest_of_body: bytes,
    upstream_connections: int,
) -> None:
    upstream, p = canned
    async with known_head_held(p, upstream, rest_of_body) as (reader, writer):
        assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"hello"
        upstream.scripts.append([CANNED_HEAD + b"third"])
        cookie = await p.cookie(p.world.owner)
        writer.write(request_bytes(p, "GET", f"{BASE}/c", cookie=cookie))
        assert (await read_response(reader)).body == b"third"  # nothing in front
    assert upstream.connections == upstream_connections


async def test_upstream_dying_mid_known_body_breaks_the_client_response(canned) -> None:  # type: ignore[no-untyped-def]
    upstream, p = canned
    async with known_head_held(p, upstream, Canned.CLOSE) as (reader, _):
        assert await rest(reader) == b"he"  # then the proxy closes: a short body


# Metrics: the lane's tally reaches Prometheus when scraped


def scraped(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not in the scrape")


PROXIED = 'notebooks_proxy_requests_total{kind="http",outcome="proxied"}'
TO_CLIENT = 'notebooks_proxy_bytes_total{direction="to_client",kind="http"}'
TO_UPSTREAM = 'notebooks_proxy_bytes_total{direction="to_upstream",kind="http"}'
UPSTREAM_TIMED = "notebooks_proxy_upstream_response_seconds_count"


async def test_lane_requests_and_bytes_are_in_the_scrape(canned) -> None:  # type: ignore[no-untyped-def]
    upstream, p = canned
    cookie = await p.cookie(p.world.owner)
    samples = (PROXIED, TO_CLIENT, TO_UPSTREAM, UPSTREAM_TIMED)

    async def scrape() -> dict[str, float]:
        async with p.client() as client, client.get(p.metrics_url) as resp:
            text = await resp.text()
        return {sample: scraped(text, sample) for sample in samples}

    before = await scrape()
    upstream.scripts = [[CANNED_HEAD + b"hello"]] * 3
    async with connection(p) as (reader, writer):
        request = request_bytes(p, "GET", f"{BASE}/same", cookie=cookie)
        for _ in range(3):  # parsed, then known twice
            writer.write(request)
            assert (await read_response(reader)).body == b"hello"
    after = await scrape()
    assert after[PROXIED] - before[PROXIED] == 3
    assert after[TO_CLIENT] - before[TO_CLIENT] == 15
    assert after[UPSTREAM_TIMED] - before[UPSTREAM_TIMED] == 3
    assert after[TO_UPSTREAM] == before[TO_UPSTREAM]  # bodiless
    assert p.server.lane.known_requests >= 2


async def to_upstream(p: ProxyUnderTest) -> float:
    """HTTP body bytes sent to Marimo, as a scrape reads them (the lane's tally added)."""
    async with p.client() as client, client.get(p.metrics_url) as resp:
        return scraped(await resp.text(), TO_UPSTREAM)


async def test_lane_request_bodies_are_in_the_scrape(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    before = await to_upstream(p)
    async with (
        await p.login(p.world.owner) as session,
        session.post(p.url("/upload"), data=b"x" * 1000) as resp,
    ):
        assert (await resp.json())["length"] == 1000
    assert await to_upstream(p) - before == 1000


UPLOAD = b"u" * 10240


async def test_a_body_refused_while_its_access_is_looked_up_is_not_counted(unnotified) -> None:  # type: ignore[no-untyped-def]
    """The lane reads a body in while it awaits the access lookup; the
    notebook just stopped, the request is handed off and refused (503):
    nothing of it went upstream."""
    upstream, p = unnotified
    cookie = await p.cookie(p.world.owner)
    sql(
        p.settings.database_url,
        f"update notebooks set status = 'stopping', {PAST_STOP} where id = '{NB}'",
    )
    before, seen_before = await to_upstream(p), len(upstream.seen)
    unavailable = metrics.REQUESTS.labels("http", "unavailable")._value.get()
    for _ in range(3):
        p.server.lane.cache.invalidate(f"notebook:{NB}")  # a lookup each time
        async with connection(p) as (reader, writer):
            writer.write(request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=UPLOAD))
            assert (await read_response(reader)).status == 503
    assert metrics.REQUESTS.labels("http", "unavailable")._value.get() == unavailable + 3
    assert len(upstream.seen) == seen_before
    assert await to_upstream(p) == before


async def test_a_body_for_an_unreachable_marimo_is_not_counted(settings: Settings) -> None:
    async with proxy_in_front(settings, f"http://127.0.0.1:{free_port()}", TOKEN, NB) as p:
        cookie = await p.cookie(p.world.owner)
        before = await to_upstream(p)
        connect = metrics.UPSTREAM_ERRORS_TOTAL.labels("connect")._value.get()
        async with connection(p) as (reader, writer):
            writer.write(request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=UPLOAD))
            assert (await read_response(reader)).status == 502
        assert metrics.UPSTREAM_ERRORS_TOTAL.labels("connect")._value.get() == connect + 1
        assert await to_upstream(p) == before


async def test_a_body_handed_off_after_the_lane_could_not_connect_is_counted_once(  # type: ignore[no-untyped-def]
    express, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane holds the body while it connects; the connect fails, the app
    connects on its own and sends the body: counted by the app alone."""
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    assert not idle_upstream(p)  # so the lane connects

    async def refused(_: Any) -> Any:
        raise ConnectionRefusedError

    monkeypatch.setattr(p.server.lane.pool, "connect", refused)
    before, handoffs = await to_upstream(p), counts(p)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=UPLOAD))
        resp = await read_response(reader)
        assert resp.status == 200 and resp.json()["length"] == len(UPLOAD)
    assert counts(p) - handoffs == handed_off(1)
    assert await to_upstream(p) - before == len(UPLOAD)


async def test_a_body_replayed_after_its_pooled_connection_died_is_counted_once(express) -> None:  # type: ignore[no-untyped-def]
    """The lane sent the body on a kept-alive connection that closed before
    answering; the app sends it again on a new one: one body's bytes."""
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/echo", cookie=cookie))
        assert (await read_response(reader)).status == 200
        upstream.drop_peer = upstream.seen[-1].peer
        before, handoffs = await to_upstream(p), counts(p)
        writer.write(request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=UPLOAD))
        resp = await read_response(reader)
        assert resp.status == 200 and resp.json()["length"] == len(UPLOAD)
    assert counts(p) - handoffs == handed_off(1)
    assert [s.path_qs for s in upstream.seen[-2:]] == [f"{BASE}/upload"] * 2
    assert await to_upstream(p) - before == len(UPLOAD)


async def test_a_body_past_the_replay_limit_the_lane_relays_is_counted_once(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    size = 4 * MAX_REPLAY  # counted as it goes once it can no longer be handed off
    body = os.urandom(size)
    before, handoffs, seen_before = await to_upstream(p), counts(p), len(upstream.seen)
    async with connection(p) as (reader, writer):
        # The head alone first: with this body in the same read it would be
        # past MAX_HEAD, and handed off.
        head = request_bytes(p, "POST", f"{BASE}/upload", cookie=cookie, body=body)[:-size]
        writer.write(head)
        await eventually(lambda: len(upstream.seen) > seen_before, "the head upstream")
        writer.write(body)
        resp = await read_response(reader)
        assert resp.status == 200 and resp.json()["length"] == size
    assert counts(p) - handoffs == relayed(1)
    assert await to_upstream(p) - before == size


# Framing: no request or response is ever read two ways (request smuggling)


async def test_content_length_named_in_connection_cannot_smuggle_a_request(express) -> None:  # type: ignore[no-untyped-def]
    """A viewer's allowed GET whose body is a whole request Marimo would run,
    with `Connection: Content-Length`: the body stays the GET's body
    upstream, never a request of its own past the view policy."""
    upstream, p = express
    cookie = await p.cookie(p.world.viewer, "view")
    smuggled = f"POST {BASE}/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nrun".encode()
    request = request_bytes(
        p,
        "GET",
        f"{BASE}/echo",
        cookie=cookie,
        headers=(("Connection", "keep-alive, Content-Length"),),
        body=smuggled,
    )
    async with connection(p) as (reader, writer):
        seen_before = len(upstream.seen)
        writer.write(request)
        answer = await read_response(reader)
        assert answer.status == 200
        assert answer.json()["headers"]["content-length"] == str(len(smuggled))
        writer.write(request_bytes(p, "GET", f"{BASE}/echo?after", cookie=cookie))
        assert (await read_response(reader)).json()["path_qs"] == f"{BASE}/echo?after"
    assert [(s.method, s.path_qs) for s in upstream.seen[seen_before:]] == [
        ("GET", f"{BASE}/echo"),
        ("GET", f"{BASE}/echo?after"),
    ]


async def test_an_upstream_content_length_named_in_connection_still_frames_the_answer(
    canned,
) -> None:  # type: ignore[no-untyped-def]
    upstream, p = canned
    cookie = await p.cookie(p.world.owner)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, Content-Length\r\n\r\n"
    upstream.scripts = [[head + b"hello"], [CANNED_HEAD + b"again"]]
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/a", cookie=cookie))
        answer = await read_response(reader)
        assert answer.headers["Content-Length"] == "5" and answer.body == b"hello"
        writer.write(request_bytes(p, "GET", f"{BASE}/b", cookie=cookie))
        assert (await read_response(reader)).body == b"again"


async def test_an_upstream_connection_that_sends_an_unasked_response_is_not_reused(canned) -> None:  # type: ignore[no-untyped-def]
    """Bytes past a response are a response nobody asked for: kept, they
    would answer the next member's request."""
    upstream, p = canned
    cookie = await p.cookie(p.world.owner)
    unasked = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    upstream.scripts = [[CANNED_HEAD + b"hello" + unasked], [CANNED_HEAD + b"right"]]
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", f"{BASE}/a", cookie=cookie))
        assert (await read_response(reader)).body == b"hello"
        writer.write(request_bytes(p, "GET", f"{BASE}/b", cookie=cookie))
        assert (await read_response(reader)).body == b"right"
    assert upstream.connections == 2


async def test_request_trailers_never_reach_upstream_as_headers(express) -> None:  # type: ignore[no-untyped-def]
    """A chunked body's trailer on a request whose access was not cached
    (its upstream head is built after the body was parsed)."""
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    p.server.lane.cache.invalidate("*")  # the access is looked up after the body arrived
    head = request_bytes(
        p, "POST", f"{BASE}/upload", cookie=cookie, headers=(("Transfer-Encoding", "chunked"),)
    )
    async with connection(p) as (reader, writer):
        writer.write(head + b"3\r\nabc\r\n0\r\nX-Trailer: sneaked\r\n\r\n")
        answer = await read_response(reader)
        assert answer.status == 200 and answer.json()["body"] == "abc"
    assert "X-Trailer" not in upstream.seen[-1].headers


async def test_a_known_http10_request_is_answered_as_http10(canned) -> None:  # type: ignore[no-untyped-def]
    """A remembered HTTP/1.0 request repeated after an HTTP/1.1 one: an answer
    without a length is delimited by the close, never chunked at it."""
    upstream, p = canned
    cookie = await p.cookie(p.world.owner)
    old = request_bytes(
        p,
        "GET",
        f"{BASE}/old",
        cookie=cookie,
        version="1.0",
        headers=(("Connection", "keep-alive"),),
    )
    no_length = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthird\r\n0\r\n\r\n"
    upstream.scripts = [[CANNED_HEAD + b"first"], [CANNED_HEAD + b"newer"], [no_length]]
    async with connection(p) as (reader, writer):
        writer.write(old)
        assert (await read_response(reader)).body == b"first"
        writer.write(request_bytes(p, "GET", f"{BASE}/new", cookie=cookie))
        assert (await read_response(reader)).body == b"newer"
        before = known_requests(p)
        writer.write(old)
        answer = await read_response(reader)
        assert known_requests(p) - before == 1
        assert "Transfer-Encoding" not in answer.headers and answer.body == b"third"


async def test_an_absolute_form_request_is_refused_and_never_reaches_upstream(express) -> None:  # type: ignore[no-untyped-def]
    upstream, p = express
    cookie = await p.cookie(p.world.owner)
    target = f"http://127.0.0.1:{p.server.port}{BASE}/echo"
    seen_before = len(upstream.seen)
    async with connection(p) as (reader, writer):
        writer.write(request_bytes(p, "GET", target, cookie=cookie))
        assert (await read_response(reader)).status == 400
    assert len(upstream.seen) == seen_before


async def test_a_request_head_past_64_kib_closes_the_connection(express) -> None:  # type: ignore[no-untyped-def]
    _, p = express
    async with connection(p) as (reader, writer):
        writer.write(f"GET {BASE}/echo HTTP/1.1\r\nX-Big: ".encode() + b"a" * (65 * 1024))
        assert await rest(reader) == b""  # never finished, never answered: closed


async def test_revoking_access_before_the_answer_of_a_handed_off_request_sends_none_of_it(
    express,  # type: ignore[no-untyped-def]
) -> None:
    upstream, p = express
    await wait_listening(p)
    cookie = await p.cookie(p.world.editor)
    # HEAD is handed off to the app, whose forward_http waits for the answer
    # (a streamed one, whose head the app would send at once).
    request = request_bytes(p, "HEAD", f"{BASE}/slow-stream", cookie=cookie)
    async with connection(p) as (reader, writer):
        writer.write(request)
        await asyncio.wait_for(upstream.slow_started.wait(), TIMEOUT)
        revoked = metrics.REVOKED.labels("access")._value.get()
        sql(
            p.settings.database_url,
            "delete from team_memberships where member_id = %s",
            (p.world.editor,),
        )
        for _ in range(int(TIMEOUT / 0.05)):
            if metrics.REVOKED.labels("access")._value.get() > revoked:
                break
            await asyncio.sleep(0.05)
        assert await rest(reader) == b""  # closed, no answer
        # Without waiting for Marimo's answer: the upstream request is dropped.
        await asyncio.wait_for(upstream.slow_dropped.wait(), TIMEOUT)


@pytest.mark.parametrize("mode", ["edit", "view"])
async def test_marimo_only_query_keys_never_reach_upstream_even_in_known_requests(
    express,  # type: ignore[no-untyped-def]
    mode: str,
) -> None:
    """`file` (Marimo's edit mode opens whatever path it names) and
    `access_token` are cut from what the lane relays, and a viewer's
    `X-Notebook-Id` (the notebook whose `public/` Marimo serves); the known
    request's remembered upstream form is the rewritten one."""
    upstream, p = express
    member = p.world.owner if mode == "edit" else p.world.viewer
    cookie = await p.cookie(member, mode)
    target = f"{BASE}/echo?file=%2Fother%2Fsecret_nb.py&x=1&fil%65=%2Fo.py&access_token=t"
    notebook_id = ("X-Notebook-Id", "%2Fother%2Fsecret_nb.py")
    request = request_bytes(p, "GET", target, cookie=cookie, headers=(notebook_id,))
    async with connection(p) as (reader, writer):
        before, seen_before = known_requests(p), len(upstream.seen)
        for _ in range(2):
            writer.write(request)
            assert (await read_response(reader)).status == 200
        assert known_requests(p) - before == 1  # the second one as known
    seen = upstream.seen[seen_before:]
    assert [s.path_qs for s in seen] == [f"{BASE}/echo?x=1"] * 2
    kept = [s.headers.get("X-Notebook-Id") for s in seen]
    assert kept == ([notebook_id[1]] * 2 if mode == "edit" else [None, None])
