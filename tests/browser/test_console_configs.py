"""Workload configs in the console (headless Chromium, the whole stack;
fixtures in conftest.py): an organization admin edits and deletes them
without curl; a member who is not an admin only reads them.

- Edit fills the form with the config as it is; Save sends every part, so
  a field emptied is cleared (an image, the environment), and the list
  shows the change; Cancel leaves it as it was;
- Delete asks first (Cancel is the default); a config a notebook uses is
  refused with the API's own detail, kept in the dialog; an unused one goes.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
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


def config_named(stack: Any, name: str) -> dict[str, Any]:
    _, configs = stack.call("GET", "/workloads/configs")
    return next(c for c in configs["items"] if c["name"] == name)


def config_row(page: Any, name: str) -> Any:
    return page.locator("#configs-body tr", has=page.get_by_text(name, exact=True))


def test_an_admin_edits_and_deletes_configs_and_a_member_only_reads_them(
    browser: Any, stack: Any, wait: Any
) -> None:
    code, made = stack.call(
        "POST",
        "/workloads/configs",
        {
            "name": "spare",
            "description": "for the spring batch",
            "sail": {"image": "sail:0.7", "cpu": "2"},
            "env": {"REGION": "eu", "TIER": "gold"},
        },
    )
    assert code == 201, made
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Workload configs").click()
        spare = config_row(page, "spare")
        spare.wait_for()

        # Edit: the form shows the config as it is.
        spare.get_by_role("button", name="Edit spare").click()
        title = page.locator("#new-config-title")
        assert title.inner_text() == "Edit workload config spare"
        assert page.evaluate("document.activeElement.id") == "cfg-name"
        assert page.locator("#cfg-sail-image").input_value() == "sail:0.7"
        assert page.locator("#cfg-sail-cpu").input_value() == "2"
        assert page.locator("#cfg-description").input_value() == "for the spring batch"
        assert page.locator("#cfg-env").input_value() == "REGION=eu\nTIER=gold"
        assert page.locator("#config-edit-note").is_visible()

        # Cancel changes nothing and goes back to a new config's form.
        page.locator("#cfg-sail-cpu").fill("8")
        page.get_by_role("button", name="Cancel", exact=True).click()
        assert title.inner_text() == "New workload config"
        assert page.locator("#cfg-name").input_value() == ""
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Edit spare"
        assert config_named(stack, "spare")["sail"] == {"image": "sail:0.7", "cpu": "2"}

        # Save: renamed, CPU changed, the image and one variable removed.
        spare.get_by_role("button", name="Edit spare").click()
        page.locator("#cfg-name").fill("spare v2")
        page.locator("#cfg-sail-image").fill("")
        page.locator("#cfg-sail-cpu").fill("4")
        page.locator("#cfg-description").fill("")
        # A value's spaces at either end are kept (they were trimmed).
        page.locator("#cfg-env").fill("REGION=us\nPAD= x ")
        page.get_by_role("button", name="Save changes").click()
        v2 = config_row(page, "spare v2")
        v2.wait_for()
        assert "4 CPU" in v2.inner_text() and "sail:0.7" not in v2.inner_text()
        saved = config_named(stack, "spare v2")
        assert saved["sail"] == {"cpu": "4"} and saved["env"] == {"REGION": "us", "PAD": " x "}
        assert saved["description"] == "" and saved["id"] == made["id"]
        assert title.inner_text() == "New workload config"

        # A value of several lines (a certificate, set with the API) cannot be
        # shown in a line: the form locks the environment and keeps it.
        pem = {"CERT": "-----BEGIN-----\nabc\n-----END-----", "PAD": " x "}
        code, _ = stack.call("POST", "/workloads/configs", {"name": "pem", "env": pem})
        assert code == 201
        page.get_by_role("link", name="Notebooks", exact=True).first.click()
        page.get_by_role("link", name="Workload configs").click()
        config_row(page, "pem").get_by_role("button", name="Edit pem").click()
        assert page.locator("#cfg-env").get_attribute("readonly") is not None
        assert page.locator("#cfg-env-locked").is_visible()
        page.locator("#cfg-description").fill("with a certificate")
        page.get_by_role("button", name="Save changes").click()
        config_row(page, "pem").get_by_text("with a certificate").wait_for()
        assert config_named(stack, "pem")["env"] == pem
        assert page.locator("#cfg-env").get_attribute("readonly") is None
        assert page.locator("#cfg-env-locked").is_hidden()
        stack.call("DELETE", f"/workloads/configs/{config_named(stack, 'pem')['id']}")

        # A config a notebook uses: the API's refusal, in the dialog.
        create_notebook_via_api(stack, "uses default")
        config_row(page, "default").get_by_role("button", name="Delete default").click()
        dialog = page.get_by_role("alertdialog")
        dialog.wait_for()
        assert page.evaluate("document.activeElement.textContent") == "Cancel"
        dialog.get_by_role("button", name="Delete workload config").click()
        error = page.locator("#confirm-error")
        error.wait_for()
        _, refusal = stack.call(
            "DELETE", f"/workloads/configs/{config_named(stack, 'default')['id']}"
        )
        assert error.inner_text() == f"Could not delete it: {refusal['detail']}"
        assert refusal["detail"].startswith("1 notebook uses this workload config")
        dialog.get_by_role("button", name="Cancel").click()
        dialog.wait_for(state="hidden")

        # An unused one goes, after the question.
        v2.get_by_role("button", name="Delete spare v2").click()
        assert "spare v2 will be gone for good" in dialog.inner_text()
        dialog.get_by_role("button", name="Delete workload config").click()
        dialog.wait_for(state="hidden")
        v2.wait_for(state="detached")
        _, configs = stack.call("GET", "/workloads/configs")
        assert [c["name"] for c in configs["items"]] == ["default"]
    finally:
        close_page(page)

    # A member who is not an organization admin reads, and nothing more.
    code, member = stack.call("POST", "/members", {"email": "ann@example.com", "name": "Ann"})
    assert code == 201, member
    code, ann = stack.call("POST", f"/members/{member['id']}/tokens", {"name": "laptop"})
    assert code == 201, ann
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, ann["token"])
        page.get_by_role("link", name="Workload configs").click()
        config_row(page, "default").wait_for()
        assert page.locator("#configs-body button").count() == 0
        assert page.locator("#config-form").is_hidden()
        assert page.locator("#configs-actions-head").is_hidden()
        note = page.locator("#config-admin-note")
        assert note.inner_text() == (
            "Only organization admins can create, edit or delete workload configs."
        )
    finally:
        close_page(page)


def test_an_admin_sets_secret_variables_the_console_never_shows_again(
    browser: Any, stack: Any, settings: Any
) -> None:
    """Passwords go in the secret environment: written from the form, then
    named in the list and the edit form, never shown (the API does not
    answer them); a line replaces one, a ticked box removes one."""
    page = browser.new_page(viewport=LAPTOP)
    secret = "hunter2-never-shown"
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Workload configs").click()
        page.locator("#cfg-name").fill("warehouse")
        page.locator("#cfg-env").fill("TZ=UTC")
        page.get_by_label("Secret environment").fill(f"DB_PASSWORD={secret}\nAPI_KEY=k1")
        page.get_by_role("button", name="Create workload config").click()
        row = config_row(page, "warehouse")
        expect(row).to_contain_text("TZ, API_KEY (secret), DB_PASSWORD (secret)")
        assert page.get_by_label("Secret environment").input_value() == ""  # the form reset
        assert secret not in page.content()
        assert config_named(stack, "warehouse")["secretEnvNames"] == ["API_KEY", "DB_PASSWORD"]

        row.get_by_role("button", name="Edit warehouse").click()
        assert page.get_by_label("Secret environment").input_value() == ""
        assert secret not in page.content()
        page.get_by_label("Remove API_KEY").check()
        page.get_by_label("Secret environment").fill("DB_PASSWORD=rotated\nBAD LINE")
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator("#config-form-error")).to_have_text(
            "Secret environment line 2 is not NAME=value"
        )
        page.get_by_label("Secret environment").fill("DB_PASSWORD=rotated")
        page.get_by_label("Remove DB_PASSWORD").check()
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator("#config-form-error")).to_have_text(
            "DB_PASSWORD is both set and ticked for removal: untick it, or leave its line out."
        )
        page.get_by_label("Remove DB_PASSWORD").uncheck()
        page.get_by_role("button", name="Save changes").click()
        expect(row).to_contain_text("TZ, DB_PASSWORD (secret)")
        expect(row).not_to_contain_text("API_KEY")
        with psycopg.connect(settings.database_url) as conn:
            stored = conn.execute(
                "select secret_env from workload_configs where name = 'warehouse'"
            ).fetchone()
        assert stored is not None and stored[0] == {"DB_PASSWORD": "rotated"}
    finally:
        close_page(page)


def test_an_admin_keeps_a_config_for_a_team_and_others_are_not_offered_it(
    browser: Any, stack: Any
) -> None:
    """A config that costs is kept for the team it is for: set in the form,
    named in the list, and left out of New notebook for a member outside."""
    ann, ann_token = member_with_token(stack, "ann@example.com", "Ann")
    bo, bo_token = member_with_token(stack, "bo@example.com", "Bo")
    team_with(stack, "ml", ann["id"], "viewer")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Workload configs").click()
        page.locator("#cfg-name").fill("gpu")
        # Ticking a team keeps it for the team: the first box follows.
        page.locator("#cfg-team-choices").get_by_label("ml").check()
        expect(page.get_by_label("Only members of these teams (and org admins)")).to_be_checked()
        page.get_by_role("button", name="Create workload config").click()
        row = config_row(page, "gpu")
        expect(row.locator("td[data-label='Who may use it']")).to_have_text("ml")
        expect(config_row(page, "default").locator("td[data-label='Who may use it']")).to_have_text(
            "everyone"
        )
        gpu = config_named(stack, "gpu")
        assert gpu["teamIds"] == [next(t["id"] for t in stack.call("GET", "/teams")[1]["items"])]
        # Opened again, the form shows it kept for ml; unticking opens it to everyone.
        row.get_by_role("button", name="Edit gpu").click()
        restricted = page.get_by_label("Only members of these teams (and org admins)")
        expect(restricted).to_be_checked()
        expect(page.locator("#cfg-team-choices").get_by_label("ml")).to_be_checked()
        page.get_by_role("button", name="Cancel", exact=True).click()
        # A Save of something else, with the teams unreadable, keeps it for ml
        # (it once sent the empty list the form then showed: org admins only).
        page.route(
            re.compile(r"/api/v1/teams(\?.*)?$"),
            lambda route: route.fulfill(status=503, json={"code": "database_unavailable"}),
        )
        row.get_by_role("button", name="Edit gpu").click()
        expect(page.locator("#config-form-error")).to_contain_text("Could not load the teams")
        page.locator("#cfg-description").fill("A100s")
        page.get_by_role("button", name="Save changes").click()
        expect(row).to_contain_text("A100s")
        assert config_named(stack, "gpu")["teamIds"] == gpu["teamIds"]
    finally:
        close_page(page)
    for token, offered in ((ann_token, True), (bo_token, False)):
        page = browser.new_page(viewport=LAPTOP)
        try:
            sign_in(page, stack.api_url, token)
            page.get_by_role("button", name="New notebook").click()
            options = page.locator("#nb-config option")
            expect(options.filter(has_text="default")).to_have_count(1)
            expect(options.filter(has_text="gpu")).to_have_count(1 if offered else 0)
        finally:
            close_page(page)
