"""The query the proxy opens a Marimo session with, for a viewer who came first."""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import WSMessage, WSMsgType

from proxy.viewer_session import OPENER_PREFIX, no_session, opener_query


def test_opener_query_is_an_editors_under_an_id_of_the_proxys_and_nothing_else() -> None:
    # Nothing of the viewer's query: no `file` (a new file would be a new
    # kernel), no key that would become the session's query params.
    ((key, opener_id),) = parse_qsl(opener_query())
    assert key == "session_id"
    assert opener_id.startswith(OPENER_PREFIX) and len(opener_id) > len(OPENER_PREFIX) + 8
    assert opener_query() != opener_query()  # fresh each time


def test_no_session_is_only_marimos_close_for_a_missing_session() -> None:
    assert no_session(WSMessage(WSMsgType.CLOSE, 1000, "MARIMO_NO_SESSION"))
    assert not no_session(WSMessage(WSMsgType.CLOSE, 1000, "MARIMO_NO_SESSION_ID"))
    assert not no_session(WSMessage(WSMsgType.TEXT, '{"op": "kernel-ready"}', None))
