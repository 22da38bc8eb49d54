"""Durations as members set them and read them back (timeouts, auto-stop
reasons, the history of edits)."""

from __future__ import annotations


def duration(seconds: int) -> str:
    """A timeout in the console's words: 1 h, 10 min, 150 s."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def capped(timeout: int, cap: int) -> int:
    """The timeout that applies: a notebook's own under its organization's
    cap. 0 is never for a timeout and no cap for a cap."""
    if cap == 0:
        return timeout
    return cap if timeout == 0 else min(timeout, cap)
