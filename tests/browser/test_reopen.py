"""Reopening a notebook, as members do all the time, in headless Chromium
against the whole stack (api, worker, proxy, local runtime with real Sail and
Marimo; fixtures in conftest.py).

Rounds of: open → run a cell → reload the iframe → close it and open again
from a fresh `open` URL → open a second tab (Marimo's one-editor rule: the
second tab is a reader with a "Take over" button; taking over moves editing
there) → a team viewer opens meanwhile, once with the editor's own session id
in a kiosk link. After every step the editor is usable: a new cell runs and
shows its output, on the same Marimo session (never a dead page).

Marimo 0.25 without the proxy's fix (proxy/policy.py, VIEWER_SESSION_PREFIX):
the viewer's kiosk consumer took the editor's place in Marimo's consumer
table, the editor's next cell never showed its output (measured: this test
then fails there), and once the editor left, the next one got a second
session and every later `/ws` closed ("Only one session should exist while
editing"; see tests/integration/proxy/test_proxy_marimo.py).
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
START_SECONDS = 120  # worker pickup + Sail + Marimo on a busy 2-core machine
READER = "You are currently connected as a reader."


def _create_running_notebook(stack: Any) -> str:
    _, configs = stack.call("GET", "/workloads/configs")
    config_id = next(c["id"] for c in configs["items"] if c["name"] == "default")
    code, created = stack.call(
        "POST", "/workloads/notebooks", {"name": "Reopened", "workloadConfigId": config_id}
    )
    assert code == 201, created
    nb_id = str(created["included"]["notebooks"][0]["id"])
    code, body = stack.call("POST", f"/workloads/notebooks/{nb_id}/start")
    assert code in (200, 202), body

    stack.wait_provisioned(nb_id, START_SECONDS)
    return nb_id


def _team_viewer(stack: Any, nb_id: str) -> str:
    """A member who views the notebook through a team; its API token."""
    code, member = stack.call("POST", "/members", {"email": "v@example.com", "name": "Vi"})
    assert code == 201, member
    code, tok = stack.call("POST", f"/members/{member['id']}/tokens", {"name": "browser"})
    assert code == 201, tok
    code, team = stack.call("POST", "/teams", {"name": "readers"})
    assert code == 201, team
    code, body = stack.call(
        "PUT", f"/teams/{team['id']}/members/{member['id']}", {"role": "viewer"}
    )
    assert code == 200, body
    code, body = stack.call(
        "POST", f"/workloads/notebooks/{nb_id}/teams", {"teamIds": [team["id"]]}
    )
    assert code == 200, body
    return str(tok["token"])


class Tab:
    """One browser tab of the platform: a page on the API's origin (same
    site as the proxy, allowed by frame-ancestors) embedding the `open` URL."""

    def __init__(self, context: Any, stack: Any, nb_id: str, token: str | None = None) -> None:
        self.page = context.new_page()
        self.stack, self.nb_id, self.token = stack, nb_id, token
        self.session_ids: list[str] = []  # Marimo session ids of this tab's /ws, in order
        self.page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: Any) -> None:
        if "/ws?" in ws.url and "session_id=" in ws.url:
            self.session_ids.append(ws.url.split("session_id=")[1].split("&")[0])

    def open(self) -> str:
        """Ask the API for a fresh `open` URL and embed it; returns the mode."""
        code, body = self.stack.call(
            "POST", f"/workloads/notebooks/{self.nb_id}/open", token=self.token
        )
        assert code == 200, body
        if not self.page.url.startswith(self.stack.api_url):
            self.page.goto(self.stack.api_url + "/healthz")
        self.page.evaluate(
            """url => {
                document.body.innerHTML = "";
                const f = document.createElement("iframe");
                f.id = "nb"; f.src = url; f.style = "width:1200px;height:700px";
                document.body.appendChild(f);
            }""",
            body["url"],
        )
        self.frame.locator(".cm-editor").first.wait_for(timeout=60_000)
        return str(body["mode"])

    @property
    def frame(self) -> Any:
        return self.page.frame_locator("#nb")

    def inner(self) -> Any:
        return next(f for f in self.page.frames if f.url.startswith(self.stack.proxy_url))

    def reload_iframe(self) -> None:
        self.inner().evaluate("location.reload()")
        self.frame.locator(".cm-editor").first.wait_for(timeout=60_000)

    def close_iframe(self) -> None:
        self.page.evaluate("document.getElementById('nb').remove()")

    def expect_kiosk(self) -> None:
        """Read-only: Marimo's kiosk badge, outputs (the template's Spark
        table), no run buttons."""
        self.frame.get_by_text("kiosk mode").first.wait_for(timeout=30_000)
        self.frame.get_by_text("1 row, 1 column").first.wait_for(timeout=30_000)
        assert self.frame.locator("[data-testid=run-button]").count() == 0

    def run_new_cell(self, value: int) -> None:
        """Add a Python cell, type an expression, run it, see its output."""
        frame = self.frame
        frame.get_by_text(READER).wait_for(state="hidden", timeout=15_000)
        frame.get_by_role("button", name="Python").first.click()
        frame.locator(".cm-editor").last.locator(".cm-content").click()
        self.page.keyboard.type(f"{value - 1} + 1")  # the output is in no code
        self.page.keyboard.press("Escape")
        frame.locator("[data-testid=run-button]").last.click()
        frame.get_by_text(str(value), exact=True).first.wait_for(timeout=60_000)


def _marimo_sessions(stack: Any, tab: Tab) -> int:
    """How many editing sessions Marimo holds (its /api/status, as the editor)."""
    got = tab.inner().evaluate("async () => (await (await fetch('./api/status')).json()).sessions")
    return int(got)


def test_reload_reopen_second_tab_and_viewers_keep_the_editor_usable(
    browser: Any, stack: Any, wait: Any, artifacts: Any
) -> None:
    nb_id = _create_running_notebook(stack)
    viewer_token = _team_viewer(stack, nb_id)
    owner = browser.new_context(viewport=LAPTOP)
    viewers = browser.new_context(viewport=LAPTOP)
    tab = Tab(owner, stack, nb_id)
    value = 7000
    try:
        for round_no in range(2):
            # Open, run.
            assert tab.open() == "edit"
            value += 1
            tab.run_new_cell(value)

            # Reload the iframe (same cookie, a new Marimo page and /ws).
            tab.reload_iframe()
            value += 1
            tab.run_new_cell(value)

            # Close it, open again from a fresh single-use URL.
            tab.close_iframe()
            assert tab.open() == "edit"
            value += 1
            tab.run_new_cell(value)

            # A second tab: Marimo makes it a reader offering "Take over";
            # the first tab still edits. Taking over moves editing there.
            second = Tab(owner, stack, nb_id)
            assert second.open() == "edit"
            second.frame.get_by_text(READER).wait_for(timeout=30_000)
            value += 1
            tab.run_new_cell(value)
            second.frame.locator("[data-testid=takeover-button]").click()
            value += 1
            second.run_new_cell(value)
            tab.frame.get_by_text(READER).wait_for(timeout=30_000)
            second.page.screenshot(path=str(artifacts / f"reopen-second-tab-{round_no}.png"))
            second.page.close()

            # A team viewer opens meanwhile: read-only (kiosk), sees the outputs.
            # (Only what was there when it attached: Marimo sends kiosk viewers
            # new outputs of known cells, not cells added since.)
            viewer = Tab(viewers, stack, nb_id, token=viewer_token)
            assert viewer.open() == "view"
            viewer.expect_kiosk()
            # ... also through a kiosk link carrying the editor's own session id
            # (what wedged Marimo before the proxy namespaced viewer ids).
            tab.reload_iframe()  # the first tab edits again (its reader tab was left)
            editor_sid = tab.session_ids[-1]
            viewer.inner().goto(
                f"{stack.proxy_url}/notebooks/{nb_id}/?session_id={editor_sid}&kiosk=true"
            )
            viewer.expect_kiosk()
            value += 1
            tab.run_new_cell(value)

            # The owner leaves while the viewer stays; the next round reopens.
            tab.close_iframe()
            if round_no == 1:
                viewer.page.screenshot(path=str(artifacts / "reopen-viewer.png"))
            viewer.page.close()

        assert tab.open() == "edit"
        value += 1
        tab.run_new_cell(value)
        assert _marimo_sessions(stack, tab) == 1
        tab.page.screenshot(path=str(artifacts / "reopen-editor.png"))
    except BaseException:
        for i, pg in enumerate(owner.pages + viewers.pages):  # for the post-mortem
            pg.screenshot(path=str(artifacts / f"reopen-failed-{i}.png"))
        raise
    finally:
        viewers.close()
        owner.close()
