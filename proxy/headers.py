"""Header filtering as small pure functions (Home Assistant ingress style)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.policy import SESSION_ID_HEADER, viewer_session_id

# RFC 9110 §7.6.1 plus the de-facto ones; WebSocket handshake headers are
# rebuilt by the client library, so they never pass through either.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
WEBSOCKET_HANDSHAKE = frozenset(
    h.lower()
    for h in (
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Accept",
    )
)
# Never forwarded upstream: the browser's credentials for us, and what the
# client library sets for the upstream connection itself. No cookie at all:
# Marimo needs none (the proxy's token is the `Authorization` header), and it
# shows a request's cookies to notebook code (`mo.app_meta().request`), so a
# notebook's author would read its viewers' other cookies on our domain.
_REQUEST_DROP = frozenset(
    {
        "authorization",
        "cookie",
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    }
)
# Upstream identity is ours to hide; nosniff and the referrer policy are set
# by us. An upstream CSP is kept: ours is added beside it and browsers
# enforce both.
_RESPONSE_DROP = frozenset({"server", "x-powered-by", "x-content-type-options", "referrer-policy"})
_SESSION_ID = SESSION_ID_HEADER.lower()
# Never as a viewer sent it: Marimo serves `/public/*` from the directory of
# the notebook this header names, loading (and, in edit mode, registering)
# any path, so a viewer could read another notebook's `public/` files. It is
# pinned to the notebook's own file (the runtime records its path), or
# dropped when no path is known (a row from before: Marimo's 404). An
# editor's is kept: their kernel runs code that reads those files anyway.
_NOTEBOOK_ID = "x-notebook-id"


# Never dropped for being named in `Connection`: the message's framing. A
# `Connection: Content-Length` that took it away would leave the body bytes
# the express lane relays as they came to be read upstream as a request of
# their own (smuggled past the policy), or a response without its length.
_FRAMING = frozenset({"content-length"})


def connection_tokens(headers: Sequence[tuple[str, str]]) -> set[str]:
    """Header names listed in `Connection` are hop-by-hop too (its framing aside)."""
    out: set[str] = set()
    for key, value in headers:
        if key.lower() == "connection":
            out.update(t.strip().lower() for t in value.split(",") if t.strip())
    return out - _FRAMING


def cookie_value(cookie_header: str, name: str) -> str:
    """One cookie's value from a `Cookie` header (the first, as browsers send
    the most specific path first); cheaper than a full parse on every request.
    Our own cookie's value never needs quoting."""
    if name not in cookie_header:
        return ""
    for part in cookie_header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip() == name:
            return value.strip()
    return ""


def marimo_cookie(name: str) -> bool:
    """Marimo's own login cookie: `session`, `session_<port>` or
    `session_<port>_<base url>` (marimo/_server/api/auth.py). It is worth
    Marimo's token for 14 days and outlives the member's access, so it never
    reaches a browser; the proxy authenticates every request with the token."""
    return name == "session" or name.startswith("session_")


def _set_cookie_name(value: str) -> str:
    return value.split("=", 1)[0].strip()


def request_pairs(
    incoming: Sequence[tuple[str, str]],
    *,
    marimo_token: str,
    client_ip: str | None,
    proto: str,
    host: str,
    websocket: bool = False,
    viewer: bool = False,
    notebook_path: str | None = None,
) -> list[tuple[str, str]]:
    """The headers Marimo gets for a request with `incoming` headers. A
    viewer's `Marimo-Session-Id` is moved to the viewers' namespace, where its
    kiosk consumer was registered (/ws)."""
    drop = HOP_BY_HOP | _REQUEST_DROP | connection_tokens(incoming)
    if websocket:
        drop = drop | WEBSOCKET_HANDSHAKE | {"origin"}
    out: list[tuple[str, str]] = []
    prior = None
    for key, value in incoming:
        lower = key.lower()
        if lower == "x-forwarded-for" and prior is None:
            prior = value
        if lower in drop:
            continue
        if viewer and lower == _SESSION_ID:
            value = viewer_session_id(value)
        elif viewer and lower == _NOTEBOOK_ID:
            if not notebook_path:
                continue
            value = quote(notebook_path, safe="/")  # Marimo URI-decodes it
        out.append((key, value))
    if client_ip:
        out.append(("X-Forwarded-For", f"{prior}, {client_ip}" if prior else client_ip))
    out.append(("X-Forwarded-Proto", proto))
    out.append(("X-Forwarded-Host", host))
    out.append(("Authorization", f"Bearer {marimo_token}"))
    return out


def response_pairs(
    upstream: Sequence[tuple[str, str]], upstream_origin: str = ""
) -> list[tuple[str, str]]:
    """The headers a browser gets for Marimo's answer. `upstream_origin`
    (`http://host:port`, as the proxy addressed Marimo) is cut from the
    front of a `Location`: Marimo makes absolute redirects (a trailing
    slash's) from the Host it was sent, its own address, which the browser
    cannot reach and should not learn; the path alone resolves against the
    proxy's origin, as nginx's `proxy_redirect default` does."""
    drop = HOP_BY_HOP | _RESPONSE_DROP | connection_tokens(upstream)
    out = []
    for key, value in upstream:
        lower = key.lower()
        if lower in drop:
            continue
        if lower == "set-cookie" and marimo_cookie(_set_cookie_name(value)):
            continue
        if lower == "location" and upstream_origin:
            value = _local_location(value, upstream_origin)
        out.append((key, value))
    return out


def _local_location(value: str, upstream_origin: str) -> str:
    if value[: len(upstream_origin)].lower() != upstream_origin.lower():
        return value
    rest = value[len(upstream_origin) :]
    if not rest or rest[0] in "?#":
        return "/" + rest  # the origin's own path is `/`, not the page's
    return rest if rest[0] == "/" else value  # not `http://host:80` + `80/...`


def upstream_request_headers(incoming: CIMultiDictProxy[str], **kwargs: Any) -> CIMultiDict[str]:
    """`request_pairs` for aiohttp's client (which adds Host itself)."""
    return CIMultiDict(request_pairs(list(incoming.items()), **kwargs))


def downstream_response_headers(
    upstream: CIMultiDictProxy[str], upstream_origin: str = ""
) -> CIMultiDict[str]:
    return CIMultiDict(response_pairs(list(upstream.items()), upstream_origin))


def security_headers(frame_ancestors: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": f"frame-ancestors {frame_ancestors}",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
