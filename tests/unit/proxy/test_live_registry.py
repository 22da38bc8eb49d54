"""The proxy's registry of open connections: WebSockets being opened count
toward a member's cap until registered (NOTEBOOKS_PROXY_MAX_WEBSOCKETS_PER_MEMBER)."""

from __future__ import annotations

from proxy.live import Registry


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
