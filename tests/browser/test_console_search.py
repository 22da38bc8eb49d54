"""Finding a notebook by name in the list (headless Chromium, the whole
stack; fixtures in conftest.py): typing filters the list through the API's
`?q=`, and an empty result says what was looked for."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import close_page, create_notebook_via_api, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_member_finds_a_notebook_by_part_of_its_name(browser: Any, stack: Any) -> None:
    for name in ("Churn model", "Weekly CHURN report", "Revenue forecast"):
        create_notebook_via_api(stack, name)

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        sign_in(page, stack.api_url, stack.token)
        rows = page.locator("#notebooks-body tr")
        expect(rows).to_have_count(3)
        search = page.get_by_label("Find by name")
        search.fill("churn")
        expect(rows).to_have_count(2)
        assert sorted(rows.locator(".nb-link").all_inner_texts()) == [
            "Churn model",
            "Weekly CHURN report",
        ]
        search.fill("nothing like it")
        expect(page.locator("#notebooks-empty")).to_have_text(
            "No notebook has “nothing like it” in its name."
        )
        expect(page.locator("#notebooks-table")).to_be_hidden()
        search.fill("")
        expect(rows).to_have_count(3)
        # A notebook made while a search it does not match is on is shown:
        # the search goes, as the other filters do.
        search.fill("churn")
        expect(rows).to_have_count(2)
        page.get_by_role("button", name="New notebook").click()
        dialog = page.get_by_role("dialog", name="New notebook")
        dialog.get_by_label("Name").fill("Margins")
        expect(dialog.get_by_label("Workload config")).not_to_have_value("")
        dialog.get_by_role("button", name="Create notebook").click()
        expect(rows).to_have_count(4)
        expect(search).to_have_value("")
        expect(page.locator("#notebooks-body .nb-link", has_text="Margins")).to_be_focused()
    finally:
        close_page(page)
