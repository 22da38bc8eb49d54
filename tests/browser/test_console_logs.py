"""A notebook's logs on its page (headless Chromium, the whole stack with
real Sail and Marimo; fixtures in conftest.py): read while it runs when the
member asks, by a worker, and shown; kept from its stop. Not a team
viewer's: no button for them."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import (
    close_page,
    create_notebook_via_api,
    member_with_token,
    sign_in,
    team_with,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
START_SECONDS = 120  # worker pickup + Sail + Marimo on a busy 2-core machine
SAIL_STARTED = "Starting the Spark Connect server"


def test_a_member_reads_a_running_notebooks_logs_and_a_viewer_cannot(
    browser: Any, stack: Any
) -> None:
    nb_id = create_notebook_via_api(stack, "Logged")
    code, _ = stack.call("POST", f"/workloads/notebooks/{nb_id}/start")
    assert code == 202
    stack.wait_provisioned(nb_id, START_SECONDS)
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        toggle = page.locator(f"[data-focus-key='{nb_id}:Logs']")
        assert toggle.inner_text() == "Show logs"
        toggle.click()
        assert toggle.inner_text() == "Hide logs"
        assert toggle.get_attribute("aria-expanded") == "true"
        when = page.locator("#logs-when")
        when.get_by_text("None read yet").wait_for(timeout=10_000)
        page.get_by_role("button", name="Read them now").click()
        # A worker reads them; the panel waits for it and shows its read.
        page.locator("#logs-sail").get_by_text(SAIL_STARTED).wait_for(timeout=30_000)
        when.get_by_text("Reading them again").wait_for(state="detached", timeout=30_000)
        assert when.inner_text().startswith("Read ")
        assert page.locator("#logs-error").is_hidden()

        # Stopped, the page says what the stop read, and offers no read.
        code, _ = stack.call("POST", f"/workloads/notebooks/{nb_id}/stop")
        assert code == 202
        page.locator("#nb-status .status-stopped").wait_for(timeout=60_000)
        toggle.click()
        assert page.locator("#nb-logs").is_hidden()
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        page.locator("#logs-sail").get_by_text(SAIL_STARTED).wait_for(timeout=10_000)
        assert page.get_by_role("button", name="Read them now").is_hidden()
    finally:
        close_page(page)

    # A team viewer sees the notebook and no logs.
    viewer, token = member_with_token(stack, "viewer@example.com", "Vera Viewer")
    team = team_with(stack, "readers", viewer["id"], "viewer")
    code, _ = stack.call("POST", f"/workloads/notebooks/{nb_id}/teams", {"teamIds": [team]})
    assert code == 200
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        page.locator("#nb-facts").get_by_text("Owner").wait_for(timeout=10_000)
        assert page.get_by_role("button", name="Show logs").count() == 0
    finally:
        close_page(page)
