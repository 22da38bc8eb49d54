"""A notebook started from a file in the console (headless Chromium, the
whole stack; fixtures in conftest.py): a member picks a Jupyter notebook in
"New notebook", which names it, and the Marimo editor opens on its cells; a
file the platform cannot read is refused in the dialog, naming why."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from browser_helpers import close_page, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
START_SECONDS = 120


def jupyter(code: str, output: str = "") -> bytes:
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "outputs": [{"output_type": "stream", "name": "stdout", "text": [output]}],
        "source": [code],
    }
    doc = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(doc).encode()


def new_notebook_dialog(page: Any) -> Any:
    page.get_by_role("button", name="New notebook").click()
    dialog = page.get_by_role("dialog", name="New notebook")
    expect(dialog.get_by_label("Workload config")).not_to_have_value("")
    return dialog


def notebook_names(stack: Any) -> list[str]:
    _, listed = stack.call("GET", "/workloads/notebooks")
    return [n["name"] for n in listed["included"]["notebooks"]]


def test_a_jupyter_notebook_brought_in_opens_in_the_editor(browser: Any, stack: Any) -> None:
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        dialog = new_notebook_dialog(page)
        chooser = dialog.get_by_label("Start from a file")
        # A name the member typed is theirs; one a file gave follows the file.
        dialog.get_by_label("Name").fill("Mine")
        chooser.set_input_files({"name": "a.py", "mimeType": "text/x-python", "buffer": b"x=1"})
        expect(dialog.get_by_label("Name")).to_have_value("Mine")
        dialog.get_by_label("Name").fill("")
        chooser.set_input_files({"name": "First.py", "mimeType": "text/x-python", "buffer": b"x"})
        expect(dialog.get_by_label("Name")).to_have_value("First")
        # Outputs of 2 MiB, over the API's 1 MiB body: the console leaves them out.
        file = jupyter("answer = 6 * 7", output="x" * (2 * 1024 * 1024))
        chooser.set_input_files(
            {"name": "Revenue forecast.ipynb", "mimeType": "application/json", "buffer": file}
        )
        expect(dialog.get_by_label("Name")).to_have_value("Revenue forecast")
        dialog.get_by_role("button", name="Create notebook").click()
        expect(dialog).to_be_hidden()
        row = page.locator(
            "#notebooks-body tr",
            has=page.get_by_role("link", name="Revenue forecast", exact=True),
        )
        nb_id = str(row.get_attribute("data-notebook-id"))

        row.get_by_role("button", name="Start Revenue forecast").click()
        stack.wait_provisioned(nb_id, START_SECONDS)
        row.get_by_role("button", name="Open Revenue forecast").click()
        frame = page.frame_locator("#open-frame")
        # The editor shows the Jupyter notebook's cell (CodeMirror splits a
        # line into spans; the content's text is the line).
        expect(frame.locator(".cm-content", has_text="answer = 6 * 7")).to_have_count(
            1, timeout=60_000
        )
    finally:
        close_page(page)


@pytest.mark.parametrize(
    ("file", "says"),
    [
        (
            {"name": "report.docx", "mimeType": "application/octet-stream", "buffer": b"PK"},
            "report.docx is not a notebook file: choose a .py, .ipynb or .md file.",
        ),
        (
            {
                "name": "broken.ipynb",
                "mimeType": "application/json",
                "buffer": b'{"cells": [{"cell_type": "code"}]}',
            },
            "Cell 1 of the Jupyter notebook has no source text.",
        ),
        (
            {"name": "huge.py", "mimeType": "text/x-python", "buffer": b"x = 1\n" * (200 * 1024)},
            "huge.py is too large: a new notebook can bring 1 MiB",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_in_the_dialog(
    browser: Any, stack: Any, file: dict[str, Any], says: str
) -> None:
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        dialog = new_notebook_dialog(page)
        dialog.get_by_label("Name").fill("Imported")
        dialog.get_by_label("Start from a file").set_input_files(file)
        dialog.get_by_role("button", name="Create notebook").click()
        expect(dialog.get_by_role("alert")).to_contain_text(says)
        expect(dialog).to_be_visible()  # the member can choose another file
        assert "Imported" not in notebook_names(stack)
    finally:
        close_page(page)


def test_a_notebooks_file_is_downloaded_from_its_page(
    browser: Any, stack: Any, settings: Any
) -> None:
    """The notebook's page downloads the copy of its file the platform keeps
    (here, before its first run, the file it was created from), named after
    the notebook; with no copy yet it says so rather than failing silently."""
    code = "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    total = 6 * 7\n"
    _, configs = stack.call("GET", "/workloads/configs")
    config = next(c["id"] for c in configs["items"] if c["name"] == "default")
    status, created = stack.call(
        "POST",
        "/workloads/notebooks",
        {
            "name": "Revenue (Q3)",
            "description": "The quarter's numbers",
            "workloadConfigId": config,
            "source": {"format": "py", "content": code},
        },
    )
    assert status == 201, created
    brought = created["item"]["notebookId"]
    status, created = stack.call(
        "POST", "/workloads/notebooks", {"name": "Blank", "workloadConfigId": config}
    )
    blank = created["item"]["notebookId"]
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{brought}'")
        button = page.get_by_role("button", name="Download .py")
        with page.expect_download() as got:
            button.click()
        download = got.value
        assert download.suggested_filename == "Revenue (Q3).py"
        assert Path(download.path()).read_text(encoding="utf-8") == code
        expect(page.locator("#nb-facts")).to_contain_text("Downloaded Revenue (Q3).py: the copy of")
        expect(button).to_be_focused()

        # A notebook of one's own from it: named, described and configured
        # as it is, starting from its file; then that notebook's page.
        page.locator("#nb-actions").get_by_role("button", name="Make a copy").click()
        dialog = page.get_by_role("dialog", name="Make a copy")
        expect(dialog.get_by_label("Name")).to_have_value("Revenue (Q3) (copy)")
        expect(dialog.get_by_label("Description")).to_have_value("The quarter's numbers")
        expect(dialog.get_by_label("Workload config")).to_have_value(config)
        expect(dialog).to_contain_text("Starts from the copy of Revenue (Q3)'s file")
        expect(dialog.get_by_label("Start from a file")).to_be_hidden()
        dialog.get_by_role("button", name="Create notebook").click()
        expect(dialog).to_be_hidden()
        expect(page.get_by_role("heading", name="Revenue (Q3) (copy)")).to_be_visible()
        copy = page.url.rsplit("/", 1)[1]
        assert copy != brought
        with page.expect_download() as got:
            page.get_by_role("button", name="Download .py").click()
        assert Path(got.value.path()).read_text(encoding="utf-8") == code
        # New notebook, opened next, is itself again.
        page.evaluate("location.hash = '#/notebooks'")
        page.get_by_role("button", name="New notebook").click()
        fresh = page.get_by_role("dialog", name="New notebook")
        expect(fresh.get_by_label("Name")).to_have_value("")
        expect(fresh.get_by_label("Start from a file")).to_be_visible()
        fresh.get_by_role("button", name="Cancel").click()

        page.evaluate(f"location.hash = '#/notebooks/{blank}'")
        expect(page.get_by_role("heading", name="Blank")).to_be_visible()
        page.get_by_role("button", name="Download .py").click()
        expect(page.locator("#nb-error")).to_have_text(
            "Could not download the file: No copy of this notebook's file is kept yet: one is"
            " taken while it runs and as it stops."
        )
        versions = page.get_by_role("button", name="Earlier versions", exact=True)
        versions.click()
        expect(versions).to_have_attribute("aria-expanded", "true")
        expect(page.locator("#nb-versions-list")).to_have_text(
            "None yet: one is kept once it has run."
        )
        versions.click()
        expect(page.locator("#nb-versions")).to_be_hidden()

        # Two versions, as the workers keep them: the earlier one, downloaded.
        with psycopg.connect(settings.database_url) as conn:
            older, newer = (
                conn.execute(
                    "insert into notebook_files (notebook_id, content, kept_at, session_id)"
                    " values (%s, %s, now() - make_interval(mins => %s), 'S1') returning id",
                    (blank, text, minutes),
                ).fetchone()[0]
                for text, minutes in ((code, 30), ("# emptied by mistake\n", 10))
            )
        versions.click()
        rows = page.locator("#nb-versions-list li")
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("the newest")
        with page.expect_download() as got:
            rows.nth(1).get_by_role("button", name=re.compile("^Download the version of")).click()
        _, listed = stack.call("GET", f"/workloads/notebooks/{blank}/file/versions")
        kept_at = next(v["keptAt"] for v in listed["items"] if v["version"] == str(older))
        stamp = kept_at[:16].replace("T", " ").replace(":", "")  # UTC, as the list's time
        assert got.value.suggested_filename == f"Blank {stamp}.py"
        assert Path(got.value.path()).read_text(encoding="utf-8") == code
        assert newer > older
        # The newest is the file already; the earlier one is restored, on a
        # question, for the next start: the newest again, saying whence.
        expect(rows.first.get_by_role("button", name=re.compile("^Restore"))).to_have_count(0)
        rows.nth(1).get_by_role("button", name=re.compile("^Restore the version of")).click()
        restore = page.get_by_role("alertdialog", name="Restore this version?")
        expect(restore).to_contain_text("when it next starts")
        restore.get_by_role("button", name="Restore", exact=True).click()
        expect(restore).to_be_hidden()
        expect(rows).to_have_count(3)
        expect(rows.first).to_contain_text("the newest · restored from the version of")
        with page.expect_download() as got:
            page.get_by_role("button", name="Download .py").click()
        assert Path(got.value.path()).read_text(encoding="utf-8") == code
        with psycopg.connect(settings.database_url) as conn:
            seeded = conn.execute(
                "select source, replaces is not null from notebook_seeds where notebook_id = %s",
                (blank,),
            ).fetchone()
        assert seeded == (code, True)  # what its next start writes over its file
        # Something secret was in it: all but the newest go, on a question.
        page.get_by_role("button", name="Forget earlier versions").click()
        question = page.get_by_role("alertdialog", name="Forget the earlier versions?")
        question.get_by_role("button", name="Forget earlier versions").click()
        expect(question).to_be_hidden()
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("the newest")
        # Another notebook's page starts with them out of sight.
        page.evaluate(f"location.hash = '#/notebooks/{brought}'")
        expect(page.get_by_role("heading", name="Revenue (Q3)", exact=True)).to_be_visible()
        expect(page.locator("#nb-versions")).to_be_hidden()
    finally:
        close_page(page)
