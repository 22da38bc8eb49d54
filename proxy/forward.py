"""Streaming HTTP and WebSocket traffic to a notebook's Marimo.

Bodies are streamed both ways (never buffered); WebSockets connect upstream
first, then accept the client with the subprotocol upstream chose, pump both
directions under `asyncio.wait(FIRST_COMPLETED)` and close each side with the
peer's code."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import aiohttp
import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from yarl import URL

from common.clock import Clock, monotonic_reader, sleeper
from common.notebook_origin import notebook_origin, public_scheme
from common.settings import Settings
from proxy import metrics, pages
from proxy.access import Target
from proxy.cookie import ProxySession
from proxy.headers import downstream_response_headers, upstream_request_headers
from proxy.live import SHUTDOWN, UNCONFIRMED, Live, Registry, read_at
from proxy.policy import MAIN_WS, force_kiosk, strip_query
from proxy.upstream import address_of
from proxy.viewer_session import no_session, open_session, opener_query

log = structlog.get_logger("proxy")

CHUNK = 64 * 1024
REVOKED_CLOSE_CODE = 4403  # an application code the frontend shows as a disconnect
# The close reason a revoked browser socket gets, by refusal() reason.
_REVOKED_WHY = {
    "owner": b"the owner is editing: open it again to view",
    "edit": b"you may no longer edit: open it again to view",
}
# "Service restart" (RFC 6455 7.4.1 registry): this proxy is going away; the
# browser's Marimo reconnects (any reason but Marimo's own terminal ones),
# through the Service, to a proxy that stays.
SHUTDOWN_CLOSE_CODE = 1012
# "Try again later": the re-checks could not confirm access (the database
# down or slow); Marimo's page reconnects, and gets a 503 page until the
# database answers again.
UNCONFIRMED_CLOSE_CODE = 1013
# A WebSocket message is held whole in memory before it is passed on, so both
# directions are bounded; one this size or larger ends the socket with 1009.
# The browser's: near what Marimo's server (uvicorn's `ws_max_size`) takes
# anyway. Marimo's: 8x Marimo's own cap on a cell's output (8 MB,
# `output_max_bytes`), so only a notebook that raised that cap, or a huge
# widget or data message, meets it; but a notebook's output must not grow
# the proxy's memory unbounded.
BROWSER_MESSAGE_LIMIT = 16 * 1024 * 1024
# A viewer's only socket is Marimo's /ws, which reads what the browser sends
# and drops it (marimo/_server/api/endpoints/ws/ws_message_loop.py: it
# listens for the close): nothing a viewer says there needs 16 MiB, and a
# viewer's compressed message inflates to its full size in the proxy.
VIEWER_MESSAGE_LIMIT = 64 * 1024
MARIMO_MESSAGE_LIMIT = 64 * 1024 * 1024
# The reason the browser's socket is closed with when Marimo's message was
# too large: one of the reasons on which Marimo's page stops reconnecting
# ("App disconnected — click to reconnect"). On any other it reconnects
# without backing off, forever: Marimo replays the session's outputs to
# every new socket, the large one among them (docs/proxy.md, "WebSocket").
TOO_BIG_REASON = "MARIMO_SHUTDOWN"  # marimo._server.codes.WebSocketCloseReason
# Marimo answers a kiosk at once (kernel-ready or a refusal) and an editor
# once its kernel is up.
FIRST_MESSAGE_SECONDS = 30.0


class _CoalescedResponse(web.StreamResponse):
    """Headers go out with the first body chunk: one send instead of two.
    Only for bodies of known length, where the first chunk comes with the
    headers anyway; chunked ones (SSE, long polls) send headers at once."""

    _send_headers_immediately = False


@dataclass
class Proxy:
    settings: Settings
    clock: Clock
    client: aiohttp.ClientSession
    registry: Registry = field(default_factory=Registry)
    # Pings to the browser: a browser that vanished without a close (sleep,
    # lost network) is noticed within 1.5x this, and its Marimo socket closed,
    # so Marimo orphans the session and the member's next open resumes it as
    # the editor instead of landing as a reader behind a dead editor.
    ws_heartbeat_seconds: float = 20.0

    @cached_property
    def monotonic(self) -> Callable[[], float]:
        """The clock's monotonic reading (common.clock.monotonic_reader)."""
        return monotonic_reader(self.clock)

    @cached_property
    def sleep(self) -> Callable[[float], Awaitable[None]]:
        """How the proxy's own timers (the WebSocket heartbeat, the express
        lane's sweep) wait `seconds` of its clock: the event loop's sleep, or
        the clock's own when it has one (a test's, moved by `advance`: so
        tests of those timers advance time instead of waiting for it)."""
        return sleeper(self.clock)

    @cached_property
    def forwarded_proto(self) -> str:
        """What Marimo is told in X-Forwarded-Proto (common/notebook_origin.py)."""
        return public_scheme(self.settings.proxy_public_url, self.settings.proxy_notebook_url)


