"""The web console in headless Chromium against the whole stack (api, worker,
proxy, local runtime with real Sail and Marimo; fixtures in conftest.py).

- the main path: paste token → create → start → running → open → run a
  Spark cell in the Marimo iframe → stop, plus a team viewer who gets the
  read-only badge, with screenshots of the list and the open notebook;
- the rest: errors shown as the API's own `detail`, rename, teams on a
  notebook, workload configs, delete with confirmation, the phone layout.

Screenshots land in tests/artifacts/ (git-ignored); docs/console-*.png are
copies of one run, for the README.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import close_page, flush_requests, set_visibility, sign_in
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# sum(0..9) = 45, so 45007 can only come from Sail having run the query.
SPARK_CELL = 'spark.range(10).selectExpr("sum(id) * 1000 + 7 as answer").collect()[0][0]'
SPARK_ANSWER = "45007"
START_SECONDS = 120  # worker pickup + Sail + Marimo on a busy 2-core machine


def row(page: Any, name: str) -> Any:
    return page.locator("#notebooks-body tr", has=page.get_by_role("link", name=name, exact=True))


def create_notebook(
    page: Any,
    wait: Any,
    name: str,
    description: str = "",
    teams: tuple[str, ...] = (),
    config: str | None = None,
) -> str:
    page.get_by_role("button", name="New notebook").click()
    dialog = page.get_by_role("dialog", name="New notebook")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Description").fill(description)
    # The default workload config made by the bootstrap is offered and chosen.
    select = dialog.get_by_label("Workload config")
    wait(lambda: select.input_value(), 10, "workload configs in the form")
    assert select.locator("option:checked").inner_text() == "default"
    if config:
        select.select_option(label=config)
    for team in teams:
        dialog.get_by_label(team).check()
    dialog.get_by_role("button", name="Create notebook").click()
    dialog.wait_for(state="hidden")
    row(page, name).wait_for()
    return str(row(page, name).get_attribute("data-notebook-id"))


def run_spark_cell(page: Any) -> None:
    """Add a Python cell in the Marimo iframe, type Spark code, run all stale
    cells (the template's SparkSession cell and ours), wait for the result."""
    frame = page.frame_locator("#open-frame")
    frame.get_by_role("button", name="Python").first.click()
    frame.locator(".cm-editor").last.locator(".cm-content").click()
    page.keyboard.type(SPARK_CELL)
    page.keyboard.press("Escape")
    run = frame.locator("[data-testid=run-button]").last
    answer = frame.get_by_text(SPARK_ANSWER, exact=True).first
    run.click()
    try:
        answer.wait_for(timeout=60_000)
    except PlaywrightTimeoutError:
        # Seen once in CI (stop 13): Marimo's kernel failed that first run
        # with an internal error of its own ("did not produce a run result",
        # then KeyError in its cancellation hook). A member runs it again;
        # so does the test, once. The kernel's log is kept in the stack's
        # data directory for a look.
        run.click()
        answer.wait_for(timeout=60_000)


def share_with_viewer(stack: Any, nb_id: str) -> str:
    """A second member, a viewer of a team the notebook is shared with; its token."""
    code, member = stack.call(
        "POST", "/members", {"email": "viewer@example.com", "name": "Vera Viewer"}
    )
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


def is_ping(response: Any) -> bool:
    return bool(response.request.method == "POST" and response.url.endswith("/ping"))


def test_paste_token_create_start_open_run_spark_stop(
    browser: Any, stack: Any, wait: Any, artifacts: Path
) -> None:
    page = browser.new_page(viewport=LAPTOP)
    pings: list[int] = []  # statuses of every ping answered, in order
    page.on("response", lambda r: pings.append(r.status) if is_ping(r) else None)
    pings_sent: list[str] = []  # every ping sent, answered or not

    def count_ping(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/ping"):
            pings_sent.append(request.url)

    page.on("request", count_ping)
    sign_in(page, stack.api_url, stack.token)
    nb_id = create_notebook(page, wait, "Spark demo", "Sums numbers on Sail")
    nb = row(page, "Spark demo")
    assert nb.get_attribute("data-status") == "stopped"
    assert "you" in nb.inner_text()

    # Start: the row shows `starting` with its real statusMessage, then a
    # provisioned status with an Open button, without reloading the page.
    nb.get_by_role("button", name="Start Spark demo").click()
    seen: list[tuple[str, str]] = []

    def provisioned() -> bool:
        status = nb.get_attribute("data-status") or ""
        message = nb.locator(".status-message").all_inner_texts()
        seen.append((status, message[0] if message else ""))
        assert status != "failed", f"start failed: {seen[-1]}\n{stack.log_tails()}"
        return status in ("running", "idle", "detached")

    wait(provisioned, START_SECONDS, "the notebook to run")
    starting = [m for s, m in seen if s == "starting"]
    assert starting, f"`starting` never shown: {seen}"
    assert any(starting), f"no statusMessage shown while starting: {seen}"

    # Open: Marimo in the iframe through the proxy, and a presence ping at once
    # (which makes the notebook `running`).
    with page.expect_response(is_ping) as first_ping:
        nb.get_by_role("button", name="Open Spark demo").click()
    assert first_ping.value.status == 204
    page.get_by_role("heading", name="Spark demo").wait_for()
    frame_el = page.locator("#open-frame")
    frame_el.wait_for(state="visible")
    assert re.match(
        rf"{re.escape(stack.proxy_url)}/notebooks/{nb_id}/_open\?token=",
        frame_el.get_attribute("src") or "",
    )
    assert page.locator("#open-mode").inner_text() == "Editing"
    # A shared notebook's popups stay sandboxed: an escaped one would keep
    # `window.opener` and could send this tab to a fake sign-in page.
    sandbox = (frame_el.get_attribute("sandbox") or "").split()
    assert "allow-scripts" in sandbox and "allow-popups-to-escape-sandbox" not in sandbox
    page.frame_locator("#open-frame").locator(".cm-editor").first.wait_for(timeout=60_000)
    page.locator("#open-status .status-running").wait_for(timeout=15_000)

    run_spark_cell(page)
    page.screenshot(path=str(artifacts / "console-open.png"))

    # A team viewer opening it while the owner is active gets the read-only badge.
    viewer_token = share_with_viewer(stack, nb_id)
    viewer = browser.new_page(viewport=LAPTOP)
    sign_in(viewer, stack.api_url, viewer_token)
    assert "Admin" in row(viewer, "Spark demo").inner_text()  # the owner, by name
    row(viewer, "Spark demo").get_by_role("button", name="Open Spark demo").click()
    viewer.locator("#open-mode", has_text="Read-only").wait_for()
    viewer.frame_locator("#open-frame").locator(".cm-editor").first.wait_for(timeout=60_000)
    close_page(viewer)

    # Stopped and started again from elsewhere (here the API) while it is open:
    # the view says so and drops the dead editor, then opens the new session
    # by itself, with a fresh single-use URL.
    first_src = page.locator("#open-frame").get_attribute("src")
    code, _ = stack.call("POST", f"/workloads/notebooks/{nb_id}/stop")
    assert code == 202
    page.locator("#open-status .status-stopped").wait_for(timeout=60_000)
    page.locator("#open-frame").wait_for(state="hidden")
    assert "It opens here when it runs." in page.locator("#open-message").inner_text()
    # stopped, it offers Start (not a disabled Stop)
    assert page.get_by_role("button", name="Start notebook").is_visible()
    assert page.locator("#open-stop").is_hidden()
    code, _ = stack.call("POST", f"/workloads/notebooks/{nb_id}/start")
    assert code == 202
    reopened = page.locator("#open-frame")
    reopened.wait_for(state="visible", timeout=START_SECONDS * 1000)
    assert (reopened.get_attribute("src") or first_src) != first_src
    page.frame_locator("#open-frame").locator(".cm-editor").first.wait_for(timeout=60_000)
    page.locator("#open-status .status-running").wait_for(timeout=15_000)

    # Back to the list: running, owned by us, shared with the team, active just now.
    page.get_by_role("link", name="Notebooks", exact=True).first.click()
    nb.locator(".status-running").wait_for()
    # The team was shared after this list was last drawn: wait for the next poll.
    nb.get_by_text("readers").wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts / "console-list.png"))

    # Open again (a fresh single-use URL); then, on a controlled clock, the
    # ping comes every 60 s only while the tab is visible, and at once when
    # the member comes back after a minute away.
    page.clock.install()
    with page.expect_response(is_ping):
        nb.get_by_role("button", name="Open Spark demo").click()
    page.frame_locator("#open-frame").locator(".cm-editor").first.wait_for(timeout=60_000)
    with page.expect_response(is_ping):
        page.clock.fast_forward(61_000)
    before = len(pings_sent)
    set_visibility(page, "hidden")
    page.clock.fast_forward(121_000)
    flush_requests(page)
    assert len(pings_sent) == before, "pinged while the tab was hidden"
    with page.expect_response(is_ping):
        set_visibility(page, "visible")
    assert set(pings) == {204}, pings

    # Stop from the open view: it stays (the editor saves what was typed
    # last while the notebook stops), then says so; its page has the history.
    page.get_by_role("button", name="Stop notebook").click()
    page.locator("#open-status .status-stopped").wait_for(timeout=60_000)
    page.locator("#open-frame").wait_for(state="hidden")
    page.locator("#open-back").click()
    page.locator("#nb-status .status-stopped").wait_for(timeout=15_000)
    code, described = stack.call("GET", f"/workloads/notebooks/{nb_id}")
    assert code == 200
    assert described["included"]["notebooks"][0]["status"] == "stopped"

    # Its history, newest first: the stop, who asked for it, what the platform did.
    history = page.locator("#nb-history li")
    history.first.locator(".status-stopped").wait_for(timeout=15_000)
    changes = history.all_inner_texts()
    assert any("Stop requested" in c and "you" in c for c in changes), changes
    assert any("the platform" in c for c in changes), changes
    close_page(page)


