"""Recently deleted in the console (headless Chromium, the whole stack;
fixtures in conftest.py; docs/console.md "Recently deleted"): a notebook
deleted by mistake is found under Recently deleted once the workers removed
it, its file downloaded, and brought back, landing on the new notebook's
page; another is deleted for good there, on a question."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import close_page, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
CODE = "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    total = 6 * 7\n"


def create(stack: Any, name: str) -> str:
    _, configs = stack.call("GET", "/workloads/configs")
    config = next(c["id"] for c in configs["items"] if c["name"] == "default")
    status, created = stack.call(
        "POST",
        "/workloads/notebooks",
        {
            "name": name,
            "workloadConfigId": config,
            "source": {"format": "py", "content": CODE},
        },
    )
    assert status == 201, created
    return str(created["item"]["notebookId"])


def test_a_deleted_notebook_is_brought_back_from_recently_deleted(browser: Any, stack: Any) -> None:
    mistake = create(stack, "Revenue (Q3)")
    secret = create(stack, "Has a key")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{mistake}'")
        page.locator("#nb-actions").get_by_role("button", name="Delete").click()
        dialog = page.get_by_role("alertdialog", name="Delete “Revenue (Q3)”?")
        expect(dialog).to_contain_text("stay 30 days under Recently deleted")
        dialog.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("heading", name="Notebooks", exact=True)).to_be_visible()
        assert stack.call("DELETE", f"/workloads/notebooks/{secret}")[0] == 204

        # The workers remove each within a pass or two (a condition, polled).
        deadline = time.monotonic() + 60
        while stack.call("GET", "/workloads/deleted-notebooks")[1]["total"] < 2:
            assert time.monotonic() < deadline, "the workers never removed them"
            time.sleep(0.1)
        page.get_by_role("link", name="Recently deleted").click()
        expect(page.get_by_role("heading", name="Recently deleted")).to_be_visible()
        rows = page.locator("#deleted-body tr")
        expect(rows).to_have_count(2)
        row = page.locator(f"[data-deleted='{mistake}']")
        expect(row).to_contain_text("Revenue (Q3)")
        with page.expect_download() as got:
            row.get_by_role("button", name="Download Revenue (Q3)").click()
        assert got.value.suggested_filename == "Revenue (Q3).py"
        assert Path(got.value.path()).read_text(encoding="utf-8") == CODE

        # Deleted for good now, on a question: gone from the list.
        other = page.locator(f"[data-deleted='{secret}']")
        other.get_by_role("button", name="Delete now Has a key").click()
        question = page.get_by_role("alertdialog", name="Delete “Has a key” for good?")
        question.get_by_role("button", name="Delete now").click()
        expect(question).to_be_hidden()
        expect(rows).to_have_count(1)

        # Brought back: a new notebook, its page next, with its file.
        row.get_by_role("button", name="Bring back Revenue (Q3)").click()
        expect(page.get_by_role("heading", name="Revenue (Q3)")).to_be_visible()
        back = page.url.rsplit("/", 1)[1]
        assert back != mistake
        with page.expect_download() as got:
            page.get_by_role("button", name="Download .py").click()
        assert Path(got.value.path()).read_text(encoding="utf-8") == CODE
        page.evaluate("location.hash = '#/deleted'")
        expect(page.locator("#deleted-empty")).to_be_visible()
    finally:
        close_page(page)