def _upstream_url(
    target: Target, request: web.Request, query: str | None = None, *, websocket: bool = False
) -> URL:
    base = str(target.marimo_url).rstrip("/")
    if websocket:
        base = "ws" + base[len("http") :] if base.startswith("http") else base
    path, _, raw_query = request.raw_path.partition("?")
    q = strip_query(raw_query) if query is None else query
    return URL(f"{base}{path}" + (f"?{q}" if q else ""), encoded=True)


def _forward_headers(
    proxy: Proxy,
    request: web.Request,
    session: ProxySession,
    target: Target,
    *,
    websocket: bool,
) -> Any:
    return upstream_request_headers(
        request.headers,
        marimo_token=str(target.session_token),
        client_ip=request.remote,
        proto=proxy.forwarded_proto,
        host=request.host,
        websocket=websocket,
        viewer=session.mode == "view",
        notebook_path=target.notebook_path,
    )


def _count_upstream_error(exc: BaseException) -> None:
    kind = (
        "timeout"
        if isinstance(exc, TimeoutError)
        else ("connect" if isinstance(exc, aiohttp.ClientConnectorError) else "other")
    )
    metrics.UPSTREAM_ERRORS_TOTAL.labels(kind).inc()


class _Revoked(Exception):
    """Raised into the upstream request's body: access ended while it was
    being sent, and Marimo must not get it whole."""


async def _request_body(request: web.Request, revoked: list[str]) -> AsyncIterator[bytes]:
    sent = metrics.HTTP_TO_UPSTREAM
    async for chunk in request.content.iter_chunked(CHUNK):
        if revoked:
            raise _Revoked
        yield chunk
        # Counted once written: aiohttp asks for the next chunk only after
        # writing this one (and never, if the request ended first).
        sent.inc(len(chunk))
    if revoked:  # nor its end: a chunked body's last chunk would complete it
        raise _Revoked


async def forward_http(
    proxy: Proxy, request: web.Request, session: ProxySession, target: Target
) -> web.StreamResponse:
    url = _upstream_url(target, request)
    headers = _forward_headers(proxy, request, session, target, websocket=False)
    revoked: list[str] = []
    body = _request_body(request, revoked) if request.body_exists else None
    # A task of its own, so that a revocation can end it wherever it is:
    # sending the body (Expect: 100-continue, a slow upload) or awaiting
    # Marimo's answer.
    call = asyncio.ensure_future(
        proxy.client.request(request.method, url, headers=headers, data=body, allow_redirects=False)
    )
    upstream: list[aiohttp.ClientResponse] = []

    def stop(reason: str) -> None:
        if revoked:
            return
        metrics.REVOKED.labels(reason).inc()
        revoked.append(reason)
        call.cancel()  # aiohttp closes the upstream connection, the body unfinished
        for up in upstream:
            up.close()
        # The client's connection ends here, whatever it was doing: nothing
        # more of its body is read, none of an answer is sent.
        if request.transport is not None:
            request.transport.close()

    live = proxy.registry.add(Live(session, stop, read_at(target, proxy.clock)))
    started = time.perf_counter()
    try:
        await asyncio.wait((call,))
        if revoked:  # (an answer that came just before is closed below)
            return web.Response(status=403)  # never sent: the connection is closed
        try:
            up = call.result()
        except (TimeoutError, aiohttp.ClientError) as exc:
            _count_upstream_error(exc)
            metrics.REQUESTS.labels("http", "upstream_error").inc()
            log.warning("proxy.upstream_error", notebook_id=session.notebook_id, error=repr(exc))
            return pages.bad_gateway()
        upstream.append(up)
        metrics.UPSTREAM_SECONDS.observe(time.perf_counter() - started)
        async with up:
            response_class = (
                _CoalescedResponse if "Content-Length" in up.headers else web.StreamResponse
            )
            resp = response_class(
                status=up.status,
                reason=up.reason,
                headers=downstream_response_headers(up.headers, _origin(str(target.marimo_url))),
            )
            await resp.prepare(request)
            received = metrics.HTTP_TO_CLIENT
            try:
                async for chunk in up.content.iter_any():
                    received.inc(len(chunk))
                    await resp.write(chunk)
                if not revoked:
                    await resp.write_eof()
                    metrics.HTTP_PROXIED.inc()
                    return resp
            except ConnectionError:  # the browser went away: nothing to tell it
                return resp
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not revoked:
                    _count_upstream_error(exc)
            # Upstream failed mid-body or access was revoked: the client must
            # see a broken body, not a complete-looking short one.
            if request.transport is not None:
                request.transport.close()
            return resp
    finally:
        call.cancel()  # this handler cancelled (the client left): the request too
        if not upstream:  # its answer, if one comes or came, is relayed by nobody
            call.add_done_callback(_close_answer)
        proxy.registry.discard(live)


