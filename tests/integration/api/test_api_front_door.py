"""The API's front door (`api.app.start`, what `main` serves through): every
answer carries the API's security headers and no `Server` banner, aiohttp's
own answer to a request it cannot parse included, which is problem+json and
does not quote the request's bytes back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
import structlog
from structlog.testing import capture_logs

import api.app
from api import metrics
from api.app import create_app, start
from common.clock import FakeClock
from common.settings import Settings


@pytest.fixture
async def port(settings: Settings, clock: FakeClock) -> AsyncIterator[int]:
    runner, server = await start(create_app(settings, clock=clock), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await runner.cleanup()


async def exchange(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """The status line, headers (lower-cased names) and body of one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        return status, headers, body
    finally:
        writer.close()


def assert_secured(headers: dict[str, str]) -> None:
    assert "server" not in headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


async def test_a_routed_answer_has_no_banner(port: int) -> None:
    status, headers, body = await exchange(
        port, b"GET /api/v1/me HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"
    )
    assert status.startswith("HTTP/1.1 401")
    assert_secured(headers)
    assert json.loads(body)["code"] == "unauthorized"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /<script>\x01 HTTP/1.1\r\nHost: api\r\n\r\n",  # a control byte in the target
        b"GET /api/v1/me HTTP/1.1\r\nHost: api\r\n<script>alert(1)</script>\r\n\r\n",  # no colon
        b"GET /api/v1/me HTTP/1.1\r\nHost: api\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    ],
    ids=["request-line", "header-line", "header-too-long"],
)
async def test_an_unparseable_request_gets_a_problem_without_banner(
    port: int, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    status, headers, body = await exchange(port, raw)
    assert status.split(" ")[1] == "400"  # HTTP/1.0: aiohttp never read the version
    assert_secured(headers)
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == "malformed_request" and problem["status"] == 400
    assert b"script" not in body
    # One line, the client's fault: no error with a traceback per connection.
    assert [r.levelname for r in caplog.records if r.name == "aiohttp.server"] == ["INFO"]
    assert not any(r.exc_info for r in caplog.records)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until `condition()` holds (polled), failing with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def requests_counted(route: str, method: str, status: str) -> float:
    return metrics.REQUESTS.labels(route, method, status)._value.get()


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 100\r\n\r\n{}", b"Transfer-Encoding: chunked\r\n\r\n64\r\n{}"],
    ids=["content-length", "chunked"],
)
async def test_a_client_gone_mid_body_is_one_info_line_not_a_500(
    port: int, framing: bytes, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token is needed to get that far (the body is read first): a hang-up
    is not a fault of ours, so no traceback and no 500 counted."""
    caplog.set_level(logging.INFO)
    route = "/api/v1/teams"
    errors_before = requests_counted(route, "POST", "500")
    gone_before = requests_counted(route, "POST", "499")
    with capture_logs() as logs:
        monkeypatch.setattr(api.app, "log", structlog.get_logger("api"))
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/teams HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer nbk_anything\r\n"
            b"Content-Type: application/json\r\n" + framing
        )
        await writer.drain()
        writer.close()
        await until(lambda: any(e["event"] == "request" for e in logs), "the request's line")
    assert [(e["event"], e["log_level"]) for e in logs] == [("request", "info")]
    assert logs[0]["status"] == 499 and logs[0]["code"] == "client_closed_request"
    assert requests_counted(route, "POST", "499") == gone_before + 1
    assert requests_counted(route, "POST", "500") == errors_before
    assert not [r for r in caplog.records if r.levelno > logging.INFO or r.exc_info]


@pytest.mark.parametrize("path", ["/nonexistent", "/api/v1/teams"])
async def test_a_body_that_does_not_decode_is_one_info_line_where_no_route_reads_it(
    port: int, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp drains the body no handler read after the answer, and meets the
    bad gzip there: the client's fault, as an unparseable request is."""
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    status, _, _ = await exchange(
        port,
        f"POST {path} HTTP/1.1\r\nHost: api\r\nContent-Encoding: gzip\r\n".encode()
        + b"Content-Length: 2\r\n\r\nxx",
    )
    assert status.split(" ")[1] in ("401", "404")
    await until(lambda: caplog.records, "aiohttp's line")
    assert [r.levelname for r in caplog.records if r.name == "aiohttp.server"] == ["INFO"]
    assert not any(r.exc_info for r in caplog.records)
