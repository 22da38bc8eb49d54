"""The proxy login token: minted by the API's `open`, checked by the proxy.

HS256 pinned on both sides; `kid` selects the key so keys rotate (the first
configured key signs, every configured key verifies)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

ALGORITHM = "HS256"
ISSUER = "notebooks-api"
AUDIENCE = "notebooks-proxy"
LIFETIME = timedelta(minutes=5)
# How far the API's clock may run ahead of the proxy's (they are different
# hosts in production) before a fresh link looks issued in the future.
CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionClaims:
    member_id: str
    token_id: str  # the API token that asked; revoking it ends the proxy session
    notebook_id: str
    session_id: str
    mode: str  # "edit" | "view"
    issued_at: datetime
    expires_at: datetime
    jti: str


class InvalidSessionToken(Exception):
    """The token is unusable; `reason` is a short stable word for logs and metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def mint(
    keys: tuple[tuple[str, str], ...],
    *,
    member_id: str,
    token_id: str,
    notebook_id: str,
    session_id: str,
    mode: str,
    now: datetime,
) -> tuple[str, SessionClaims]:
    kid, secret = keys[0]
    now = now.replace(microsecond=0)  # the JWT's times are whole seconds, so are the claims'
    claims = SessionClaims(
        member_id=member_id,
        token_id=token_id,
        notebook_id=notebook_id,
        session_id=session_id,
        mode=mode,
        issued_at=now,
        expires_at=now + LIFETIME,
        jti=secrets.token_urlsafe(16),
    )
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": member_id,
        "tok": token_id,
        "nbk": notebook_id,
        "sid": session_id,
        "mode": mode,
        "iat": int(now.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
        "jti": claims.jti,
    }
    token = jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": kid})
    return token, claims


def verify(token: str, keys: tuple[tuple[str, str], ...], *, now: datetime) -> SessionClaims:
    """Check signature, pinned algorithm, issuer, audience and expiry."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidSessionToken("malformed", "The link is not a valid token.") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidSessionToken("algorithm", "The link was signed with a refused algorithm.")
    secret = dict(keys).get(str(header.get("kid", "")))
    if secret is None:
        raise InvalidSessionToken("unknown_key", "The link was signed with an unknown key.")
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": ["exp", "iat", "jti", "sub", "aud", "iss", "tok"],
                "verify_exp": False,
                "verify_iat": False,  # PyJWT's reads the wall clock: checked below
            },
        )
    except jwt.InvalidAudienceError:
        raise InvalidSessionToken("audience", "The link is not meant for this proxy.") from None
    except jwt.InvalidIssuerError:
        raise InvalidSessionToken("issuer", "The link was not issued by this service.") from None
    except jwt.InvalidSignatureError:
        raise InvalidSessionToken("signature", "The link's signature does not match.") from None
    except jwt.PyJWTError:
        raise InvalidSessionToken("malformed", "The link is not a valid token.") from None
    # Expiry and issue time checked against the injected clock, not the wall
    # clock; the API's clock may run ahead of ours by up to CLOCK_SKEW.
    try:
        issued, expires = int(payload["iat"]), int(payload["exp"])
    except (TypeError, ValueError):
        raise InvalidSessionToken("malformed", "The link is missing claims.") from None
    if issued > (now + CLOCK_SKEW).timestamp():
        raise InvalidSessionToken("not_yet_valid", "The link was issued in the future.")
    if int(now.timestamp()) >= expires:
        raise InvalidSessionToken("expired", "The link has expired; open the notebook again.")
    try:
        return SessionClaims(
            member_id=str(payload["sub"]),
            token_id=str(payload["tok"]),
            notebook_id=str(payload["nbk"]),
            session_id=str(payload["sid"]),
            mode=str(payload["mode"]),
            issued_at=datetime.fromtimestamp(payload["iat"], tz=now.tzinfo),
            expires_at=datetime.fromtimestamp(payload["exp"], tz=now.tzinfo),
            jti=str(payload["jti"]),
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidSessionToken("malformed", "The link is missing claims.") from None
