"""The organization's usage in the console (headless Chromium, the whole
stack; fixtures in conftest.py): an org admin sees how long each member's
notebooks held servers, and which ran longest; others are not offered it."""

from __future__ import annotations

import csv
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from browser_helpers import (
    close_page,
    create_notebook_via_api,
    member_with_token,
    route_notebook_as,
    sign_in,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def ran(settings: Any, stack: Any, nb_id: str, since: datetime, until: datetime | None) -> None:
    """A run in the notebook's history, as the workers record one."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for status, at in (("running", since), ("stopped", until)):
            if at is not None:
                conn.execute(
                    "insert into notebook_events (notebook_id, organization_id, to_status,"
                    " actor, created_at) values (%s, %s, %s, 'reconciler', %s)",
                    (nb_id, stack.organization_id, status, at),
                )


def test_an_org_admin_sees_who_ran_what_and_for_how_long(
    browser: Any, stack: Any, settings: Any
) -> None:
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ann, token = member_with_token(stack, "ann@example.com", "Ann Analyst")
    churn = create_notebook_via_api(stack, "Churn", token=token)
    forecast = create_notebook_via_api(stack, "Forecast")
    # Ann's ran an hour, ending 5 minutes ago; the admin's 90 minutes, last month.
    ran(settings, stack, churn, now - timedelta(minutes=65), now - timedelta(minutes=5))
    ran(settings, stack, forecast, month - timedelta(hours=2), month - timedelta(minutes=30))

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Usage", exact=True).click()
        expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_focused()
        # This month by default (by the server's clock), from its first day.
        expect(page.get_by_label("Window")).to_have_value("this-month")
        expect(page.locator("#usage-summary")).to_contain_text(
            f"{month.strftime('%b')} 1, {month.year} to "
        )
        # The last 7 days, whatever day of the month this runs on.
        page.get_by_label("Window").select_option("last-7-days")
        expect(page.locator("#usage-summary")).to_contain_text("1.0 h across 1 notebook")
        owners = page.locator("#usage-members tr")
        expect(owners).to_have_count(1)
        expect(owners.first).to_contain_text("Ann Analyst")
        expect(owners.first.locator("td").nth(2)).to_have_text("1.0 h")
        # Her name leads to what she did.
        expect(owners.first.get_by_role("link", name="Ann Analyst")).to_have_attribute(
            "href", f"#/activity/{ann['id']}"
        )
        longest = page.locator("#usage-notebooks tr")
        expect(longest.first.get_by_role("link", name="Churn")).to_have_attribute(
            "href", f"#/notebooks/{churn}"
        )

        # The owners as CSV, for the bill.
        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV").click()
        assert download.value.suggested_filename.startswith("usage-")
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines == [
            "owner_id,owner_name,owner_email,notebooks,seconds,hours",
            f"{ann['id']},Ann Analyst,ann@example.com,1,3600,1.00",
        ]
        # Every notebook's line, from the API, for the window shown.
        with page.expect_download() as download:
            page.get_by_role("button", name="Every notebook as CSV").click()
        name = download.value.suggested_filename
        assert re.fullmatch(r"usage-\d{4}-\d{2}-\d{2}-to-\d{4}-\d{2}-\d{2}\.csv", name), name
        expect(page.locator("#usage-export-note")).to_have_text(f"Downloaded {name}.")
        with open(download.value.path(), newline="") as exported:
            rows = list(csv.DictReader(exported))
        assert [
            (r["notebook_id"], r["notebook_name"], r["owner_name"], r["seconds"]) for r in rows
        ] == [(churn, "Churn", "Ann Analyst", "3600")]

        page.get_by_label("Window").select_option("last-month")
        expect(page.locator("#usage-summary")).to_contain_text("1.5 h across 1 notebook")
        expect(page.locator("#usage-error")).to_be_hidden()  # a window change says nothing
        # Its last day, not the 1st after it (`to` is exclusive).
        last_day = month - timedelta(days=1)
        expect(page.locator("#usage-summary")).to_contain_text(
            f"to {last_day.strftime('%b')} {last_day.day}, {last_day.year} (UTC)"
        )
        expect(owners.first).to_contain_text("you")
        expect(longest.first).to_contain_text("Forecast")
    finally:
        close_page(page)


def test_the_usage_csv_is_safe_to_open_in_a_spreadsheet(
    browser: Any, stack: Any, settings: Any
) -> None:
    """A name a spreadsheet would run as a formula is defused with a ', and
    one with a comma or a quote is quoted."""
    now = datetime.now(UTC)
    eve, token = member_with_token(stack, "eve@example.com", '=HYPERLINK("x"), 2')
    nb_id = create_notebook_via_api(stack, "Sheet", token=token)
    ran(settings, stack, nb_id, now - timedelta(minutes=40), now - timedelta(minutes=10))
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/usage'")
        page.get_by_label("Window").select_option("last-7-days")
        expect(page.locator("#usage-summary")).to_contain_text("0.5 h across 1 notebook")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV").click()
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[1] == f'{eve["id"]},"\'=HYPERLINK(""x""), 2",eve@example.com,1,1800,0.50'
    finally:
        close_page(page)


def test_a_member_sees_their_own_usage_and_a_demoted_admin_goes_back_to_theirs(
    browser: Any, stack: Any, settings: Any
) -> None:
    """The organization's usage is its org admins'; everyone else's Usage
    page shows their own notebooks (GET /me/usage). An org admin who loses
    the right is refused at the next read and shown their own."""
    now = datetime.now(UTC)
    _, token = member_with_token(stack, "bo@example.com", "Bo")
    bos = create_notebook_via_api(stack, "Bo's notebook", token=token)
    ran(settings, stack, bos, now - timedelta(minutes=50), now - timedelta(minutes=20))
    admins = create_notebook_via_api(stack, "Admin's notebook")
    ran(settings, stack, admins, now - timedelta(minutes=40), now - timedelta(minutes=10))
    cy, cy_token = member_with_token(stack, "cy@example.com", "Cy")
    code, body = stack.call("PATCH", f"/members/{cy['id']}", {"organizationAdmin": True})
    assert code == 200, body
    refusal = "Only organization admins see the organization's usage; this is yours."
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, token)
        expect(page.get_by_role("link", name="Activity", exact=True)).to_have_count(0)
        page.get_by_role("link", name="Usage", exact=True).click()
        expect(page.get_by_role("heading", name="Your usage")).to_be_visible()
        page.get_by_label("Window").select_option("last-7-days")
        expect(page.locator("#usage-summary")).to_contain_text("0.5 h across 1 notebook")
        expect(page.locator("#usage-notebooks")).to_contain_text("Bo's notebook")
        expect(page.locator("#usage-notebooks")).not_to_contain_text("Admin's notebook")
        expect(page.locator("#limits-panel")).to_be_hidden()
        # Their own name, not a link to the admins' activity.
        expect(page.locator("#usage-members").get_by_role("link")).to_have_count(0)
        # Their own notebooks' lines, none of the admin's.
        with page.expect_download() as download:
            page.get_by_role("button", name="Every notebook as CSV").click()
        assert download.value.suggested_filename.startswith("my-usage-")
        with open(download.value.path(), newline="") as exported:
            rows = list(csv.DictReader(exported))
        assert [(r["notebook_name"], r["seconds"]) for r in rows] == [("Bo's notebook", "1800")]
    finally:
        close_page(page)
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, cy_token)
        page.get_by_role("link", name="Usage", exact=True).click()
        expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
        page.get_by_label("Window").select_option("last-7-days")
        expect(page.locator("#usage-summary")).to_contain_text("1.0 h across 2 notebooks")
        expect(page.locator("#limits-panel")).to_be_visible()
        code, body = stack.call("PATCH", f"/members/{cy['id']}", {"organizationAdmin": False})
        assert code == 200, body
        page.get_by_label("Window").select_option("last-30-days")
        # Two reads in a row (the refused one, then the member's own): each
        # may take up to the console's read limit on a loaded machine.
        expect(page.locator("#usage-error")).to_have_text(refusal, timeout=15_000)
        expect(page.get_by_role("heading", name="Your usage")).to_be_visible()
        expect(page.locator("#usage-summary")).to_contain_text("across 0 notebooks")
        expect(page.locator("#limits-panel")).to_be_hidden()
        expect(page.get_by_role("link", name="Activity", exact=True)).to_have_count(0)
        expect(page.get_by_role("link", name="Usage", exact=True)).to_be_visible()
    finally:
        close_page(page)


def test_an_org_admin_sets_the_running_limits(browser: Any, stack: Any) -> None:
    """The limits sit under the usage: what may run at once, beside what ran.
    (That starts keep to them is tests/integration/api/test_api_organization.py.)"""
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/usage'")
        panel = page.get_by_role("region", name="Limits")
        per_member = panel.get_by_label("Per member")
        in_org = panel.get_by_label("In the organization")
        expect(per_member).to_have_value("0")
        expect(in_org).to_have_value("0")
        expect(panel).to_contain_text("The platform sets no limit.")

        per_member.fill("-1")
        panel.get_by_role("button", name="Save limits").click()
        expect(panel.get_by_role("alert")).to_have_text(
            "Enter a whole number from 0 to 10000 (0: no limit)."
        )
        expect(per_member).to_be_focused()
        assert stack.call("GET", "/organization")[1]["maxRunningPerMember"] == 0

        per_member.fill("2")
        in_org.fill("25")
        panel.get_by_role("button", name="Save limits").click()
        expect(panel.get_by_role("alert")).to_be_hidden()
        expect(page.locator("#announcer")).to_have_text("Limits saved")
        org = stack.call("GET", "/organization")[1]
        assert (org["maxRunningPerMember"], org["maxRunning"]) == (2, 25)
        # Who changed them last, for a member who asks who stopped their notebook.
        expect(panel.locator("#limits-changed")).to_have_text(
            re.compile(rf"^Last changed .+ by {re.escape(org['updatedByName'])}\.$")
        )

        # Another admin changes one meanwhile: a Save of the other keeps theirs.
        stack.call("PATCH", "/organization", {"maxRunning": 30})
        per_member.fill("3")
        panel.get_by_role("button", name="Save limits").click()
        expect(in_org).to_have_value("30")  # the answer shows what is set now
        org = stack.call("GET", "/organization")[1]
        assert (org["maxRunningPerMember"], org["maxRunning"]) == (3, 30)
        # Read again on the next visit.
        stack.call("PATCH", "/organization", {"maxRunning": 40})
        page.evaluate("location.hash = '#/notebooks'")
        page.evaluate("location.hash = '#/usage'")
        expect(in_org).to_have_value("40")
        expect(per_member).to_have_value("3")
    finally:
        close_page(page)


def test_an_org_admin_caps_the_timeouts_and_members_see_the_cap_apply(
    browser: Any, stack: Any
) -> None:
    """A notebook left open costs: the admin caps how long, under the usage;
    a notebook set to "never" before shows the cap as what applies, and the
    New notebook dialog starts within it and says so. (That the API refuses
    past it is tests/integration/api/test_api_timeout_caps.py; that the
    reconciler stops at it, tests/integration/reconciler/test_reconciler_presence.py.)"""
    nb_id = create_notebook_via_api(stack, "Left open")
    code, body = stack.call("PATCH", f"/workloads/notebooks/{nb_id}", {"idleTimeoutSeconds": 0})
    assert code == 200, body
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/usage'")
        panel = page.get_by_role("region", name="Limits")
        idle_cap = panel.get_by_label("Longest idle timeout (minutes)")
        expect(idle_cap).to_have_value("0")
        idle_cap.fill("3")
        panel.get_by_role("button", name="Save limits").click()
        expect(panel.get_by_role("alert")).to_have_text("Enter 0 (no limit) or 5 to 10080 minutes.")
        expect(idle_cap).to_be_focused()
        idle_cap.fill("30")
        panel.get_by_role("button", name="Save limits").click()
        expect(page.locator("#announcer")).to_have_text("Limits saved")
        org = stack.call("GET", "/organization")[1]
        assert (org["maxIdleTimeoutSeconds"], org["maxDetachedTimeoutSeconds"]) == (1800, 0)

        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        idle = page.locator("#nb-facts dt:has-text('Idle timeout') + dd")
        expect(idle).to_have_text("30 min, your organization's limit (its own: never)")
        detached = page.locator("#nb-facts dt:has-text('Detached timeout') + dd")
        expect(detached).to_have_text("4 h")
        # Its own "never" is kept through an edit that leaves it alone.
        page.locator("#nb-actions").get_by_role("button", name="Edit", exact=True).click()
        edit = page.get_by_role("dialog", name="Edit notebook")
        expect(edit.locator("#edit-caps")).to_contain_text("idle at most 30 min")
        edit.get_by_label("Name").fill("Left open, renamed")
        edit.get_by_role("button", name="Save").click()
        expect(edit).to_be_hidden()
        expect(page.locator("#nb-title")).to_have_text("Left open, renamed")
        expect(idle).to_have_text("30 min, your organization's limit (its own: never)")

        page.evaluate("location.hash = '#/notebooks'")
        page.get_by_role("button", name="New notebook").click()
        dialog = page.get_by_role("dialog", name="New notebook")
        expect(dialog.locator("#nb-caps")).to_have_text(
            "Your organization's limits: idle at most 30 min (0, never, is not allowed there)."
        )
        expect(dialog.get_by_label("Idle timeout (minutes)")).to_have_value("30")
        expect(dialog.get_by_label("Detached timeout (minutes)")).to_have_value("240")
        dialog.get_by_label("Name").fill("Within the cap")
        dialog.get_by_label("Idle timeout (minutes)").fill("0")
        dialog.get_by_role("button", name="Create notebook").click()
        expect(dialog.get_by_role("alert")).to_have_text(
            "Idle timeout must be 5 to 30 minutes: your organization's limit."
        )
        dialog.get_by_label("Idle timeout (minutes)").fill("20")
        dialog.get_by_role("button", name="Create notebook").click()
        expect(dialog).to_be_hidden()
        _, listed = stack.call("GET", "/workloads/notebooks")
        made = next(n for n in listed["included"]["notebooks"] if n["name"] == "Within the cap")
        assert made["idleTimeoutSeconds"] == 1200
    finally:
        close_page(page)


def test_a_notebook_left_open_says_it_stops_at_the_cap(browser: Any, stack: Any) -> None:
    """Its "Stops by itself" counts with the timeout that applies: the cap,
    not its own "never" (docs/reconciler.md)."""
    nb_id = create_notebook_via_api(stack, "Forgotten")
    assert stack.call("PATCH", f"/workloads/notebooks/{nb_id}", {"idleTimeoutSeconds": 0})[0] == 200
    assert stack.call("PATCH", "/organization", {"maxIdleTimeoutSeconds": 1800})[0] == 200
    page = browser.new_page(viewport=LAPTOP)
    last_active = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    try:
        route_notebook_as(page, nb_id, status="idle", statusMessage="", lastActiveAt=last_active)
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        when = page.locator("#nb-facts dt:has-text('Stops by itself') + dd")
        expect(when).to_have_text(re.compile(r"^in 29 minutes \(.+ UTC\) unless someone opens it$"))
    finally:
        close_page(page)


def test_a_timeout_nobody_chose_is_never_refused(browser: Any, stack: Any) -> None:
    """New notebook sends only timeouts the member changed: with the caps and
    defaults unreadable (so its fields show none, empty), the API's own
    capped default applies rather than a refusal of a value nobody typed."""
    assert stack.call("PATCH", "/organization", {"maxIdleTimeoutSeconds": 1800})[0] == 200
    page = browser.new_page(viewport=LAPTOP)
    try:
        page.route(
            re.compile(r"/api/v1/organization$"),
            lambda route: route.fulfill(status=503, json={"code": "database_unavailable"}),
        )
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("button", name="New notebook").click()
        dialog = page.get_by_role("dialog", name="New notebook")
        idle = dialog.get_by_label("Idle timeout (minutes)")
        expect(idle).to_have_attribute("placeholder", "organization's default")
        expect(idle).to_have_value("")
        dialog.get_by_label("Name").fill("Defaults")
        dialog.get_by_role("button", name="Create notebook").click()
        expect(dialog).to_be_hidden()
        _, listed = stack.call("GET", "/workloads/notebooks")
        made = next(n for n in listed["included"]["notebooks"] if n["name"] == "Defaults")
        assert (made["idleTimeoutSeconds"], made["detachedTimeoutSeconds"]) == (1800, 14400)
    finally:
        close_page(page)


def test_an_org_admin_sets_new_notebooks_default_timeouts(browser: Any, stack: Any) -> None:
    """Under the limits: what a new notebook starts with (docs/console.md
    "Limits"); New notebook starts there, under the caps; emptied, the
    platform's again."""
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/usage'")
        panel = page.get_by_role("region", name="Limits")
        idle_default = panel.get_by_label("New notebooks' idle timeout (minutes)")
        detached_default = panel.get_by_label("New notebooks' detached timeout (minutes)")
        expect(idle_default).to_have_value("")  # the platform's, as the placeholder says
        expect(idle_default).to_have_attribute("placeholder", "60")
        idle_default.fill("7.5")
        panel.get_by_role("button", name="Save limits").click()
        expect(panel.get_by_role("alert")).to_have_text(
            "Enter 0 (never), 5 to 10080 minutes, or nothing for the platform's."
        )
        expect(idle_default).to_be_focused()
        idle_default.fill("15")
        detached_default.fill("0")
        panel.get_by_role("button", name="Save limits").click()
        expect(page.locator("#announcer")).to_have_text("Limits saved")
        org = stack.call("GET", "/organization")[1]
        assert (org["defaultIdleTimeoutSeconds"], org["defaultDetachedTimeoutSeconds"]) == (900, 0)
        assert org["maxIdleTimeoutSeconds"] == 0  # only what changed was sent

        # "Never" by default, under a detached cap of 2 h: 2 h.
        assert stack.call("PATCH", "/organization", {"maxDetachedTimeoutSeconds": 7200})[0] == 200
        page.evaluate("location.hash = '#/notebooks'")
        page.get_by_role("button", name="New notebook").click()
        dialog = page.get_by_role("dialog", name="New notebook")
        expect(dialog.get_by_label("Idle timeout (minutes)")).to_have_value("15")
        expect(dialog.get_by_label("Detached timeout (minutes)")).to_have_value("120")
        dialog.get_by_label("Name").fill("Starts with the defaults")
        dialog.get_by_role("button", name="Create notebook").click()
        expect(dialog).to_be_hidden()
        _, listed = stack.call("GET", "/workloads/notebooks")
        made = next(
            n for n in listed["included"]["notebooks"] if n["name"] == "Starts with the defaults"
        )
        assert (made["idleTimeoutSeconds"], made["detachedTimeoutSeconds"]) == (900, 7200)

        page.evaluate("location.hash = '#/usage'")
        expect(idle_default).to_have_value("15")
        idle_default.fill("")
        with page.expect_response(
            lambda r: r.request.method == "PATCH" and r.url.endswith("/organization")
        ) as saved:
            panel.get_by_role("button", name="Save limits").click()
        assert saved.value.status == 200
        org = stack.call("GET", "/organization")[1]
        assert (org["defaultIdleTimeoutSeconds"], org["defaultDetachedTimeoutSeconds"]) == (None, 0)
    finally:
        close_page(page)
