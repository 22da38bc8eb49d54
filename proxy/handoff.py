"""aiohttp's side of a hand-off: the handler that takes over a connection the
express lane gives up (express.ExpressConnection._hand_off). Its own answers
(a request it cannot parse) get the proxy's headers and no `Server` banner,
as every other answer of the proxy (common.unrouted)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from common import unrouted
from proxy.app import finish_answer
from proxy.headers import security_headers


def handlers(server: web.Server, frame_ancestors: str) -> Callable[[], RequestHandler]:
    """Makes a handler as `server()` would, with the runner's settings."""
    extra = security_headers(frame_ancestors)
    return unrouted.handlers(server, lambda answer: finish_answer(answer, extra))
