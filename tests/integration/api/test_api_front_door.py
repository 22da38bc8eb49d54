"""The API's front door (`api.app.start`, what `main` serves through): every
answer carries the API's security headers and no `Server` banner, aiohttp's
own answer to a request it cannot parse included, which is problem+json and
does not quote the request's bytes back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

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