def _close_answer(call: asyncio.Future[aiohttp.ClientResponse]) -> None:
    """Close an upstream answer nobody relays (a revocation, or the handler
    cancelled just as it came) now, not whenever it is collected."""
    if not call.cancelled() and call.exception() is None:
        call.result().close()


def origin_allowed(proxy: Proxy, request: web.Request) -> bool:
    """Browsers always send Origin on WebSockets; only our own page may connect."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    settings = proxy.settings
    if settings.proxy_notebook_url:  # an origin per notebook: that one alone
        own = notebook_origin("", settings.proxy_notebook_url, request.match_info["id"])
        return origin.rstrip("/").lower() == own
    public = URL(settings.proxy_public_url)
    allowed = {f"{public.scheme}://{public.raw_authority}", f"{request.scheme}://{request.host}"}
    return origin.rstrip("/") in allowed


async def forward_websocket(
    proxy: Proxy, request: web.Request, session: ProxySession, target: Target, relative: str
) -> web.StreamResponse:
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    # Judged before upstream is connected: a handshake the browser's side
    # cannot complete (a bad version, no key) would fail only after it was.
    if request.method != "GET" or not web.WebSocketResponse(protocols=protocols).can_prepare(
        request
    ):
        metrics.REQUESTS.labels("websocket", "bad_request").inc()
        return pages.page(400, "Bad request", "That is not a valid WebSocket handshake.")
    if not origin_allowed(proxy, request):
        metrics.REQUESTS.labels("websocket", "forbidden").inc()
        return pages.forbidden("This WebSocket came from a page of another origin.")
    cap = proxy.settings.proxy_max_websockets_per_member
    if cap and proxy.registry.websockets_of(session.member_id) >= cap:
        metrics.REQUESTS.labels("websocket", "too_many").inc()
        return pages.page(
            429,
            "Too many connections",
            f"You have {cap} notebook connections open through this server, the most it "
            "allows one member: close some notebook tabs, then reload this one.",
        )
    with proxy.registry.opening(session.member_id) as opened:
        return await _open_websocket(proxy, request, session, target, relative, protocols, opened)


async def _open_websocket(
    proxy: Proxy,
    request: web.Request,
    session: ProxySession,
    target: Target,
    relative: str,
    protocols: list[str],
    opened: Callable[[], None],
) -> web.StreamResponse:
    viewer_main = session.mode == "view" and relative.rstrip("/") == MAIN_WS
    # The raw query: aiohttp's `query_string` is decoded once already.
    query = force_kiosk(request.rel_url.raw_query_string) if viewer_main else None
    url = _upstream_url(target, request, query, websocket=True)
    headers = _forward_headers(proxy, request, session, target, websocket=True)

    async def connect() -> aiohttp.ClientWebSocketResponse:
        return await proxy.client.ws_connect(
            url,
            headers=headers,
            protocols=protocols,
            autoping=True,
            max_msg_size=MARIMO_MESSAGE_LIMIT,
            decode_text=False,  # relayed as bytes (_pump)
        )

    first: aiohttp.WSMessage | None = None  # read before the browser is accepted
    try:
        up = await connect()
        if viewer_main:
            first = await _first_message(up)
            if first is not None and no_session(first):  # nobody has opened it: viewer_session
                opener = _upstream_url(target, request, opener_query(), websocket=True)
                await open_session(
                    proxy.client, opener, headers, FIRST_MESSAGE_SECONDS, MARIMO_MESSAGE_LIMIT
                )
                up = await connect()
                first = await _first_message(up)
    except aiohttp.WSServerHandshakeError as exc:
        metrics.REQUESTS.labels("websocket", "upstream_error").inc()
        metrics.UPSTREAM_ERRORS_TOTAL.labels("other").inc()
        return pages.page(
            exc.status if exc.status >= 400 else 502,
            "Notebook refused",
            "The notebook's server refused this connection.",
        )
    except (TimeoutError, aiohttp.ClientError) as exc:
        _count_upstream_error(exc)
        metrics.REQUESTS.labels("websocket", "upstream_error").inc()
        return pages.bad_gateway()

    # Pings and pongs from the browser reach _pump (autoping off) so that
    # _watch knows when it was last heard from. (Not aiohttp's `heartbeat=`:
    # it re-arms a timer on every message, and the proxy's memory grew by
    # about 100 bytes per message under the soak benchmark.)
    client = web.WebSocketResponse(
        protocols=[up.protocol] if up.protocol else (),
        autoping=False,
        max_msg_size=VIEWER_MESSAGE_LIMIT if session.mode == "view" else BROWSER_MESSAGE_LIMIT,
        decode_text=False,  # relayed as bytes (_pump)
    )
    stopped: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def stop(reason: str) -> None:
        if not stopped.done():
            stopped.set_result(reason)

    live = proxy.registry.add(Live(session, stop, read_at(target, proxy.clock), websocket=True))
    opened()  # counted as open from now on (Registry.websockets_of)
    gauge = metrics.WEBSOCKETS_ACTIVE.labels(session.mode)
    gauge.inc()
    started = time.monotonic()
    counts = {"to_upstream": 0, "to_client": 0}
    close_code: int | None = None
    ended_by = "client"
    try:
        await client.prepare(request)
        metrics.REQUESTS.labels("websocket", "proxied").inc()
        live.heard = proxy.monotonic()
        to_up = asyncio.ensure_future(
            _pump(client, up, counts, "to_upstream", live, proxy.monotonic)
        )
        from_up = up if first is None else _Prepended(first, up)
        to_client = asyncio.ensure_future(_pump(from_up, client, counts, "to_client"))
        watch = asyncio.ensure_future(_watch(client, live, proxy.ws_heartbeat_seconds, proxy))
        try:
            waited: set[asyncio.Future[Any]] = {to_up, to_client, stopped, watch}
            done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (to_up, to_client, watch):
                task.cancel()
            await asyncio.gather(to_up, to_client, watch, return_exceptions=True)
        if stopped in done and stopped.result() == SHUTDOWN:
            ended_by, close_code = SHUTDOWN, SHUTDOWN_CLOSE_CODE
            # Both at once: the browser hears 1012 without waiting on a slow
            # Marimo; 1001 (going away) upstream, Marimo keeps the session for
            # the reconnect.
            await asyncio.gather(
                client.close(code=close_code, message=b"server restarting"),
                up.close(code=1001),
                return_exceptions=True,
            )
        elif stopped in done:
            ended_by = f"revoked:{stopped.result()}"
            metrics.REVOKED.labels(stopped.result()).inc()
            await up.close()
            if stopped.result() == UNCONFIRMED:
                close_code = UNCONFIRMED_CLOSE_CODE
                await client.close(code=close_code, message=b"try again later")
            else:
                close_code = REVOKED_CLOSE_CODE
                await client.close(
                    code=close_code, message=_REVOKED_WHY.get(stopped.result(), b"access ended")
                )
        elif watch in done:
            ended_by = "vanished"
            close_code = 1001  # "going away", as for a closed tab
            await up.close(code=close_code)
            if request.transport is not None:
                request.transport.close()  # nobody is there to finish a closing handshake
        elif to_client in done and isinstance(_error(to_client), _TooBig):
            ended_by = "too_big"
            close_code = WSCloseCode.MESSAGE_TOO_BIG
            await client.close(code=close_code, message=TOO_BIG_REASON.encode())
        elif to_client in done and not to_client.cancelled() and to_client.exception() is None:
            ended_by = "upstream"
            code, reason = to_client.result()
            # Marimo's frontend acts on its close reasons (MARIMO_NO_SESSION, ...).
            close_code = sendable(code, 1011)
            await client.close(code=close_code, message=reason.encode()[:123])
        elif to_up in done and not to_up.cancelled() and to_up.exception() is None:
            code, reason = to_up.result()
            close_code = sendable(code, 1001)  # a vanished browser is "going away"
            await up.close(code=close_code, message=reason.encode()[:123])
    finally:
        stop("done")
        proxy.registry.discard(live)
        gauge.dec()
        # Also reached on cancellation (the server cancels a handler whose
        # client went away): still hand the client's code to upstream.
        if close_code is None:
            close_code = sendable(client.close_code, 1001)
        if not up.closed:
            await up.close(code=close_code)
        if client.prepared and not client.closed:  # (unprepared: nothing to close)
            await client.close(code=close_code)
        log.info(
            "proxy.session",
            notebook_id=session.notebook_id,
            member_id=session.member_id,
            mode=session.mode,
            path=relative,
            duration_s=round(time.monotonic() - started, 3),
            bytes_to_upstream=counts["to_upstream"],
            bytes_to_client=counts["to_client"],
            close_code=close_code,
            ended_by=ended_by,
        )
    return client


async def _first_message(up: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage | None:
    """Marimo's first word to a kiosk, or None if it has said nothing in
    time: then the socket is relayed as it is, and whatever Marimo says later
    reaches the browser as usual."""
    try:
        return await up.receive(timeout=FIRST_MESSAGE_SECONDS)
    except TimeoutError:
        return None
    except BaseException:
        await up.close()
        raise


class _Prepended:
    """An upstream socket with its first message, already read, put back."""

    def __init__(self, first: aiohttp.WSMessage, source: aiohttp.ClientWebSocketResponse) -> None:
        self._first: aiohttp.WSMessage | None = first
        self._source = source

    async def receive(self) -> aiohttp.WSMessage:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._source.receive()

    @property
    def close_code(self) -> int | None:
        return self._source.close_code


def _origin(marimo_url: str) -> str:
    """Marimo's origin as it names itself in a redirect: made once per
    address (upstream.address_of is cached), as on the express lane."""
    address = address_of(marimo_url)
    return address.origin if address is not None else str(URL(marimo_url).origin())


def _error(task: asyncio.Future[Any]) -> BaseException | None:
    return None if task.cancelled() else task.exception()


class _TooBig(Exception):
    """A message at its side's limit: the socket was closed with 1009."""


