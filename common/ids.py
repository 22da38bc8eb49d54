"""Resource ids: 12 random base32 characters, matching ^[A-Z0-9]{1,20}$."""

from __future__ import annotations

import base64
import re
import secrets

ID_PATTERN = re.compile(r"^[A-Z0-9]{1,20}$")


def new_id() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode()[:12]


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None
