"""Proxied connections that are still open, so that a change of access,
session or status (NOTIFY, or the periodic re-check) can end them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from common.clock import Clock
from proxy.access import Target
from proxy.cookie import ProxySession

# The reason a WebSocket is ended with when its proxy shuts down (a deploy).
SHUTDOWN = "shutdown"
# The reason a connection is ended with when no re-check could read its
# access for too long (the database down, slow or out of connections): the
# proxy fails closed (app._recheck).
UNCONFIRMED = "unconfirmed"


@dataclass(eq=False)
class Live:
    session: ProxySession
    # called with the reason ("access" | "edit" | "owner" | "session" | "status" | UNCONFIRMED;
    # SHUTDOWN for WebSockets)
    stop: Callable[[str], None]
    # When its access was last read from the database and found good, on
    # the proxy's monotonic clock (Target.checked_at).
    confirmed: float
    websocket: bool = False
    # A WebSocket's: when its browser last sent a frame (pongs included), on
    # the proxy's monotonic clock; what its heartbeat goes by (forward._watch).
    heard: float = 0.0


def read_at(target: Target, clock: Clock) -> float:
    """When `target` was read (Live.confirmed of a connection it admits)."""
    return clock.monotonic() if target.checked_at is None else target.checked_at


def lapsed(session: ProxySession, target: Target, now: datetime) -> bool:
    """The cookie's 12 h are up, or the API token that opened it expired."""
    return session.expired(now) or target.token_expired(now)


def refusal(
    session: ProxySession, target: Target | None, now: datetime, *, login: bool = False
) -> str | None:
    """Why `session` may no longer reach its notebook (or, `login`, may not
    begin to), or None if it may."""
    if target is None or not target.can_view:
        return "access"
    if session.mode == "edit" and not target.can_edit:
        return "edit"  # may still view: told to open it again
    if lapsed(session, target, now):
        return "session"
    if not target.serving and not _saving(session, target, now, login):
        return "status"
    if target.session_id != session.session_id:
        return "session"
    if session.mode == "edit" and target.owner_present(now):
        return "owner"  # the owner is back: they edit, others view (DESIGN §5)
    return None


def _saving(session: ProxySession, target: Target, now: datetime, login: bool) -> bool:
    """An editor already open when a stop began goes on for its save window:
    Marimo's editor saves what was typed last 1 s after the last keystroke,
    only while its socket is open (ended at `stopping`, that was lost). A
    viewer has nothing to save; nobody logs in to a notebook stopping."""
    return session.mode == "edit" and not login and target.saving(now)


class Registry:
    def __init__(self) -> None:
        self._live: set[Live] = set()
        # WebSockets being opened (upstream connecting), by member: counted
        # with the open ones, so handshakes at once cannot pass a cap together.
        self._opening: Counter[str] = Counter()
        # Open WebSockets by member: counted as they come and go, not by a
        # walk of every connection on each handshake (a deploy's reconnects).
        self._open: Counter[str] = Counter()

    def websockets_of(self, member_id: str) -> int:
        """The member's WebSockets open or being opened."""
        return self._open[member_id] + self._opening[member_id]

    @contextmanager
    def opening(self, member_id: str) -> Iterator[Callable[[], None]]:
        """A WebSocket of the member's being opened: counted until the
        callable it yields is called (the WebSocket is registered) or the
        block ends (it failed)."""
        self._opening[member_id] += 1
        counted = True

        def done() -> None:
            nonlocal counted
            if counted:
                counted = False
                self._opening[member_id] -= 1
                if not self._opening[member_id]:
                    del self._opening[member_id]

        try:
            yield done
        finally:
            done()

    def add(self, live: Live) -> Live:
        if live.websocket and live not in self._live:
            self._open[live.session.member_id] += 1
        self._live.add(live)
        return live

    def discard(self, live: Live) -> None:
        if live.websocket and live in self._live:
            member = live.session.member_id
            self._open[member] -= 1
            if not self._open[member]:
                del self._open[member]
        self._live.discard(live)

    def __len__(self) -> int:
        return len(self._live)

    def websockets(self) -> list[Live]:
        return [x for x in self._live if x.websocket]

    def matching(self, payload: str) -> list[Live]:
        """Connections a NOTIFY payload ('notebook:X', 'member:Y', '*') concerns."""
        kind, _, ident = payload.partition(":")
        if kind == "notebook":
            return [x for x in self._live if x.session.notebook_id == ident]
        if kind == "member":
            return [x for x in self._live if x.session.member_id == ident]
        return list(self._live)
