"""The organization's activity in the console (headless Chromium, the whole
stack; fixtures in conftest.py): an org admin reads every notebook's history
in one place, deleted notebooks' included, and what one member did; a
member who is not an org admin is not offered it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from browser_helpers import close_page, create_notebook_via_api, member_with_token, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def test_an_org_admin_reads_the_activity_and_what_one_member_did(browser: Any, stack: Any) -> None:
    ann, token = member_with_token(stack, "ann@example.com", "Ann Analyst")
    anns = create_notebook_via_api(stack, "Churn", token=token)
    code, body = stack.call(
        "PATCH", f"/workloads/notebooks/{anns}", {"name": "Churn v2"}, token=token
    )
    assert code == 200, body
    gone = create_notebook_via_api(stack, "Scratch")
    code, body = stack.call("PATCH", f"/workloads/notebooks/{gone}", {"description": "x"})
    assert code == 200, body
    assert stack.call("DELETE", f"/workloads/notebooks/{gone}")[0] == 204

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Activity", exact=True).click()
        expect(page.get_by_role("heading", name="Activity", exact=True)).to_be_focused()
        entries = page.locator("#activity-list li")
        renamed = entries.filter(has_text="Renamed from “Churn”")
        # The notebook by its name now, a link to its page; who did it, by name.
        expect(renamed.get_by_role("link", name="Churn v2")).to_have_attribute(
            "href", f"#/notebooks/{anns}"
        )
        expect(renamed.get_by_role("link", name="Ann Analyst")).to_be_visible()
        # A deleted notebook is named by the name its events kept, and leads
        # to its whole history (its own page is gone with it).
        deleted = entries.filter(has_text="Delete requested")
        expect(deleted).to_contain_text("“Scratch” (deleted)")
        expect(entries.filter(has_text="Description edited")).to_have_count(1)
        deleted.get_by_role("link", name="“Scratch” (deleted)").click()
        expect(page.get_by_role("heading", name="History of “Scratch” (deleted)")).to_be_visible()
        assert page.evaluate("location.hash") == f"#/activity/notebook/{gone}"
        expect(entries.filter(has_text="Description edited")).to_have_count(1)
        expect(entries.filter(has_text="Renamed from")).to_have_count(0)
        expect(entries.first.get_by_role("link", name="“Scratch” (deleted)")).to_have_count(0)
        page.go_back()
        expect(page.get_by_role("heading", name="Activity", exact=True)).to_be_visible()

        # What Ann did, alone.
        renamed.get_by_role("link", name="Ann Analyst").click()
        expect(page.get_by_role("heading", name="What Ann Analyst did")).to_be_visible()
        expect(entries).to_have_count(1)
        expect(entries.first).to_contain_text("Renamed from “Churn”")
        assert page.evaluate("location.hash") == f"#/activity/{ann['id']}"
        page.get_by_role("link", name="Show everyone's activity").click()
        expect(page.get_by_role("heading", name="Activity", exact=True)).to_be_visible()
        expect(entries.filter(has_text="Delete requested")).to_have_count(1)
    finally:
        close_page(page)


def test_the_activity_shows_older_entries_on_request(browser: Any, stack: Any) -> None:
    """Fifty at a time, newest first; "Show older" adds the next ones."""
    nb_id = create_notebook_via_api(stack, "Busy")
    for i in range(52):
        body = {"description": f"take {i}"}
        code, answer = stack.call("PATCH", f"/workloads/notebooks/{nb_id}", body)
        assert code == 200, answer

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/activity'")
        entries = page.locator("#activity-list li")
        expect(entries).to_have_count(50)
        expect(page.locator("#activity-more")).to_have_text("The latest 50 of 52 entries.")
        page.get_by_role("button", name="Show older").click()
        expect(entries).to_have_count(52)
        expect(page.get_by_role("button", name="Show older")).to_be_hidden()
        # Newest first, every entry once.
        ids = [int(i) for i in entries.evaluate_all("els => els.map(e => e.dataset.eventId)")]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 52
    finally:
        close_page(page)


def test_a_focused_entry_keeps_focus_when_the_activity_is_read_again(
    browser: Any, stack: Any
) -> None:
    """The page is read again every 10 s and redrawn: a keyboard or screen
    reader user on one of its links stays there (a review: focus fell to
    the page's body on every poll), and a new entry shows."""
    nb_id = create_notebook_via_api(stack, "Polled")
    code, body = stack.call("PATCH", f"/workloads/notebooks/{nb_id}", {"description": "one"})
    assert code == 200, body
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/activity'")
        entries = page.locator("#activity-list li")
        expect(entries).to_have_count(1)
        page.clock.install()
        link = entries.first.get_by_role("link", name="Polled")
        link.focus()
        code, body = stack.call("PATCH", f"/workloads/notebooks/{nb_id}", {"description": "two"})
        assert code == 200, body
        for _ in range(2):
            page.clock.fast_forward(11_000)
        expect(entries).to_have_count(2, timeout=20_000)
        expect(entries.nth(1).get_by_role("link", name="Polled")).to_be_focused()
    finally:
        close_page(page)


def test_an_admin_who_loses_the_right_sees_the_activity_go(browser: Any, stack: Any) -> None:
    """Once no longer an org admin, the next read is refused: the entries
    go, the page says why and stops asking, and the top bar drops the link."""
    ann, token = member_with_token(stack, "ann@example.com", "Ann Admin")
    code, body = stack.call("PATCH", f"/members/{ann['id']}", {"organizationAdmin": True})
    assert code == 200, body
    nb_id = create_notebook_via_api(stack, "Seen")
    code, body = stack.call("PATCH", f"/workloads/notebooks/{nb_id}", {"description": "x"})
    assert code == 200, body
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, token)
        page.get_by_role("link", name="Activity", exact=True).click()
        entries = page.locator("#activity-list li")
        expect(entries).to_have_count(1)
        code, body = stack.call("PATCH", f"/members/{ann['id']}", {"organizationAdmin": False})
        assert code == 200, body
        # Her next read (here: choosing what the platform did) is refused.
        page.evaluate("location.hash = '#/activity/reconciler'")
        expect(page.locator("#activity-error")).to_have_text(
            "Only organization admins see the organization's activity."
        )
        expect(entries).to_have_count(0)
        expect(page.get_by_role("link", name="Activity", exact=True)).to_have_count(0)
    finally:
        close_page(page)


def test_past_ten_thousand_entries_the_activity_says_more_than(
    browser: Any, stack: Any, settings: Any
) -> None:
    nb_id = create_notebook_via_api(stack, "Old")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "insert into notebook_events (notebook_id, organization_id, notebook_name,"
            " to_status, actor) select %s, %s, 'Old', 'stopped', 'reconciler'"
            " from generate_series(1, 10001)",
            (nb_id, stack.organization_id),
        )
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/activity'")
        expect(page.locator("#activity-more")).to_have_text(
            "The latest 50 of more than 10,000 entries."
        )
    finally:
        close_page(page)


def test_a_member_who_is_not_an_org_admin_is_not_offered_the_activity(
    browser: Any, stack: Any
) -> None:
    _, token = member_with_token(stack, "bo@example.com", "Bo")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, token)
        expect(page.get_by_role("link", name="People")).to_be_visible()
        expect(page.get_by_role("link", name="Activity", exact=True)).to_have_count(0)
        # Straight to its address: said plainly, nothing listed.
        page.evaluate("location.hash = '#/activity'")
        expect(page.locator("#activity-error")).to_have_text(
            "Only organization admins see the organization's activity."
        )
        expect(page.locator("#activity-list li")).to_have_count(0)
    finally:
        close_page(page)
