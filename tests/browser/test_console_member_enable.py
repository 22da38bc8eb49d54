"""An org admin enables a disabled member again from People (headless
Chromium, the whole stack; fixtures in conftest.py): "Show disabled
members" lists them, Enable asks first and says their old tokens stay dead."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import close_page, member_with_token, sign_in, team_with
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def test_an_admin_enables_a_disabled_member_who_gets_teams_back_but_no_old_token(
    browser: Any, stack: Any
) -> None:
    ann, old_token = member_with_token(stack, "ann@example.com", "Ann Analyst")
    team = team_with(stack, "data-eng", ann["id"], "editor")
    assert stack.call("DELETE", f"/members/{ann['id']}")[0] == 204

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="People", exact=True).click()
        rows = page.locator("#members-body tr")
        rows.first.wait_for()
        assert rows.filter(has_text="ann@example.com").count() == 0
        page.get_by_label("Show disabled members").check()
        ann_row = rows.filter(has_text="ann@example.com")
        ann_row.wait_for()
        expect(rows).to_have_count(1)
        assert "Disabled" in ann_row.locator("td[data-label='Role']").inner_text()
        assert page.locator("#members-page-info").inner_text() == "1 disabled member"
        ann_row.get_by_role("button", name="Enable Ann Analyst").click()
        dialog = page.locator("#confirm-dialog")
        assert "None of their old tokens works again" in dialog.inner_text()
        dialog.get_by_role("button", name="Enable member").click()
        rows.filter(has_text="No member is disabled.").wait_for()
        expect(page.locator("#members-title")).to_be_focused()
        page.get_by_label("Show disabled members").uncheck()
        active = rows.filter(has_text="ann@example.com")
        active.wait_for()
        assert active.get_by_role("button", name="Disable Ann Analyst").is_visible()
    finally:
        close_page(page)
    # Back in her team; the token she had before is not.
    code, members = stack.call("GET", f"/teams/{team}/members")
    assert code == 200 and ann["id"] in {m["memberId"] for m in members["items"]}
    assert stack.call("GET", "/me", token=old_token)[0] == 401
