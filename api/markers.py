"""Opaque, tamper-evident pagination markers.

A marker is base64url(JSON [scope, created_at, id]) + "." + base64url(HMAC-SHA256
truncated to 16 bytes) under settings.secret_key. The scope names the list and
the caller (e.g. "notebooks:<member>:<team>"), so a marker forged, altered, or
taken from another list, member or organization is refused with a 400 rather
than leaking rows or failing later."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from api.errors import BadRequest

_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Markers:
    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"marker:" + secret_key.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, scope: str, created_at: datetime, row_id: str) -> str:
        payload = json.dumps(
            [scope, created_at.isoformat(), row_id], separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, scope: str, marker: str) -> tuple[datetime, str]:
        bad = BadRequest(
            "marker is not a marker this list handed out.", code="invalid_marker", field="marker"
        )
        body, sep, mac = marker.partition(".")
        if not sep or len(marker) > 512:
            raise bad
        try:
            payload = _unb64(body)
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            raise bad from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise bad
        try:
            got_scope, at, row_id = json.loads(payload)
            when = datetime.fromisoformat(at)
        except (ValueError, TypeError):
            raise bad from None
        if got_scope != scope or not isinstance(row_id, str):
            raise bad
        return when, row_id
