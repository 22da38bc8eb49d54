"""The organization's audit in the console (headless Chromium, the whole
stack; fixtures in conftest.py): an org admin reads who changed members,
tokens, teams, configs, limits and webhooks, in words, and what one member
changed; a member who is not an org admin is not offered it."""

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
START_SECONDS = 120  # worker pickup + Sail + Marimo on a busy 2-core machine


def test_an_org_admin_reads_who_changed_what(browser: Any, stack: Any) -> None:
    ann, token = member_with_token(stack, "ann@example.com", "Ann Analyst")
    team = team_with(stack, "analysts", ann["id"], "editor")
    code, _ = stack.call("PATCH", "/organization", {"maxRunning": 7})
    assert code == 200
    code, config = stack.call(
        "POST", "/workloads/configs", {"name": "prod", "secretEnv": {"DB_PASSWORD": "s3cr3t!"}}
    )
    assert code == 201, config
    # Ann, an admin for a while, makes a team of her own.
    assert stack.call("PATCH", f"/members/{ann['id']}", {"organizationAdmin": True})[0] == 200
    code, _ = stack.call("POST", "/teams", {"name": "ann's team"}, token=token)
    assert code == 201
    assert stack.call("DELETE", f"/members/{ann['id']}")[0] == 204
    _, me = stack.call("GET", "/me")
    assert team

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Audit", exact=True).click()
        expect(page.get_by_role("heading", name="Audit", exact=True)).to_be_focused()
        entries = page.locator("#audit-list li")
        expect(entries.filter(has_text="disabled Ann Analyst")).to_have_count(1)
        for said in (
            "added Ann Analyst",
            "made a token “browser” for Ann Analyst",
            "created the team “analysts”",
            "made Ann Analyst (disabled) editor of analysts",
            "made Ann Analyst (disabled) an organization admin",
            "set running in all: 7",
            "created the workload config “prod”",
        ):
            expect(entries.filter(has_text=said)).to_have_count(1)
        assert "s3cr3t!" not in page.locator("#audit-list").inner_text()

        # What the admin changed, alone (every entry here is theirs: "you").
        entries.first.get_by_role("link", name="you", exact=True).click()
        expect(page.get_by_role("heading", name="Audit: what you changed")).to_be_visible()
        assert page.evaluate("location.hash") == f"#/audit/{me['id']}"
        expect(entries.filter(has_text="disabled Ann Analyst")).to_have_count(1)
        expect(entries.filter(has_text="created the team “ann's team”")).to_have_count(0)
        page.get_by_role("link", name="Show everyone's").click()
        ann_made = entries.filter(has_text="created the team “ann's team”")
        expect(ann_made).to_have_count(1)
        expect(ann_made.get_by_role("link", name="Ann Analyst (disabled)")).to_be_visible()
        # The console's own sign-in token is not administration.
        expect(entries.filter(has_text="console sign-in")).to_have_count(0)
        expect(page.get_by_role("heading", name="Audit", exact=True)).to_be_visible()
    finally:
        close_page(page)

    # A member who is not an org admin is not offered it.
    bo, bo_token = member_with_token(stack, "bo@example.com", "Bo")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, bo_token)
        expect(page.get_by_role("link", name="Usage", exact=True)).to_be_visible()
        assert page.get_by_role("link", name="Audit", exact=True).count() == 0
        page.evaluate("location.hash = '#/audit'")
        expect(page.locator("#audit-error")).to_contain_text("Only organization admins")
    finally:
        close_page(page)


def test_an_org_admin_stops_everything_running_from_the_list(browser: Any, stack: Any) -> None:
    running = create_notebook_via_api(stack, "Nightly")
    idle = create_notebook_via_api(stack, "Left alone")  # stopped: not counted
    assert stack.call("POST", f"/workloads/notebooks/{running}/start")[0] == 202
    stack.wait_provisioned(running, START_SECONDS)
    page = browser.new_page(viewport=LAPTOP)
    button = "Stop all of the organization's running notebooks"
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("button", name=button).click()
        dialog = page.get_by_role("alertdialog")
        expect(dialog).to_contain_text("what was typed last is saved first")
        dialog.get_by_role("button", name="Stop them all").click()
        expect(page.locator("#notebooks-notice")).to_have_text("1 notebook stopping.")
        expect(page.get_by_role("button", name=button)).to_be_focused()
        row = page.locator("#notebooks-body tr").filter(has_text="Nightly")
        expect(row.locator(".status-stopped")).to_be_visible(timeout=60_000)
    finally:
        close_page(page)
    _, got = stack.call("GET", f"/workloads/notebooks/{idle}")
    assert got["included"]["notebooks"][0]["status"] == "stopped"
    _, audit = stack.call("GET", "/audit")
    assert audit["items"][0]["action"] == "organization.notebooks_stopped"
    assert audit["items"][0]["detail"] == {"stopped": 1}
