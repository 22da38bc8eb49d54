"""aiohttp's own answers, finished like the app's.

aiohttp answers a request it cannot parse (a bad request line, a header over
its size limits, a broken chunk) with a 400 of its own, made before any route
matched, so the app's response hook never runs on it: it would go out with
aiohttp's `Server` banner and without the app's security headers. A server
made through `handlers()` hands such answers to the app's `finish` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

# Sets the app's headers on an answer once aiohttp has set its own.
Finish = Callable[[web.StreamResponse], None]
# The app's form of aiohttp's plain-text answer (e.g. problem+json).
Restate = Callable[[web.Response], web.Response]


class _UnroutedAnswer(web.Response):
    """An answer no route made, finished like the app's own."""

    def __init__(self, plain: web.Response, finish: Finish) -> None:
        super().__init__(status=plain.status, body=plain.body, content_type=plain.content_type)
        self._finish = finish

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()  # aiohttp's defaults, `Server` among them
        self._finish(self)


class _Handler(RequestHandler):
    def __init__(
        self, manager: web.Server, *, finish: Finish, restate: Restate, **kwargs: object
    ) -> None:
        super().__init__(manager, **kwargs)  # type: ignore[arg-type]
        self._finish = finish
        self._restate = restate

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # What a client did, and anyone can do, is one line, not an error
        # with a traceback per connection.
        exc = kw.get("exc_info")
        what = self._clients_doing(exc) if isinstance(exc, BaseException) else None
        if what is None:
            super().log_exception(*args, **kw)
        else:
            self.logger.info("%s: %s", what, type(exc).__name__)

    def _clients_doing(self, exc: BaseException) -> str | None:
        if isinstance(exc, HttpProcessingError):
            return "unparseable request refused"
        # Met where aiohttp drains a body no handler read (e.g. gzip that is not).
        if isinstance(exc, web.RequestPayloadError):
            return "undecodable request body dropped"
        # Only once the client's side is gone: a handler's own connection
        # (the proxy's to its upstream) failing stays an error.
        if isinstance(exc, ConnectionError) and self.transport is None:
            return "client left mid-request"
        return None

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        answer = super().handle_error(request, status, exc, message)
        # When a route did run (a handler's exception), the app's hook runs
        # too and finds the headers already there.
        if not isinstance(answer, web.Response):
            return answer
        restated = _UnroutedAnswer(self._restate(answer), self._finish)
        restated.force_close()  # as aiohttp's own: the connection cannot be trusted
        return restated


def _as_is(plain: web.Response) -> web.Response:
    return plain


def handlers(
    server: web.Server, finish: Finish, restate: Restate = _as_is
) -> Callable[[], RequestHandler]:
    """Makes a handler as `server()` would, with the runner's settings
    (a protocol factory for `loop.create_server`)."""
    loop = asyncio.get_running_loop()
    kwargs = server._kwargs  # what AppRunner gave the server (access log, debug, ...)

    def make() -> RequestHandler:
        return _Handler(server, loop=loop, finish=finish, restate=restate, **kwargs)

    return make
