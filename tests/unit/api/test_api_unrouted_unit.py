"""How the front door (common.unrouted, shared with the proxy) logs what
aiohttp hands it: what a client did is one info line, anything else stays
an error with its traceback."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from aiohttp import web

from common import unrouted


async def levels_logged(
    exc: BaseException, caplog: pytest.LogCaptureFixture, *, connected: bool
) -> list[tuple[str, bool]]:
    server = web.Server(lambda request: web.Response())
    handler = unrouted.handlers(server, lambda answer: None)()
    if connected:
        handler.connection_made(mock.Mock())
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    try:
        handler.log_exception("Unhandled exception", exc_info=exc)
    finally:
        if connected:
            handler.connection_lost(None)
    return [(r.levelname, bool(r.exc_info)) for r in caplog.records]


async def test_a_connection_error_once_the_client_left_is_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await levels_logged(ConnectionResetError(), caplog, connected=False) == [("INFO", False)]


async def test_a_connection_error_while_the_client_is_there_stays_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler's own connection failing (the proxy's to its upstream)."""
    assert await levels_logged(ConnectionResetError(), caplog, connected=True) == [("ERROR", True)]


async def test_a_body_that_does_not_decode_is_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exc = web.RequestPayloadError("Can not decode content-encoding: gzip")
    assert await levels_logged(exc, caplog, connected=True) == [("INFO", False)]
