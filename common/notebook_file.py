"""A notebook's file as the platform carries it: one a member brought to
start from (api/sources.py, migration 0016), and the copy the reconciler
keeps of each notebook (migration 0022, docs/api.md "A notebook's file")."""

from __future__ import annotations

# What a notebook's file may weigh to be carried: far above a hand-written
# notebook, and within what a Kubernetes Secret carries to the seeding pod.
MAX_BYTES = 512 * 1024

# The versions kept of a notebook's file: a new one each time a copy finds
# the file changed, the oldest dropped past this many (migration 0022).
VERSIONS = 20

# Why a copy was or was not kept (a metric's labels).
KEPT = "kept"
UNREADABLE = "unreadable"  # none yet, or nothing served it (Kubernetes: no ready Marimo)
TOO_LARGE = "too_large"
NOT_TEXT = "not_text"  # not UTF-8, or a NUL (which PostgreSQL text cannot hold)
FAILED = "failed"  # the read or the write raised
OUTCOMES = (KEPT, UNREADABLE, TOO_LARGE, NOT_TEXT, FAILED)


def keepable(data: bytes | None, max_bytes: int = MAX_BYTES) -> tuple[str | None, str]:
    """The text to keep of a file as read (`max_bytes` + 1 bytes at most),
    or None and why not."""
    if data is None:
        return None, UNREADABLE
    if len(data) > max_bytes:
        return None, TOO_LARGE
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, NOT_TEXT
    if "\x00" in text:
        return None, NOT_TEXT
    return text, KEPT
