"""Page helpers the browser tests share."""

from __future__ import annotations

from typing import Any


def set_visibility(page: Any, state: str) -> None:
    """What the browser does when the member switches tabs (headless never does)."""
    page.evaluate(
        """state => {
        Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""",
        state,
    )
