"""Bytes a client may send that are not UTF-8: the proxy answers them as it
answers any request it cannot admit, never with a 500. aiohttp hands header
bytes it cannot decode on as surrogate characters, which fail when encoded
again (the cookie's HMAC did that)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from proxy_helpers import ProxyUnderTest, aiohttp_upstream, proxy_in_front

from common.settings import Settings
from proxy.cookie import COOKIE_NAME

NB = "NBBADBYTES1"


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[ProxyUnderTest]:
    async def never(_: web.Request) -> web.Response:
        raise AssertionError("nothing unadmitted reaches Marimo")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never)
    async with aiohttp_upstream(app) as url, proxy_in_front(settings, url, "tok", NB) as p:
        yield p


async def status_of(p: ProxyUnderTest, head: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", p.server.port)
    try:
        writer.write(head)
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split(b" ", 2)[1])
    finally:
        writer.close()


def request(p: ProxyUnderTest, method: str, cookie: bytes | None, *extra: bytes) -> bytes:
    lines = [
        f"{method} /notebooks/{NB}/ HTTP/1.1".encode(),
        f"Host: 127.0.0.1:{p.server.port}".encode(),
        *extra,
    ]
    if cookie is not None:
        lines.append(b"Cookie: " + COOKIE_NAME.encode() + b"=" + cookie)
    return b"\r\n".join(lines) + b"\r\n\r\n"


WEBSOCKET = (
    b"Connection: Upgrade",
    b"Upgrade: websocket",
    b"Sec-WebSocket-Version: 13",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
)


@pytest.mark.parametrize(
    ("method", "extra"),
    [("GET", ()), ("HEAD", ()), ("GET", WEBSOCKET)],
    ids=["get", "head", "websocket"],
)
async def test_a_cookie_that_is_not_utf8_is_refused_like_no_cookie(
    proxy: ProxyUnderTest, method: str, extra: tuple[bytes, ...]
) -> None:
    without = await status_of(proxy, request(proxy, method, None, *extra))
    assert without in (401, 403)
    for garbled in (b"\xff.x", b"\xc3\x28.\xa0\xa1", b"e30.\xff\xfe"):
        assert await status_of(proxy, request(proxy, method, garbled, *extra)) == without
