"""The reason the proxy closes a browser's socket with when Marimo's message
is over MARIMO_MESSAGE_LIMIT must stop Marimo's page from reconnecting: it
would be replayed the same message and closed again, forever. Pinned against
the installed Marimo (its Python enum and its bundled page), so an upgrade
that changes either fails here until someone looks again."""

from __future__ import annotations

import re
from pathlib import Path

import marimo
from marimo._server.codes import WebSocketCloseReason

from proxy.forward import TOO_BIG_REASON

ASSETS = Path(marimo.__file__).parent / "_static" / "assets"


def test_the_too_big_reason_is_one_of_marimos_own() -> None:
    assert WebSocketCloseReason(TOO_BIG_REASON)


def test_marimos_page_stops_reconnecting_on_the_too_big_reason() -> None:
    # Its close handler maps reasons to outcomes; `terminal` with
    # `closeTransport` closes the reconnecting socket for good.
    terminal = re.compile(
        r"case`" + re.escape(TOO_BIG_REASON) + r"`:return\{kind:`terminal`,"
        r"status:\{[^{}]*\},closeTransport:!0\}"
    )
    bundles = [p.read_text() for p in ASSETS.glob("*.js")]
    assert any(terminal.search(text) for text in bundles if TOO_BIG_REASON in text)
