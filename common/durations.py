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
