"""A notebook's history in the console names who acted (headless Chromium,
the whole stack; fixtures in conftest.py).

An organization admin opening a notebook that a team editor stopped, and
someone else changed since, saw the editor's member id (the admin audit):
names came only from what other pages had loaded. The history's own
`included.members` names them now.
"""

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
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def test_the_history_names_the_member_who_stopped_the_notebook(browser: Any, stack: Any) -> None:
    ann, token = member_with_token(stack, "ann@example.com", "Ann Analyst")
    team = team_with(stack, "data-eng", ann["id"], "editor")
    nb_id = create_notebook_via_api(stack, "Shared", [team])
    for action in ("start", "stop"):
        code, body = stack.call("POST", f"/workloads/notebooks/{nb_id}/{action}", token=token)
        assert code == 202, body
    # Someone else changes it after: the notebook no longer names Ann anywhere.
    code, body = stack.call("PATCH", f"/workloads/notebooks/{nb_id}", {"description": "x"})
    assert code == 200, body

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        # Straight to the notebook's page: no other page has named Ann.
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        history = page.locator("#nb-history li")
        history.filter(has_text="Stop requested").wait_for()
        stop = history.filter(has_text="Stop requested").inner_text()
        assert "Ann Analyst" in stop and ann["id"] not in stop, stop
    finally:
        close_page(page)


def test_a_disabled_owner_shows_as_disabled(browser: Any, stack: Any) -> None:
    """A disabled member's notebooks stay theirs: the list and the notebook's
    page say the owner is disabled, not someone to ask (the admin audit)."""
    ann, token = member_with_token(stack, "ann@example.com", "Ann Analyst")
    _, configs = stack.call("GET", "/workloads/configs", token=token)
    body = {"name": "Ann's", "workloadConfigId": configs["items"][0]["id"]}
    code, created = stack.call("POST", "/workloads/notebooks", body, token=token)
    assert code == 201, created
    assert stack.call("DELETE", f"/members/{ann['id']}")[0] == 204

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        row = page.locator("#notebooks-body tr", has_text="Ann's")
        row.wait_for()
        assert row.locator("td[data-label='Owner']").inner_text() == "Ann Analyst (disabled)"
    finally:
        close_page(page)


def test_a_share_and_an_edit_made_on_the_page_show_in_its_history(browser: Any, stack: Any) -> None:
    """Edits and shares are in the history (docs/api.md, History), and the
    page reads it again after them, not only when the status moves."""
    ann, _ = member_with_token(stack, "cleo@example.com", "Cleo")
    team_with(stack, "analysts", ann["id"], "viewer")
    nb_id = create_notebook_via_api(stack, "Audited")

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        history = page.locator("#nb-history li")
        history.filter(has_text="Nothing yet").wait_for()
        page.get_by_label("Add a team").select_option(label="analysts")
        page.locator("#add-team-form").get_by_role("button").click()
        history.filter(has_text="Shared with analysts").wait_for()
        page.locator("#nb-actions").get_by_role("button", name="Edit").click()
        page.locator("#edit-idle").fill("120")
        page.locator("#edit-submit").click()
        history.filter(has_text="Idle timeout 1 h → 2 h").wait_for()
        assert history.count() == 2
        # No status badge: the status did not change.
        assert history.locator(".badge").count() == 0
        assert "you" in history.first.inner_text()
    finally:
        close_page(page)


def test_older_history_is_shown_on_request_a_page_at_a_time(browser: Any, stack: Any) -> None:
    """The latest 20 first; "Show older" adds the next 20 (the API's marker)
    until the first entry, then focus goes to the history's heading."""
    nb_id = create_notebook_via_api(stack, "Long history")
    for i in range(45):
        body = {"description": f"step {i}"}
        assert stack.call("PATCH", f"/workloads/notebooks/{nb_id}", body)[0] == 200

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        history = page.locator("#nb-history li")
        expect(history).to_have_count(20)
        more = page.locator("#history-more")
        expect(more).to_have_text("The latest 20 of 45 entries.")
        older = page.get_by_role("button", name="Show older")
        older.click()
        expect(history).to_have_count(40)
        expect(older).to_be_focused()
        older.click()
        expect(history).to_have_count(45)
        expect(older).to_be_hidden()
        expect(page.locator("#history-title")).to_be_focused()
        assert more.is_hidden()
        # Newest first, each once.
        ids = [int(i) for i in history.evaluate_all("els => els.map(e => e.dataset.eventId)")]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 45
        # A change made elsewhere: the latest page again, never a gap between
        # it and the older ones shown (an audit found entries unreachable).
        assert (
            stack.call("PATCH", f"/workloads/notebooks/{nb_id}", {"description": "new"})[0] == 200
        )
        expect(more).to_have_text("The latest 20 of 46 entries.", timeout=20_000)
        expect(history).to_have_count(20)
        expect(older).to_be_visible()
    finally:
        close_page(page)


def test_changes_that_cancel_out_between_polls_still_reach_the_history(
    browser: Any, stack: Any
) -> None:
    """A share, then its team deleted, between two polls: the notebook looks
    as before (same teams, same updatedAt), yet both are history. The page
    reads the history at least every 30 s (on Playwright's clock)."""
    nb_id = create_notebook_via_api(stack, "Quiet")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        history = page.locator("#nb-history li")
        history.filter(has_text="Nothing yet").wait_for()
        page.clock.install()
        code, team = stack.call("POST", "/teams", {"name": "passing-through"})
        assert code == 201, team
        share = {"teamIds": [team["id"]]}
        assert stack.call("POST", f"/workloads/notebooks/{nb_id}/teams", share)[0] == 200
        assert stack.call("DELETE", f"/teams/{team['id']}")[0] == 204
        for _ in range(4):
            page.clock.fast_forward(11_000)
        history.filter(has_text="the team was deleted").wait_for(timeout=20_000)
        expect(history).to_have_count(2)
        assert "Shared with passing-through" in history.nth(1).inner_text()
    finally:
        close_page(page)
