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
from urllib.parse import urlencode

import aiohttp
from aiohttp import WSMsgType
from yarl import URL

from proxy.policy import SESSION_ID_PARAM

NO_SESSION = "MARIMO_NO_SESSION"  # marimo._server.codes.WebSocketCloseReason
OPENER_PREFIX = "opener-"  # never an editor's or a viewer's session id


def no_session(msg: aiohttp.WSMessage) -> bool:
    """Marimo's answer to a kiosk when there is no session to watch."""
    return msg.type == WSMsgType.CLOSE and msg.extra == NO_SESSION


def opener_query() -> str:
    """The `/ws` query an editor's page opens the notebook's session with,
    under a session id of the proxy's. Nothing of the viewer's query is kept:
    its `file` could name a new file (a session and a kernel each, as many as
    asked), and any other key would become the session's `mo.query_params()`.
    Marimo serves one file; without `file` it takes that one."""
    return urlencode([(SESSION_ID_PARAM, OPENER_PREFIX + secrets.token_hex(8))])


async def open_session(
    client: aiohttp.ClientSession, url: URL, headers: Any, timeout: float, max_msg_size: int
) -> None:
    """Open Marimo's session for the notebook at `url` and leave it orphaned.
    Whatever Marimo answers first (kernel-ready once the session exists, or a
    refusal) ends the visit: the viewer's retry shows the outcome."""
    async with client.ws_connect(url, headers=headers, max_msg_size=max_msg_size) as ws:
        await ws.receive(timeout=timeout)
