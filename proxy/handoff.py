"""aiohttp's side of a hand-off: the handler that takes over a connection the
express lane gives up (express.ExpressConnection._hand_off).

aiohttp answers a request it cannot parse (a bad request line, a header over
its size limits, a broken chunk) with a 400 of its own, made before any route
matched, so the app's response hook never runs on it: it would go out with
aiohttp's `Server` banner and without the proxy's security headers. This
handler puts the same headers on that answer as the hook puts on every other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy.app import finish_answer
from proxy.headers import security_headers


class _UnroutedAnswer(web.Response):
    """An answer no route made, finished like the app's own."""

    def __init__(self, plain: web.Response, extra: dict[str, str]) -> None:
        super().__init__(status=plain.status, body=plain.body, content_type=plain.content_type)
        self._extra = extra

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()  # aiohttp's defaults, `Server` among them
        finish_answer(self, self._extra)


class _Handler(RequestHandler):
    def __init__(self, manager: web.Server, *, extra: dict[str, str], **kwargs: object) -> None:
        super().__init__(manager, **kwargs)  # type: ignore[arg-type]
        self._extra = extra

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
        return _UnroutedAnswer(answer, self._extra) if isinstance(answer, web.Response) else answer


def handlers(server: web.Server, frame_ancestors: str) -> Callable[[], RequestHandler]:
    """Makes a handler as `server()` would, with the runner's settings."""
    extra = security_headers(frame_ancestors)
    loop = asyncio.get_running_loop()
    kwargs = server._kwargs  # what AppRunner gave the server (access log, debug, ...)

    def make() -> RequestHandler:
        return _Handler(server, loop=loop, extra=extra, **kwargs)

    return make
