"""Header filtering as small pure functions (Home Assistant ingress style)."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

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
# client library sets for the upstream connection itself.
_REQUEST_DROP = frozenset(
    {
        "authorization",
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    }
)
# Upstream identity is ours to hide; nosniff is set by us. An upstream CSP is
# kept: ours is added beside it and browsers enforce both.
_RESPONSE_DROP = frozenset({"server", "x-powered-by", "x-content-type-options"})


def connection_tokens(headers: CIMultiDictProxy[str]) -> set[str]:
    """Header names listed in `Connection` are hop-by-hop too."""
    out: set[str] = set()
    for value in headers.getall("Connection", []):
        out.update(t.strip().lower() for t in value.split(",") if t.strip())
    return out


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


def strip_cookie(cookie_header: str, name: str) -> str:
    """Remove our session cookie from a `Cookie` header, keep the others."""
    kept = [
        part.strip()
        for part in cookie_header.split(";")
        if part.strip() and part.strip().split("=", 1)[0].strip() != name
    ]
    return "; ".join(kept)


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    cookie_name: str,
    marimo_token: str,
    client_ip: str | None,
    proto: str,
    host: str,
    websocket: bool = False,
) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _REQUEST_DROP | connection_tokens(incoming)
    if websocket:
        drop = drop | WEBSOCKET_HANDSHAKE | {"origin"}
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in incoming.items():
        lower = key.lower()
        if lower in drop:
            continue
        if lower == "cookie":
            value = strip_cookie(value, cookie_name)
            if not value:
                continue
        out.add(key, value)
    prior = incoming.get("X-Forwarded-For")
    if client_ip:
        out["X-Forwarded-For"] = f"{prior}, {client_ip}" if prior else client_ip
    out["X-Forwarded-Proto"] = proto
    out["X-Forwarded-Host"] = host
    out["Authorization"] = f"Bearer {marimo_token}"
    return out


def downstream_response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _RESPONSE_DROP | connection_tokens(upstream)
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in upstream.items():
        if key.lower() not in drop:
            out.add(key, value)
    return out


def security_headers(frame_ancestors: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": f"frame-ancestors {frame_ancestors}",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
