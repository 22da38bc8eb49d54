"""The proxy's own session cookie: an HMAC-signed record of who logged in
(member, and the API token that asked) to which notebook session, in which
mode, until when.

It is not a JWT on purpose: nothing but this proxy ever reads it, so the
smallest format with one fixed MAC (no algorithm header to confuse) wins.
The key is derived from `settings.secret_key` with a purpose label, so the
same secret signing something else can never produce a valid cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from common.settings import Settings

COOKIE_NAME = "notebooks_proxy_session"
HOST_COOKIE_NAME = "__Host-" + COOKIE_NAME
LIFETIME = timedelta(hours=12)
# A sealed session is about 220 characters (five ids, a mode, a time, a MAC);
# anything much longer is not ours, and is refused before any HMAC over it.
MAX_SEALED_CHARS = 1024
# v2 added the API token id; a v1 cookie no longer verifies (its member opens again).
_PURPOSE = b"notebooks-proxy-cookie-v2"


@dataclass(frozen=True)
class ProxySession:
    member_id: str
    token_id: str  # the API token whose `open` minted the login
    notebook_id: str
    session_id: str
    mode: str
    expires_at: int  # unix seconds

    def expired(self, now: datetime) -> bool:
        return int(now.timestamp()) >= self.expires_at


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(session: ProxySession, secret: str) -> str:
    body = json.dumps(
        {
            "m": session.member_id,
            "t": session.token_id,
            "n": session.notebook_id,
            "s": session.session_id,
            "o": session.mode,
            "e": session.expires_at,
        },
        separators=(",", ":"),
    ).encode()
    payload = _b64(body)
    mac = hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def unseal(value: str, secret: str) -> ProxySession | None:
    """The session in a cookie value, or None when it is forged or garbled."""
    if len(value) > MAX_SEALED_CHARS or not value.isascii():
        # Ours are short base64url; aiohttp hands odd bytes on as surrogates.
        return None
    payload, sep, mac = value.partition(".")
    if not sep:
        return None
    expected = hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        data = json.loads(_unb64(payload))
        session = ProxySession(
            member_id=str(data["m"]),
            token_id=str(data["t"]),
            notebook_id=str(data["n"]),
            session_id=str(data["s"]),
            mode=str(data["o"]),
            expires_at=int(data["e"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.mode in ("edit", "view") else None


def cookie_name(settings: Settings) -> str:
    """`__Host-…` when each notebook has its own host and cookies are Secure:
    browsers then take that name only host-only, on Path=/, from the host
    itself, so a page of one notebook cannot plant a cookie (`Domain=` the
    shared parent) that another notebook's host would be sent."""
    if settings.proxy_notebook_url and settings.cookie_secure:
        return HOST_COOKIE_NAME
    return COOKIE_NAME


def cookie_path(settings: Settings, notebook_id: str) -> str:
    """`/` on a notebook's own host (which serves that notebook alone, and
    `__Host-` requires it); the notebook's prefix on the shared origin."""
    return "/" if cookie_name(settings) == HOST_COOKIE_NAME else f"/notebooks/{notebook_id}/"


class CookieCache:
    """Unsealing costs an HMAC and a JSON parse; a browser sends the same
    value on every request, so remember the last few thousand sessions.
    Only sessions: values that unseal to nothing are anyone's to invent, and
    remembering them would let a client fill the cache (and memory) with
    garbage and push real sessions out."""

    def __init__(self, secret: str, size: int = 4096) -> None:
        self._secret = secret
        self._size = size
        self._seen: dict[str, ProxySession] = {}

    @property
    def remembered(self) -> int:
        return len(self._seen)

    def unseal(self, value: str) -> ProxySession | None:
        if not value:
            return None
        try:
            return self._seen[value]
        except KeyError:
            pass
        session = unseal(value, self._secret)
        if session is None:
            return None
        if len(self._seen) >= self._size:
            self._seen.pop(next(iter(self._seen)))
        self._seen[value] = session
        return session
