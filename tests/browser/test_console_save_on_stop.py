"""What a member typed last survives a Stop (headless Chromium, the whole
stack with real Sail and Marimo; fixtures in conftest.py).

Marimo's editor saves 1 s after the last keystroke, and only while its
socket is open. Before the save window, a Stop ended the editor's socket at
`stopping` (the proxy), unloaded the frame (the console) and stopped Marimo
at once (the worker): the durability audit lost what was typed in the last
0.3 s before a Stop, every time. Here the member types and presses Stop at
once; the file on disk must hold it.

The stack's data directory is outside /tmp (`stack_saving`): Marimo's
editor never saves a notebook file under /tmp.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import close_page, create_notebook_via_api, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
START_SECONDS = 120  # worker pickup + Sail + Marimo on a busy 2-core machine
MARK = "typed_just_before_stop = 4242"


def notebook_file(stack: Any, nb_id: str) -> str:
    return (stack.data_dir / "notebooks" / nb_id / "notebook.py").read_text()


def test_what_was_typed_just_before_stop_is_saved(browser: Any, stack_saving: Any) -> None:
    stack = stack_saving
    nb_id = create_notebook_via_api(stack, "Typed on")
    code, _ = stack.call("POST", f"/workloads/notebooks/{nb_id}/start")
    assert code == 202
    stack.wait_provisioned(nb_id, START_SECONDS)
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
        frame = page.frame_locator("#open-frame")
        frame.locator(".cm-editor").first.wait_for(timeout=60_000)
        page.locator("#open-status .status-running").wait_for(timeout=15_000)
        assert MARK not in notebook_file(stack, nb_id)

        # A new cell, typed into, and Stop at once (the owner's own: no question).
        frame.get_by_role("button", name="Python").first.click()
        frame.locator(".cm-editor").last.locator(".cm-content").click()
        page.keyboard.type(MARK)
        page.get_by_role("button", name="Stop notebook").click()

        # The editor stays while the notebook stops, then goes.
        page.locator("#open-status .status-stopping").wait_for(timeout=15_000)
        assert page.locator("#open-frame").is_visible()
        assert page.locator("#open-message").inner_text() == (
            "Stopping: the editor saves what was typed last, then closes."
        )
        page.locator("#open-status .status-stopped").wait_for(timeout=60_000)
        page.locator("#open-frame").wait_for(state="hidden")
        assert page.get_by_role("button", name="Start notebook").is_visible()
        # The Stop pressed is gone: its focus went to the page's title, not nowhere.
        assert page.evaluate("document.activeElement.id") == "open-title"
        assert MARK in notebook_file(stack, nb_id)
    finally:
        close_page(page)
