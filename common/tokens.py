"""Member API tokens: `nbk_` + 32 random url-safe characters. Only a SHA-256
of the whole token is stored; the first 12 characters are shown as a prefix."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "nbk_"
PREFIX_LENGTH = 12
# A token may be given a life at creation (API `expiresInSeconds`, CLI `--expires-in`).
MIN_LIFETIME_SECONDS = 300
MAX_LIFETIME_SECONDS = 366 * 86400


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def hash_token(token: str) -> bytes:
    # Tokens carry 192 random bits, so a fast hash is enough (no salt needed).
    return hashlib.sha256(token.encode()).digest()


def token_prefix(token: str) -> str:
    return token[:PREFIX_LENGTH]