def test_errors_rename_teams_configs_delete_and_phone_layout(
    browser: Any, stack: Any, wait: Any, artifacts: Path
) -> None:
    page = browser.new_page(viewport=LAPTOP)

    # A wrong token: the API's own problem detail, not a generic message.
    page.goto(stack.api_url + "/")
    page.get_by_label("API token").fill("not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    _, problem = stack.call("GET", "/me", token="not-a-real-token")
    page.locator("#signin-error").wait_for()
    assert page.locator("#signin-error").inner_text() == problem["detail"]
    sign_in(page, stack.api_url, stack.token)

    # Every form control has a label.
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input,select,textarea')]
        .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
        .map(el => el.id || el.name)""")
    assert unlabeled == []

    # Workload configs: a validation error verbatim, then a real create.
    page.get_by_role("link", name="Workload configs").click()
    form = page.locator("#config-form")
    form.get_by_label("Name").fill("big")
    page.locator("#cfg-sail-cpu").fill("lots")
    form.get_by_role("button", name="Create workload config").click()
    page.locator("#config-form-error").wait_for()
    _, bad = stack.call(
        "POST", "/workloads/configs", {"name": "big", "mode": "standalone", "sail": {"cpu": "lots"}}
    )
    assert page.locator("#config-form-error").inner_text() == bad["detail"]
    page.locator("#cfg-sail-cpu").fill("2")
    page.locator("#cfg-sail-memory").fill("4Gi")
    # An environment Sail refuses to start with: used below for a failed start.
    page.locator("#cfg-env").fill("SAIL_EXECUTION__BATCH_SIZE=lots")
    form.get_by_role("button", name="Create workload config").click()
    big = page.locator("#configs-body tr", has_text="big")
    big.wait_for()
    shown = big.inner_text()
    assert "2 CPU, 4Gi memory" in shown and "SAIL_EXECUTION__BATCH_SIZE" in shown
    _, configs = stack.call("GET", "/workloads/configs")
    assert {c["name"] for c in configs["items"]} == {"default", "big"}
    assert [c["env"] for c in configs["items"] if c["name"] == "big"] == [
        {"SAIL_EXECUTION__BATCH_SIZE": "lots"}
    ]

    # A notebook shared with a team at creation, then renamed.
    teams = {}
    for name in ("data-eng", "analysts"):
        code, team = stack.call("POST", "/teams", {"name": name})
        assert code == 201, team
        teams[name] = team["id"]
    page.get_by_role("link", name="Notebooks", exact=True).first.click()
    nb_id = create_notebook(page, wait, "Quarterly report", teams=("data-eng",))
    assert "data-eng" in row(page, "Quarterly report").inner_text()
    row(page, "Quarterly report").get_by_role("button", name="Edit Quarterly report").click()
    dialog = page.get_by_role("dialog", name="Edit notebook")
    dialog.get_by_label("Name").fill("Quarterly report v2")
    dialog.get_by_role("button", name="Save").click()
    row(page, "Quarterly report v2").wait_for()
    _, described = stack.call("GET", f"/workloads/notebooks/{nb_id}")
    assert described["included"]["notebooks"][0]["name"] == "Quarterly report v2"

    # Teams on the notebook: remove one, add another.
    row(page, "Quarterly report v2").get_by_role("link").click()
    page.get_by_role("heading", name="Quarterly report v2").wait_for()
    page.get_by_role("button", name="Remove team data-eng").click()
    asked = page.get_by_role("alertdialog", name="Remove team data-eng?")
    assert "Members of data-eng lose access to Quarterly report v2" in asked.inner_text()
    asked.get_by_role("button", name="Remove team").click()
    page.get_by_text("Not shared with any team.").wait_for()
    page.get_by_label("Add a team").select_option(label="analysts")
    page.get_by_role("button", name="Add team").click()
    page.get_by_role("button", name="Remove team analysts").wait_for()
    _, linked = stack.call("GET", f"/workloads/notebooks/{nb_id}/teams")
    assert [t["id"] for t in linked["items"]] == [teams["analysts"]]

    # A refusal from the API, shown as its detail: save an edit of a notebook
    # someone else deleted meanwhile.
    page.get_by_role("link", name="All notebooks").click()
    other_id = create_notebook(page, wait, "Scratch")
    row(page, "Scratch").get_by_role("button", name="Edit Scratch").click()
    assert stack.call("DELETE", f"/workloads/notebooks/{other_id}")[0] == 204
    dialog.get_by_label("Name").fill("Scratch 2")
    dialog.get_by_role("button", name="Save").click()
    _, gone = stack.call("PATCH", f"/workloads/notebooks/{other_id}", {"name": "Scratch 2"})
    page.locator("#edit-error").wait_for()
    assert page.locator("#edit-error").inner_text() == gone["detail"]
    dialog.get_by_role("button", name="Cancel").click()
    row(page, "Scratch").wait_for(state="detached", timeout=15_000)

    # A failed start shows the reconciler's real reason, and Start again.
    failing_id = create_notebook(page, wait, "Doomed", config="big")
    failing = row(page, "Doomed")
    failing.get_by_role("button", name="Start Doomed").click()
    failing.locator(".status-failed").wait_for(timeout=START_SECONDS * 1000)
    _, described = stack.call("GET", f"/workloads/notebooks/{failing_id}")
    reason = described["included"]["notebooks"][0]["statusMessage"]
    assert "Sail exited" in reason and "BATCH_SIZE" in reason, reason
    # The list tells a log tail by its head and last line, where the error
    # is (cut to four lines, it showed "Traceback (most recent call last):").
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    brief = failing.locator(".status-message")
    assert brief.text_content() == f"Sail exited with code 1: … {lines[-1]}"
    assert "BATCH_SIZE" in lines[-1], reason
    assert brief.get_attribute("title") == reason
    failing.get_by_role("button", name="Start Doomed").wait_for()
    failing.get_by_role("link", name="Doomed").click()
    page.get_by_role("heading", name="Doomed").wait_for()
    assert page.locator("#nb-message").text_content() == reason
    page.get_by_role("link", name="All notebooks").click()

    # Phone width: no sideways scrolling, rows become cards.
    page.set_viewport_size(PHONE)
    row(page, "Quarterly report v2").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(artifacts / "console-phone.png"))
    page.set_viewport_size(LAPTOP)

    # Delete asks first: Cancel keeps the notebook, Delete removes it.
    delete = row(page, "Quarterly report v2").get_by_role(
        "button", name="Delete Quarterly report v2"
    )
    delete.click()
    confirm = page.get_by_role("alertdialog")
    confirm.get_by_role("button", name="Cancel").click()
    confirm.wait_for(state="hidden")
    assert stack.call("GET", f"/workloads/notebooks/{nb_id}")[0] == 200
    delete.click()
    confirm.get_by_role("button", name="Delete notebook").click()
    row(page, "Quarterly report v2").wait_for(state="detached")
    assert stack.call("GET", f"/workloads/notebooks/{nb_id}")[0] == 404

    # The token survives a reload (sessionStorage): no sign-in page.
    page.reload()
    row(page, "Doomed").wait_for()
    close_page(page)
