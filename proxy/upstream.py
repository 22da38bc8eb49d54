"""Kept-alive HTTP/1.1 connections to Marimo servers, for the express lane.

One `UpstreamConnection` carries one exchange at a time; its response is
parsed by llhttp (httptools) and handed, event by event, to whoever sent the
request (a `Relay`). Idle connections wait in `UpstreamPool`, newest first.

A server answers a client's requests with the same head over and over (only
`Date` changes, once a second), so each connection remembers its last plain
head (`KnownHead`): a response that starts with exactly those bytes was
already parsed and judged, and is relayed by counting its `Content-Length`
alone."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import NamedTuple, Protocol

import httptools
from yarl import URL

from common.clock import Clock, monotonic_reader

CONNECT_SECONDS = 10.0
# Marimo (uvicorn) keeps idle connections for a long time in edit mode; a
# connection idle longer than this is closed instead of reused, so a peer's
# own keep-alive timeout never races a request.
MAX_IDLE_SECONDS = 30.0
MAX_IDLE_PER_ADDRESS = 64


class Address(NamedTuple):
    host: str
    port: int
    prefix: str  # path of the Marimo URL, prepended to every request target
    host_header: str
    origin: str = ""  # as Marimo names itself in an absolute redirect (headers.response_pairs)


@lru_cache(maxsize=1024)
def address_of(marimo_url: str) -> Address | None:
    """Where a `marimo_url` points, or None if the express lane cannot go there
    (anything but plain http)."""
    url = URL(marimo_url)
    if url.scheme != "http" or not url.host or url.port is None:
        return None
    authority = url.raw_authority
    return Address(url.host, url.port, url.raw_path.rstrip("/"), authority, f"http://{authority}")


class KnownHead(NamedTuple):
    raw: bytes  # the head as upstream sent it, through its blank line
    client: bytes  # the head the relay sent its client for it
    length: int  # its Content-Length


class Relay(Protocol):
    """What an upstream connection reports to the exchange using it."""

    def response_head(
        self, status: int, reason: bytes, headers: list[tuple[str, str]]
    ) -> bytes | None:
        """Start the response; returns the head sent to the client when the
        same upstream head may be relayed with `response_known` next time."""

    def response_known(self, client_head: bytes, body: bytes) -> bool:
        """Start a response whose head is known; False if this exchange
        cannot take it that way (the parser then takes the response)."""

    def response_body(self, data: bytes) -> None: ...
    def response_end(self, reusable: bool) -> None: ...
    def upstream_lost(self, exc: BaseException | None) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, address: Address) -> None:
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.relay: Relay | None = None
        self.idle_since = 0.0  # on the pool's clock
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[str, str]] = []
        self._reason = b""
        self._interim = False
        self._in_message = False
        self._head: bytes | None = None  # raw head of the response being parsed
        self._known: KnownHead | None = None
        self._owed = 0  # body bytes still due from a response relayed as known

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, relay: Relay, data: bytes) -> None:
        self.relay = relay
        assert self.transport is not None
        self.transport.write(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        self.relay = None
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._owed:
            self._known_body(data)
            return
        if not self._in_message and self.relay is not None:
            known = self._known
            if (
                known is not None
                and data.startswith(known.raw)
                and self._known_head(self.relay, known, data)
            ):
                return
            end = data.find(b"\r\n\r\n")
            self._head = data[: end + 4] if end >= 0 else None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None
        self._fail(exc)

    def pause_writing(self) -> None:
        if self.relay is not None:
            self.relay.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.relay is not None:
            self.relay.upstream_paused(False)

    # llhttp callbacks

    def on_message_begin(self) -> None:
        if self.relay is None:
            # A response nobody asked for (bytes past the last one, or on an
            # idle connection): this connection's framing is not to be trusted.
            self._fail(None)
        self._in_message = True
        self._headers = []
        self._reason = b""

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        # 1xx interim responses (100 Continue, 103 Early Hints) are not relayed:
        # the express lane never sends Expect, and hints are only hints.
        self._interim = status < 200
        raw, self._head = self._head, None
        if self._interim or self.relay is None:
            return
        client = self.relay.response_head(status, self._reason, self._headers)
        if (
            client is not None
            and raw is not None
            and status not in (204, 304)  # bodiless whatever their Content-Length says
            and self._parser.should_keep_alive()
        ):
            length = _content_length(self._headers)
            if length is not None:
                self._known = KnownHead(raw, client, length)

    def on_body(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.response_body(data)

    def on_message_complete(self) -> None:
        self._in_message = False
        if not self._interim:
            self._end(reusable=self._parser.should_keep_alive())

    # Responses with a known head: framed by their Content-Length alone

    def _known_head(self, relay: Relay, known: KnownHead, data: bytes) -> bool:
        body = data[len(known.raw) :]
        if len(body) > known.length:
            return False  # more than one response: the parser's to judge
        if not relay.response_known(known.client, body):
            return False
        self._owed = known.length - len(body)
        if not self._owed:
            self._end(reusable=True)
        return True

    def _known_body(self, data: bytes) -> None:
        body = data[: self._owed]
        self._owed -= len(body)
        if self.relay is not None:
            self.relay.response_body(body)
        if not self._owed:
            # Bytes past the body were never asked for: not reused.
            self._end(reusable=len(body) == len(data))

    def _end(self, *, reusable: bool) -> None:
        relay, self.relay = self.relay, None
        if relay is not None:
            relay.response_end(reusable)

    def _fail(self, exc: BaseException | None) -> None:
        self._owed = 0
        relay, self.relay = self.relay, None
        if self.transport is not None:
            self.transport.close()
        if relay is not None:
            relay.upstream_lost(exc)


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    """The one Content-Length among `headers` (llhttp has checked it), else None."""
    values = [value for name, value in headers if name.lower() == "content-length"]
    return int(values[0]) if len(values) == 1 and values[0].strip().isdigit() else None


class UpstreamPool:
    def __init__(self, clock: Clock) -> None:
        self._idle: dict[Address, list[UpstreamConnection]] = {}
        # How long a connection has idled (MAX_IDLE_SECONDS): the proxy's clock.
        self._monotonic = monotonic_reader(clock)

    def take(self, address: Address) -> UpstreamConnection | None:
        """A kept-alive connection to `address`, if one is waiting."""
        idle = self._idle.get(address)
        now = self._monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable and now - conn.idle_since < MAX_IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def connect(self, address: Address) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConnection(address), address.host, address.port),
            CONNECT_SECONDS,
        )
        return conn

    def give_back(self, conn: UpstreamConnection) -> None:
        if not conn.usable or conn.transport is None:  # (the second for mypy)
            return
        idle = self._idle.setdefault(conn.address, [])
        if len(idle) >= MAX_IDLE_PER_ADDRESS:
            conn.close()
            return
        conn.relay = None
        conn.idle_since = self._monotonic()
        conn.transport.resume_reading()  # in case the last client was slow
        idle.append(conn)

    def prune(self) -> None:
        """Close and forget idle connections that died or idled too long, and
        addresses left with none (notebooks stopped since)."""
        now = self._monotonic()
        for address, idle in list(self._idle.items()):
            keep = [c for c in idle if c.usable and now - c.idle_since < MAX_IDLE_SECONDS]
            for conn in idle:
                if conn not in keep:
                    conn.close()
            if keep:
                self._idle[address] = keep
            else:
                del self._idle[address]

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
