"""Searching notebooks' code in the console (headless Chromium, the whole
stack; fixtures in conftest.py): from the notebooks list to #/code, a text
found in a notebook brought as a file (never run), its line shown and a
link to its page; the search is in the address, so Back returns to it."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import close_page, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
CODE = (
    "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _(spark):\n"
    "    spark.table('legacy.Ledger_v1').count()\n    return\n"
)


def test_a_member_finds_which_notebook_reads_a_table(browser: Any, stack: Any) -> None:
    _, configs = stack.call("GET", "/workloads/configs")
    config = next(c["id"] for c in configs["items"] if c["name"] == "default")
    code, made = stack.call(
        "POST",
        "/workloads/notebooks",
        {
            "name": "Ledger audit",
            "workloadConfigId": config,
            "source": {"format": "py", "content": CODE},
        },
    )
    assert code == 201, made
    nb_id = made["item"]["notebookId"]
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Search their code").click()
        expect(page.get_by_role("heading", name="Search notebooks' code")).to_be_visible()
        page.get_by_label("Text to find").fill("LEGACY.ledger_v1")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator("#code-said")).to_have_text("1 notebook holds “LEGACY.ledger_v1”.")
        hit = page.locator("#code-results li")
        expect(hit).to_contain_text("line 8:")
        expect(hit.locator("code")).to_have_text("    spark.table('legacy.Ledger_v1').count()")
        assert "q=LEGACY.ledger_v1" in page.evaluate("location.hash")
        hit.get_by_role("link", name="Ledger audit").click()
        expect(page.get_by_role("heading", name="Ledger audit")).to_be_visible()
        assert page.evaluate("location.hash") == f"#/notebooks/{nb_id}"
        page.go_back()
        expect(page.locator("#code-results li")).to_have_count(1)
        expect(page.get_by_label("Text to find")).to_have_value("LEGACY.ledger_v1")
        page.get_by_label("Text to find").fill("nowhere_to_be_found")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator("#code-said")).to_have_text(
            "No notebook's code holds “nowhere_to_be_found”."
        )
        expect(page.locator("#code-results li")).to_have_count(0)
    finally:
        close_page(page)
