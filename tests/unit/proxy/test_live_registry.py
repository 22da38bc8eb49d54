"""The proxy's registry of open connections: WebSockets being opened count
toward a member's cap until registered (NOTEBOOKS_PROXY_MAX_WEBSOCKETS_PER_MEMBER)."""

from __future__ import annotations

from proxy.cookie import ProxySession
from proxy.live import Live, Registry


def test_a_websocket_being_opened_counts_until_it_is_registered() -> None:
    registry = Registry()
    with registry.opening("ANN") as opened:
        assert registry.websockets_of("ANN") == 1
        opened()
        opened()  # once only
        assert registry.websockets_of("ANN") == 0
    with registry.opening("ANN"):
        assert registry.websockets_of("ANN") == 1
    assert registry.websockets_of("ANN") == 0 and registry.websockets_of("BOB") == 0


def test_open_websockets_are_counted_by_member_as_they_come_and_go() -> None:
    registry = Registry()
    session = ProxySession(
        member_id="ANN", token_id="T", notebook_id="NB", session_id="S", mode="edit", expires_at=0
    )
    sockets = [Live(session, lambda _: None, 0.0, websocket=True) for _ in range(3)]
    page = Live(session, lambda _: None, 0.0)  # an HTTP request: not counted
    for live in (*sockets, page):
        registry.add(live)
    registry.add(sockets[0])  # added twice: counted once
    assert registry.websockets_of("ANN") == 3
    registry.discard(sockets[0])
    registry.discard(sockets[0])  # discarded twice: counted off once
    registry.discard(page)
    assert registry.websockets_of("ANN") == 2
    for live in sockets[1:]:
        registry.discard(live)
    assert registry.websockets_of("ANN") == 0
