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
        # A request that is not HTTP is the client's fault and anyone's to
        # send: one line, not an error with a traceback per connection.
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            self.logger.info("unparseable request refused: %s", type(exc).__name__)
        else:
            super().log_exception(*args, **kw)

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
