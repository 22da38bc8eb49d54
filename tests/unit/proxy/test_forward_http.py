"""The app's HTTP forwarding: an upstream answer it does not relay is closed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from common.clock import FakeClock
from proxy.access import Target
from proxy.cookie import ProxySession
from proxy.forward import Proxy, forward_http


class _Answer:
    """Marimo's answer, as far as the handler's cleanup touches it."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    def close(self) -> None:
        self.closed.set()


class _Client:
    """An upstream whose answer comes when the test says so."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.answer_now = asyncio.Event()
        self.answer = _Answer()

    async def request(self, *_: Any, **__: Any) -> _Answer:
        self.asked.set()
        await self.answer_now.wait()
        return self.answer


async def test_an_answer_that_comes_as_the_handler_is_cancelled_is_closed() -> None:
    """The browser leaves (aiohttp cancels the handler) in the same loop turn
    as Marimo's answer completes: nobody relays it, and it is closed at once
    rather than left to the garbage collector with its connection."""
    client = _Client()
    # What of the settings forwarding reads (X-Forwarded-Proto's scheme).
    settings = SimpleNamespace(proxy_public_url="http://127.0.0.1:8081", proxy_notebook_url="")
    proxy = Proxy(settings=settings, clock=FakeClock(), client=client)  # type: ignore[arg-type]
    transport = mock.Mock()
    transport.get_extra_info.return_value = ("127.0.0.1", 50000)
    request = make_mocked_request("GET", "/notebooks/NB1/x", transport=transport)
    session = ProxySession("M1", "TM1", "NB1", "S1", "edit", 2**40)
    target = Target("NB1", "running", "S1", "tok", "http://127.0.0.1:1", True, True)
    handler = asyncio.ensure_future(forward_http(proxy, request, session, target))
    await asyncio.wait_for(client.asked.wait(), 5)  # fails, never hangs, if forwarding raised
    # Both wake-ups queue in this order: the request completes first, then
    # the handler sees its cancellation, with the answer already in.
    client.answer_now.set()
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    await asyncio.wait_for(client.answer.closed.wait(), 5)
    assert len(proxy.registry) == 0
