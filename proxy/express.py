"""The express lane: the proxy's common case, a plain HTTP request from a
logged-in member to a running notebook, relayed without aiohttp's per-request
machinery: llhttp (httptools) parses both sides, upstream connections are kept
alive and reused, and nothing is buffered.

Everything else (logins, WebSocket upgrades, HEAD, refusals, malformed or
unusual requests, a request the lane cannot decide yet) is handed to the
aiohttp application on the same socket, byte for byte: the transport's
protocol is switched to aiohttp's and the bytes read so far are replayed. So
the aiohttp path (app.py, forward.py) stays the reference behaviour, and this
lane only has to be right about the requests it keeps; it reuses the same
cookie, cache, refusal, policy and header functions to decide them.

A client repeats itself: a poll, an asset, a page, byte for byte on the same
connection. A request whose bytes are exactly those of one the lane relayed
before on this connection (`_KnownRequest`) is not parsed or judged again:
only what can change is checked (the member's access, as the access cache
holds it now, and the session's expiry) before its upstream bytes are sent.
Responses get the same treatment upstream (upstream.KnownHead).

Pipelined requests (a client sending its next request before the response to
the current one) are not relayed: the connection is closed after the current
response, which RFC 9112 §9.3.2 allows; clients retry. Browsers never
pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import unquote

import httptools
import structlog

from common.db import UNAVAILABLE
from common.ids import is_valid_id
from common.notebook_origin import notebook_authority
from common.settings import Settings
from proxy import metrics, pages
from proxy.access import AccessCache, Target
from proxy.cookie import CookieCache, ProxySession, cookie_name
from proxy.forward import Proxy
from proxy.headers import cookie_value, request_pairs, response_pairs, security_headers
from proxy.live import Live, lapsed, read_at, refusal
from proxy.policy import decide, normalize, upstream_target
from proxy.upstream import Address, UpstreamConnection, UpstreamPool, address_of

# Known requests remembered per connection, the oldest forgotten first. What
# repeats on a connection (polls, a reloaded page) is a handful of requests;
# a browser's headers run to a few KiB, so this bounds the memo near 32 KiB.
MAX_KNOWN_REQUESTS = 8

log = structlog.get_logger("proxy.express")

PREFIX = b"/notebooks/"
# Bytes of a request kept for a hand-off after it was sent upstream (a kept-
# alive upstream connection that died before answering): past this the
# request is not replayed and the client gets a 502.
MAX_REPLAY = 64 * 1024
# A request head larger than this is not a browser's (aiohttp refuses any
# header line over 8190 bytes); it bounds what an unjudged connection holds.
MAX_HEAD = 64 * 1024
# An idle connection is closed after this long without a byte (aiohttp's
# keep-alive time); a request head must arrive whole within it, however
# slowly its bytes trickle (slow-header clients hold nothing for long).
QUIET_SECONDS = 75.0

_IDLE, _REQUEST, _RESPONDING = range(3)


class _Stop(Exception):
    """Raised in a parser callback to stop parsing (hand-off or pipelining)."""


class _KnownRequest(NamedTuple):
    """A request relayed before on this connection, as it went upstream."""

    session: ProxySession
    target: Target  # the access it was judged with
    address: Address
    head: bytes  # its upstream form
    keep_alive: bool
    http11: bool  # the client's version, which frames the response


@dataclass(frozen=True)
class _Admitted:
    session: ProxySession
    relative: str
    host: str


class Lane:
    """What the express connections of one proxy process share."""

    def __init__(
        self,
        aiohttp_handler: Callable[[], asyncio.Protocol],
        proxy: Proxy,
        cookies: CookieCache,
        cache: AccessCache,
    ) -> None:
        self.aiohttp_handler = aiohttp_handler  # takes a handed-off connection
        self.proxy = proxy
        self.settings: Settings = proxy.settings
        self.cookie_name = cookie_name(proxy.settings)
        self.cookies = cookies
        self.cache = cache
        self.pool = UpstreamPool(proxy.clock)
        # Quiet connections are timed on the proxy's clock (see _sweep).
        self.monotonic = proxy.monotonic
        self.connections: set[ExpressConnection] = set()
        self.quiet_seconds = QUIET_SECONDS
        self.closing = False  # shutting down: no more keep-alive
        self.relayed = 0  # requests answered by the lane
        self.handed_off = 0  # requests given to the aiohttp app
        self.known_requests = 0  # relayed without parsing (seen before on their connection)
        self.known_responses = 0  # relayed by their known head's Content-Length
        self.security = list(security_headers(proxy.settings.frame_ancestors).items())
        self.forwarded_proto = proxy.forwarded_proto
        self.tally = metrics.HttpTally()
        self._sweeper: asyncio.Task[None] | None = None

    def __call__(self) -> ExpressConnection:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return ExpressConnection(self)

    async def _sweep(self) -> None:
        """Close connections quiet for `quiet_seconds` with nothing in flight,
        and upstream connections no longer worth keeping."""
        sleep = self.proxy.sleep
        while True:
            await sleep(self.quiet_seconds / 5)
            cutoff = self.monotonic() - self.quiet_seconds
            for conn in [c for c in self.connections if c.quiet_since(cutoff)]:
                conn.close()
            self.pool.prune()

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Shut down like a deploy should: idle connections close now,
        exchanges in flight get `grace_seconds` to finish (their connection
        closes after the response), then whatever is left is cut. Real time,
        not the proxy's clock: the grace is a share of the pod's termination
        grace period, which the kubelet counts in real time (as aiohttp's
        shutdown_timeout, next in serve.Served.close); and a test's clock,
        moved only by hand, would hold a shutdown forever."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        deadline = time.monotonic() + grace_seconds
        while True:
            for conn in [c for c in self.connections if c.idle]:
                conn.close()
            if not self.connections or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()
        self.pool.close()
        self.tally.flush()


class ExpressConnection(asyncio.Protocol):
    """One client connection, while the express lane owns it."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._parser = httptools.HttpRequestParser(self)
        self._state = _IDLE
        self._parser_stopped = False
        self._handing_off = False
        self._monotonic = lane.monotonic
        self._last_active = self._monotonic()  # the lane's clock: see quiet_since
        self._head_started = 0.0  # when the current request's first byte came
        self._paused: set[str] = set()
        self._client_full = False  # our writes to the client are backed up
        self._raw: list[bytes] | None = None  # this request's bytes, for a hand-off
        self._raw_size = 0
        self._early: list[bytes] = []  # bytes after the request (pipelined)
        self._judged_headers: list[tuple[str, str]] | None = None
        self._judged: tuple[ProxySession, str, bool] | None = None
        self._upstream_block: tuple[Target, str] | None = None
        self._known: dict[bytes, _KnownRequest] = {}  # raw request -> how it went upstream
        # Registered while the connection carries a session, so that a change
        # of access ends it, between requests too.
        self._live: Live | None = None
        # The task awaiting the database or an upstream connection for the
        # current request: held, since the loop keeps only weak references.
        self._waiting: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._notebook_id = ""
        self._headers: list[tuple[str, str]] = []
        self._up: UpstreamConnection | None = None
        self._pending: list[bytes] = []  # request body waiting for the upstream
        self._pending_size = 0  # its body bytes (less any chunk framing)
        # Body bytes written upstream while the request may still be handed
        # off (replayed, and counted, by aiohttp): tallied once it cannot be.
        self._body_sent = 0
        self._chunked_up = False  # the request body is chunked on the wire
        self._chunked_down = False  # the response body is chunked to the client
        self._until_close = False  # the response body ends when upstream closes
        self._held_head: bytes | None = None  # response head, sent with the body
        self._responded = False
        self._started = 0.0
        self._keep_alive = True
        self._http11 = True
        self._headers_done = False  # later header lines are trailers
        self._candidate: _KnownRequest | None = None  # this request, to remember

    @property
    def idle(self) -> bool:
        return self._state == _IDLE

    def quiet_since(self, cutoff: float) -> bool:
        """Nothing in flight (idle, or a head still arriving) and no byte
        since `cutoff`. Requests waiting on the database or on upstream, and
        bodies being relayed, are not quiet: they end on their own."""
        waiting = self._up is not None or bool(self._paused) or self._state == _RESPONDING
        if waiting:
            return False
        if self._state == _REQUEST:  # a head arriving: timed from its first byte
            return self._head_started < cutoff
        return self._last_active < cutoff

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol: the client side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        self.lane.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._last_active = self._monotonic()
        if self._state == _IDLE:
            known = self._known.get(data)
            if known is not None and self._relay_known(data, known):
                return
        if self._state == _RESPONDING or self._parser_stopped:
            self._early.append(data)  # pipelined: replayed on a hand-off, else dropped
            self._keep_alive = False
            self._pause("pipelined")
            return
        if self._state == _IDLE:
            self._raw, self._raw_size = [data], len(data)
            self._head_started = self._last_active
        elif self._raw is not None:
            self._raw.append(data)
            self._raw_size += len(data)
            if self._raw_size > MAX_REPLAY and self._up is not None:
                self._raw = None  # committed upstream and too big to replay
                self._tally_body()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._parser_stopped = True
            if self._handing_off or (self._up is None and self._raw is not None):
                # Ours to refuse or aiohttp's to take; malformed requests get
                # aiohttp's 400.
                self._hand_off()
            elif self._state != _RESPONDING:
                self._abort()  # a broken body after the head went upstream
            # else: pipelining detected mid-chunk; the connection closes after this response
        else:
            if self._candidate is not None and self._state == _RESPONDING and self._raw == [data]:
                self._remember(data, self._candidate)
            elif self._state == _REQUEST and not self._headers_done and self._raw_size > MAX_HEAD:
                self._abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lane.connections.discard(self)
        self.transport = None
        self._drop_exchange()
        self._unwatch()

    def pause_writing(self) -> None:
        self._client_full = True
        if self._up is not None and self._up.transport is not None:
            self._up.transport.pause_reading()

    def resume_writing(self) -> None:
        self._client_full = False
        if self._up is not None and self._up.transport is not None:
            self._up.transport.resume_reading()

    # llhttp callbacks for the request

    def on_message_begin(self) -> None:
        if self._state != _IDLE:
            self._keep_alive = False
            raise _Stop  # a second request in the same read: pipelined
        self._state = _REQUEST

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # a chunked body's trailer: never sent upstream as a header
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        # A head that came whole in one read was never measured against
        # MAX_HEAD (body bytes of that read count too: aiohttp takes those).
        admitted = None if self._raw_size > MAX_HEAD else self._admit()
        if admitted is None:
            self._handing_off = True
            raise _Stop
        self._keep_alive = self._parser.should_keep_alive()
        self._http11 = self._parser.get_http_version() == "1.1"
        found, target = self.lane.cache.peek(admitted.session, self._notebook_id)
        if found:
            if not self._route(admitted, target):
                self._handing_off = True
                raise _Stop
        else:
            self._pause("deciding")
            self._waiting = asyncio.ensure_future(self._route_later(admitted))

    def on_body(self, data: bytes) -> None:
        self._candidate = None  # only bodiless requests are remembered
        size = len(data)
        if self._chunked_up:
            data = b"%x\r\n%b\r\n" % (size, data)
        if self._up is None:
            # Not sent yet, so not counted: the request may still be refused
            # or handed off.
            self._pending.append(data)
            self._pending_size += size
        else:
            self._up.write(data)
            if self._raw is None:
                self.lane.tally.to_upstream += size
            else:
                self._body_sent += size

    def on_message_complete(self) -> None:
        if self._chunked_up:  # the last chunk
            if self._up is None:
                self._pending.append(b"0\r\n\r\n")
            else:
                self._up.write(b"0\r\n\r\n")
        self._state = _RESPONDING

    # Deciding

    def _admit(self) -> _Admitted | None:
        """The request's session if the express lane may take it on, judged
        on the head alone; None hands it to aiohttp."""
        method = self._parser.get_method()
        if method in (b"HEAD", b"CONNECT") or self._parser.should_upgrade():
            return None
        path, _, _ = self._url.partition(b"?")
        if not path.startswith(PREFIX) or b"#" in self._url:
            return None  # a fragment: aiohttp's path refuses it (see handle_notebook)
        notebook_id, slash, _ = path[len(PREFIX) :].partition(b"/")
        self._notebook_id = notebook_id.decode("latin-1")
        if not slash or not is_valid_id(self._notebook_id):
            return None
        tail = path[len(PREFIX) + len(notebook_id) :].decode("latin-1")
        # Only escapes, dot segments and backslashes need normalize(); most
        # paths have none, and it would return them unchanged.
        unusual = "%" in tail or "/." in tail or "\\" in tail
        relative = normalize(unquote(tail)) if unusual else tail
        if relative is None or relative == "/_open":
            return None
        # A client repeats the same headers on a connection request after
        # request: judge them once.
        if self._headers != self._judged_headers:
            self._judged_headers = self._headers
            self._judged = self._judge_headers()
            self._upstream_block = None
        if self._judged is None:
            return None
        session, host, chunked = self._judged
        if session.notebook_id != self._notebook_id:
            return None
        expected = notebook_authority(self.lane.settings.proxy_notebook_url, self._notebook_id)
        if expected is not None and host.lower() != expected:
            return None  # aiohttp's path refuses it
        self._chunked_up = chunked
        return _Admitted(session, relative, host)

    def _judge_headers(self) -> tuple[ProxySession, str, bool] | None:
        host = cookie = ""
        chunked = False
        for name, value in self._headers:
            lower = name.lower()
            if lower == "host":
                if host:
                    return None  # two: aiohttp's path refuses them (400)
                host = value
            elif lower == "cookie":
                cookie = cookie or value
            elif lower == "transfer-encoding":
                if chunked or value.strip().lower() != "chunked":
                    return None  # only plain chunked is ours; llhttp rejects some others late
                chunked = True
            elif lower in ("expect", "upgrade"):
                return None
        session = self.lane.cookies.unseal(cookie_value(cookie, self.lane.cookie_name))
        if not host or session is None:
            return None
        return session, host, chunked

    def _route(self, admitted: _Admitted, target: Target | None) -> bool:
        """Relay the request unless something refuses it; False leaves it to
        aiohttp, which answers with the refusal page and counts it."""
        lane = self.lane
        session = admitted.session
        address = address_of(target.marimo_url) if target and target.marimo_url else None
        if (
            target is None
            or address is None
            or refusal(session, target, lane.proxy.clock.now()) is not None
            or not decide(
                self._parser.get_method().decode("latin-1"),
                admitted.relative,
                mode=session.mode,
                websocket=False,
                allow_terminal=lane.settings.allow_terminal,
            ).allowed
        ):
            return False
        head = self._request_head(admitted, target, address)
        if not self._chunked_up and self._raw is not None and len(self._raw) == 1:
            # The head came in one read: remembered if it was the whole request.
            self._candidate = _KnownRequest(
                session, target, address, head, self._keep_alive, self._http11
            )
        up = lane.pool.take(address)
        if up is not None:
            self._start(up, session, target, head)
        else:
            self._pause("connecting")
            self._waiting = asyncio.ensure_future(self._connect(address, session, target, head))
        return True

    # Known requests

    def _remember(self, data: bytes, known: _KnownRequest) -> None:
        """`data` was exactly one bodiless request, relayed as `known`."""
        if len(self._known) >= MAX_KNOWN_REQUESTS:
            del self._known[next(iter(self._known))]
        self._known[data] = known

    def _relay_known(self, data: bytes, known: _KnownRequest) -> bool:
        """Relay a request seen before on this connection if its member's
        access and session are still what they were; False when it must be
        parsed and judged again."""
        lane = self.lane
        session = known.session
        found, target = lane.cache.peek(session, session.notebook_id)
        if not found or target is None:
            return False
        if target is not known.target:
            if target != known.target:
                return False  # access changed: judged afresh
            # The same access, looked up again after the cache's TTL.
            known = self._known[data] = known._replace(target=target)
        if lapsed(session, target, lane.proxy.clock.now()):
            return False
        up = lane.pool.take(known.address)
        if up is None:
            return False  # the parsing path connects
        self._raw, self._raw_size = [data], len(data)
        self._keep_alive = known.keep_alive
        self._http11 = known.http11
        self._state = _RESPONDING
        lane.known_requests += 1
        self._start(up, session, target, known.head)
        return True

    async def _route_later(self, admitted: _Admitted) -> None:
        try:
            target = await self.lane.cache.lookup(admitted.session, self._notebook_id)
        except UNAVAILABLE as exc:
            # Answered here: handed off, the app would wait for the pool as long again.
            if self.transport is not None:
                log.warning("proxy.database_unavailable", error=str(exc))
                metrics.REQUESTS.labels("http", "database_unavailable").inc()
                self.transport.write(
                    _page(
                        503,
                        pages.DB_UNAVAILABLE_TITLE,
                        pages.DB_UNAVAILABLE,
                        self.lane.security,
                        (("Retry-After", "5"),),
                    )
                )
                self._abort()
            return
        except Exception:  # noqa: BLE001 - aiohttp's path reports the failure
            target = None
        if self.transport is None:
            return
        self._resume("deciding")
        if not self._route(admitted, target):
            self._hand_off()

    async def _connect(
        self, address: Address, session: ProxySession, target: Target, head: bytes
    ) -> None:
        try:
            up = await self.lane.pool.connect(address)
        except (OSError, TimeoutError):
            if self.transport is not None:
                self._hand_off()  # aiohttp tries once more and answers 502
            return
        if self.transport is None:
            up.close()
            return
        self._resume("connecting")
        self._start(up, session, target, head)

    def _request_head(self, admitted: _Admitted, target: Target, address: Address) -> bytes:
        line = (
            f"{self._parser.get_method().decode('latin-1')} "
            f"{address.prefix}{upstream_target(self._url.decode('latin-1'))} HTTP/1.1\r\n"
        )
        # The headers were judged unchanged (see _admit): so is their upstream
        # form, as long as the notebook's target is too.
        if self._upstream_block is None or self._upstream_block[0] is not target:
            pairs = request_pairs(
                self._headers,
                marimo_token=str(target.session_token),
                client_ip=self.peer,
                proto=self.lane.forwarded_proto,
                host=admitted.host,
                viewer=admitted.session.mode == "view",
                notebook_path=target.notebook_path,
            )
            if self._chunked_up:
                pairs.append(("Transfer-Encoding", "chunked"))
            block = _header_block(f"Host: {address.host_header}\r\n", pairs)
            self._upstream_block = (target, block)
        return (line + self._upstream_block[1]).encode("latin-1")

    # Relaying

    def _start(
        self, up: UpstreamConnection, session: ProxySession, target: Target, head: bytes
    ) -> None:
        self._up = up
        self._started = time.perf_counter()
        if self._pending:
            head += b"".join(self._pending)
            self._pending = []
            self._body_sent += self._pending_size
            self._pending_size = 0
        up.send(self, head)
        # Bookkeeping after the send: upstream is already at work.
        live = self._live
        if live is None or (live.session is not session and live.session != session):
            self._watch(session, target)
        if self._client_full and up.transport is not None:
            up.transport.pause_reading()

    def _watch(self, session: ProxySession, target: Target) -> None:
        registry = self.lane.proxy.registry
        if self._live is not None:
            registry.discard(self._live)
        confirmed = read_at(target, self.lane.proxy.clock)
        self._live = registry.add(Live(session, self._revoke, confirmed))

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self._pause("upstream")
        else:
            self._resume("upstream")

    def response_head(
        self, status: int, reason: bytes, headers: list[tuple[str, str]]
    ) -> bytes | None:
        self.lane.tally.responded(time.perf_counter() - self._started)
        self._raw = None  # the client is being answered: never replayed now
        if self._body_sent:
            self._tally_body()
        self._responded = True
        pairs = response_pairs(headers, self._up.address.origin if self._up else "")
        names = {name.lower() for name, _ in headers}
        has_length = "content-length" in names
        if not has_length and status not in (204, 304):
            if self._http11:
                self._chunked_down = True
                pairs.append(("Transfer-Encoding", "chunked"))
            else:
                self._keep_alive = False  # an HTTP/1.0 client reads to the close
        self._until_close = not has_length and "transfer-encoding" not in names
        if not self._keep_alive:
            pairs.append(("Connection", "close"))
        pairs.extend(self.lane.security)
        phrase = reason.decode("latin-1") or _phrase(status)
        head = _header_block(f"HTTP/1.1 {status} {phrase}\r\n", pairs).encode("latin-1")
        if has_length:
            self._held_head = head  # one send with the body, not two
            # Kept-alive, a plain length: the same upstream head gets this one.
            return head if self._keep_alive and "transfer-encoding" not in names else None
        if self.transport is not None:
            self.transport.write(head)  # streams (SSE, long polls) start now
        return None

    def response_known(self, client_head: bytes, body: bytes) -> bool:
        if not self._keep_alive:
            return False  # its head must say `Connection: close`
        if self.transport is not None:
            self.transport.write(client_head + body)
        tally = self.lane.tally
        tally.responded(time.perf_counter() - self._started)
        tally.to_client += len(body)
        self._raw = None
        if self._body_sent:
            self._tally_body()
        self._responded = True
        self.lane.known_responses += 1
        return True

    def response_body(self, data: bytes) -> None:
        self.lane.tally.to_client += len(data)
        if self._chunked_down:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self._held_head is not None:
            data, self._held_head = self._held_head + data, None
        if self.transport is not None:
            self.transport.write(data)

    def response_end(self, reusable: bool) -> None:
        tail = self._held_head or b""
        if self._chunked_down:
            tail += b"0\r\n\r\n"
        if tail and self.transport is not None:
            self.transport.write(tail)
        self.lane.tally.request_done()
        self.lane.relayed += 1
        up, self._up = self._up, None
        if up is not None:
            if reusable and self._state == _RESPONDING:
                self.lane.pool.give_back(up)
            else:
                up.close()  # the request was not read to its end
        complete = self._state == _RESPONDING
        if not (self._keep_alive and complete) or self.lane.closing or self.transport is None:
            self.close()
            return
        self._state = _IDLE
        self._raw = None
        self._reset()
        if self._paused:
            self._paused.clear()
            self.transport.resume_reading()

    def upstream_lost(self, exc: BaseException | None) -> None:
        if self._responded and self._until_close and exc is None:
            self.response_end(False)  # a body delimited by the close
            return
        self._up = None
        if not self._responded and self._raw is not None and self.transport is not None:
            # e.g. a kept-alive connection closed as we sent. Not an error of
            # the request's yet: aiohttp retries it and counts its own failure.
            self._hand_off()
            return
        metrics.UPSTREAM_ERRORS_TOTAL.labels("other").inc()  # one the client sees
        if not self._responded and self.transport is not None:
            metrics.REQUESTS.labels("http", "upstream_error").inc()
            self.transport.write(
                _page(502, pages.BAD_GATEWAY_TITLE, pages.NO_ANSWER, self.lane.security)
            )
            self._abort()
        else:
            self._abort()  # mid-body: the client must see a broken response

    def _revoke(self, reason: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # already ending
        if self._up is not None or "connecting" in self._paused:
            # An exchange cut, as the app counts its requests in flight; an
            # idle kept-alive connection is closed uncounted (nothing was cut).
            metrics.REVOKED.labels(reason).inc()
            log.info("proxy.http_revoked", reason=reason)
        self._abort()

    # Endings

    def _pause(self, reason: str) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        self._paused.discard(reason)
        if not self._paused and self.transport is not None:
            self.transport.resume_reading()

    def _tally_body(self) -> None:
        self.lane.tally.to_upstream += self._body_sent
        self._body_sent = 0

    def _drop_exchange(self) -> None:
        if self._body_sent:
            self._tally_body()  # sent, though the exchange ends unanswered
        if self._up is not None:
            self._up.close()
            self._up = None

    def _unwatch(self) -> None:
        if self._live is not None:
            self.lane.proxy.registry.discard(self._live)
            self._live = None

    def _abort(self) -> None:
        self._drop_exchange()
        self.close()

    def _hand_off(self) -> None:
        """Give this connection, from the current request on, to aiohttp."""
        transport = self.transport
        if transport is None:
            return
        replay = b"".join(self._raw or ()) + b"".join(self._early)
        metrics.HANDOFFS.inc()
        self.lane.handed_off += 1
        self._body_sent = 0  # aiohttp counts the body as it sends it again
        self._drop_exchange()
        self._unwatch()  # the app registers its own
        self.lane.connections.discard(self)
        self.transport = None
        handler = self.lane.aiohttp_handler()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if replay:
            handler.data_received(replay)
        transport.resume_reading()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _page(
    status: int,
    title: str,
    text: str,
    security: list[tuple[str, str]],
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """One of the app's short pages (proxy/pages.py), as the lane sends it
    itself: the connection closes after it."""
    body = pages.html(title, text).encode()
    pairs = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *extra,
        ("Connection", "close"),
        *security,
    ]
    first = f"HTTP/1.1 {status} {_phrase(status)}\r\n"
    return _header_block(first, pairs).encode("latin-1") + body


def _header_block(first_line: str, pairs: list[tuple[str, str]]) -> str:
    """`first_line`, then a line per header, then the blank line."""
    return first_line + "".join(f"{name}: {value}\r\n" for name, value in pairs) + "\r\n"
