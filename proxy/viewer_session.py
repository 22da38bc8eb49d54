"""A viewer can only watch a Marimo session that exists.

Marimo (edit mode) attaches a kiosk consumer only to a session already open:
while nobody has opened the notebook since its server started, it closes a
viewer's `/ws` at once with `MARIMO_NO_SESSION`, and its page gives up
("kernel not found"). So a team viewer arriving before any editor would see
nothing. When that happens the proxy opens the session the way the editor's
page would (a plain `/ws` under an id of its own), waits for Marimo's
kernel-ready, and leaves. The session stays, orphaned (Marimo keeps an
orphaned edit session for as long as its server runs, as it does when an
editor closes the tab); the viewer's kiosk attaches to it; and the next
editor to open the notebook resumes it, as after a reload.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import WSMsgType

from proxy.policy import SESSION_ID_PARAM

NO_SESSION = "MARIMO_NO_SESSION"  # marimo._server.codes.WebSocketCloseReason
OPENER_PREFIX = "opener-"  # never an editor's or a viewer's session id


def no_session(msg: aiohttp.WSMessage) -> bool:
    """Marimo's answer to a kiosk when there is no session to watch."""
    return msg.type == WSMsgType.CLOSE and msg.extra == NO_SESSION


def opener_query(query_string: str) -> str:
    """The viewer's `/ws` query as an editor's page would send it: not a
    kiosk, under a session id of the proxy's (the `file` key, if any, kept)."""
    pairs = [
        (k, v)
        for k, v in parse_qsl(query_string, keep_blank_values=True)
        if k not in ("kiosk", SESSION_ID_PARAM)
    ]
    pairs.append((SESSION_ID_PARAM, OPENER_PREFIX + secrets.token_hex(8)))
    return urlencode(pairs)


async def open_session(
    client: aiohttp.ClientSession, url: str, headers: Any, timeout: float
) -> None:
    """Open Marimo's session for the notebook at `url` and leave it orphaned.
    Whatever Marimo answers first (kernel-ready once the session exists, or a
    refusal) ends the visit: the viewer's retry shows the outcome."""
    async with client.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        await ws.receive(timeout=timeout)