# Codes that must never be sent in a close frame (RFC 6455 §7.4.1): they
# report a local condition (no code, abnormal closure, TLS failure).
_UNSENDABLE = frozenset({1004, 1005, 1006, 1015})


def sendable(code: int | None, fallback: int) -> int:
    """The peer's close code if it may be passed on, else `fallback`."""
    if code is None or code in _UNSENDABLE or not 1000 <= code <= 4999:
        return fallback
    return int(code)


async def _pump(
    source: Any,
    sink: Any,
    counts: dict[str, int],
    direction: str,
    browser: Live | None = None,
    monotonic: Callable[[], float] | None = None,
) -> tuple[int | None, str]:
    """Copy messages until `source` closes; return its close code and reason.
    With `browser` (its registration, when `source` is the browser) and the
    proxy's `monotonic` clock, `source` does not autoping: its pings are
    answered here and `browser.heard` is when its last frame came."""
    counter = metrics.BYTES.labels(direction, "websocket")
    while True:
        msg = await source.receive()
        if browser is not None and monotonic is not None:
            browser.heard = monotonic()
            if msg.type == WSMsgType.PING:
                await source.pong(msg.data)
                continue
        if msg.type == WSMsgType.TEXT:
            # Bytes (decode_text=False), passed on as they came: never a str,
            # which would hold a 60 MiB output four times over with one emoji
            # in it, and be encoded again to be sent.
            size = len(msg.data)
            await sink.send_frame(msg.data, WSMsgType.TEXT)
        elif msg.type == WSMsgType.BINARY:
            size = len(msg.data)
            await sink.send_bytes(msg.data)
        elif msg.type == WSMsgType.CLOSE:
            return msg.data, msg.extra or ""
        elif msg.type in (WSMsgType.PING, WSMsgType.PONG):
            continue  # pings answered by autoping or above; pongs only say "alive"
        elif _too_big(msg):  # (aiohttp closed `source` with 1009)
            raise _TooBig
        else:  # CLOSING, CLOSED, ERROR
            return source.close_code, ""
        counts[direction] += size
        counter.inc(size)


def _too_big(msg: aiohttp.WSMessage) -> bool:
    return (
        msg.type == WSMsgType.ERROR
        and isinstance(msg.data, aiohttp.WebSocketError)
        and msg.data.code == WSCloseCode.MESSAGE_TOO_BIG
    )


async def _watch(
    client: web.WebSocketResponse, browser: Live, interval: float, proxy: Proxy
) -> None:
    """Return once the browser has been silent for 1.5 x `interval`, having
    been pinged after `interval` (a laptop asleep, a network gone: no close
    frame ever comes). One timer per socket, re-armed only when it fires;
    silence is measured, and the timer runs, on the proxy's clock."""
    monotonic, sleep = proxy.monotonic, proxy.sleep
    pinged_after = -1.0
    while True:
        last = browser.heard
        quiet = monotonic() - last
        if quiet >= interval * 1.5:
            return
        if quiet >= interval and pinged_after != last:
            pinged_after = last
            # Bounded: a gone browser's full send buffer must not stall the watch.
            with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                await asyncio.wait_for(client.ping(), interval / 2)
        wake_at = last + (interval if quiet < interval else interval * 1.5)
        await sleep(max(0.0, wake_at - monotonic()))
