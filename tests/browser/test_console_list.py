"""The console's notebook list at an organization's scale, its sign-out and
what a team viewer is offered, in headless Chromium against the whole stack
(fixtures in conftest.py).

- the list shows one page of the API's keyset pages at a time and polls only
  that page (never every page), with next/previous, a page size and a team
  filter, keeps status changes live on any page, refreshes at once when the
  tab comes back, and keeps keyboard focus where it was;
- signing out (or a 401) leaves nothing of the member in the tab: no token
  in storage, no notebook frame, no names or ids in the page, no timers, no
  route; a team viewer signing in next sees only what it may do.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import (
    close_page,
    create_notebook_via_api,
    flush_requests,
    set_visibility,
    settle,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
START_SECONDS = 120  # worker pickup + Sail + Marimo on a busy 2-core machine
LIST_PATH = re.compile(r"/api/v1/workloads/(notebooks|teams/[A-Z0-9]+/notebooks)$")


def names(page: Any) -> list[str]:
    return [str(n) for n in page.locator("#notebooks-body .nb-link").all_inner_texts()]


def list_requests(requests: list[Any]) -> list[tuple[str, dict[str, list[str]]]]:
    """(path, query) of every notebook list the page asked the API for."""
    out = []
    for url in requests:
        parsed = urlparse(url)
        if LIST_PATH.search(parsed.path):
            out.append((parsed.path, parse_qs(parsed.query)))
    return out


def is_list(response: Any) -> bool:
    return bool(response.request.method == "GET" and LIST_PATH.search(urlparse(response.url).path))


def test_list_pages_polls_one_page_filters_by_team_and_keeps_focus(
    browser: Any, stack: Any, wait: Any
) -> None:
    code, team = stack.call("POST", "/teams", {"name": "data-eng"})
    assert code == 201, team
    ids = {}
    for i in range(61):  # 50 a page: two pages, the second with 11
        ids[i] = create_notebook_via_api(stack, f"bulk {i:03}", [team["id"]] if i < 3 else None)

    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()  # polls on demand (time still flows)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.method == "GET" else None)

    # A token pasted with typographic quotes is refused for what it is, not
    # as "Cannot reach the API" (fetch refuses such a header).
    page.goto(stack.api_url + "/")
    page.get_by_label("API token").fill(f"“{stack.token}”")
    page.get_by_label("API token").press("Enter")
    assert "That is not an API token" in page.locator("#signin-error").inner_text()
    sign_in(page, stack.api_url, stack.token)

    # Page 1: the newest 50, one request of 50, however many there are.
    page.locator("#notebooks-body tr").nth(49).wait_for()
    assert names(page) == [f"bulk {i:03}" for i in range(60, 10, -1)]
    assert page.locator("#page-info").inner_text() == "Page 1 of 2 · 61 notebooks"
    assert page.get_by_role("button", name="Previous page").is_disabled()
    with page.expect_response(is_list):
        page.clock.fast_forward(10_000)  # a poll
    asked = list_requests(requests)
    # One request on signing in (one navigation, not two), one per poll.
    assert len(asked) == 2 and all(q == {"limit": ["50"]} for _, q in asked), asked

    # Next page, from the keyboard: the other 11; Next is then disabled and
    # focus stays on the pager (Previous), not lost to the page's body.
    page.get_by_role("button", name="Next page").focus()
    page.keyboard.press("Enter")
    page.get_by_text("Page 2 of 2 · 61 notebooks").wait_for()
    assert names(page) == [f"bulk {i:03}" for i in range(10, -1, -1)]
    assert page.get_by_role("button", name="Next page").is_disabled()
    assert page.evaluate("document.activeElement.id") == "page-prev"

    # Polling re-reads page 2 only (its marker), and a change there shows up.
    requests.clear()
    assert stack.call("PATCH", f"/workloads/notebooks/{ids[5]}", {"name": "bulk 005 v2"})[0] == 200
    with page.expect_response(is_list):
        page.clock.fast_forward(10_000)
    page.get_by_role("link", name="bulk 005 v2", exact=True).wait_for()
    asked = list_requests(requests)
    markers = {q["marker"][0] for _, q in asked}
    assert len(markers) == 1 and all(q["limit"] == ["50"] for _, q in asked), asked

    # A phone: the filters and the pager fit, no sideways scrolling.
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.get_by_role("button", name="Previous page").is_visible()
    page.set_viewport_size(LAPTOP)

    # Previous: page 1 again.
    page.get_by_role("button", name="Previous page").click()
    page.get_by_text("Page 1 of 2 · 61 notebooks").wait_for()
    assert names(page)[0] == "bulk 060"

    # 100 a page: all 61 on one page, no paging buttons.
    page.get_by_label("Per page").select_option("100")
    page.get_by_text("61 notebooks", exact=True).wait_for()
    assert len(names(page)) == 61
    assert not page.get_by_role("button", name="Next page").is_visible()

    # Only the notebooks shared with a team (the API's team list).
    requests.clear()
    page.get_by_label("Shared with team").select_option(label="data-eng")
    page.get_by_text("3 notebooks", exact=True).wait_for()
    assert names(page) == ["bulk 002", "bulk 001", "bulk 000"]
    assert [p for p, _ in list_requests(requests)][-1].endswith(f"/teams/{team['id']}/notebooks")
    page.get_by_label("Shared with team").select_option(label="Any (all you can see)")
    page.get_by_text("61 notebooks", exact=True).wait_for()

    # A refused action far down the page: its message (above the list) is
    # brought into view, not left off screen.
    assert stack.call("DELETE", f"/workloads/notebooks/{ids[1]}")[0] == 204
    page.get_by_role("button", name="Start bulk 001").click()
    error = page.locator("#notebooks-error")
    error.get_by_text("Could not start").wait_for()
    in_view = "el => el.getBoundingClientRect().top >= 0"
    assert error.evaluate(in_view + " && el.getBoundingClientRect().bottom <= innerHeight")
    page.clock.fast_forward(10_000)  # the next poll drops the deleted row
    page.get_by_text("60 notebooks", exact=True).wait_for()

    # Delete from the keyboard: focus lands on the row that took its place.
    row = page.locator("#notebooks-body tr", has=page.get_by_role("link", name="bulk 030"))
    row.get_by_role("button", name="Delete bulk 030").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("alertdialog")
    dialog.wait_for()
    page.keyboard.press("Tab")  # from Cancel (the default) to Delete
    page.keyboard.press("Enter")
    row.wait_for(state="detached")
    wait(
        lambda: page.evaluate("document.activeElement.textContent") == "bulk 029",
        5,
        "focus on the next row",
    )

    # Hidden tab: polls slow down to 30 s; shown again after more than 10 s,
    # it polls at once instead of showing a list up to 30 s old.
    set_visibility(page, "hidden")
    with page.expect_response(is_list):
        page.clock.fast_forward(10_000)  # the poll that schedules the hidden rate
    # Drawn, and the next poll scheduled (the list is busy until then).
    page.locator("#notebooks-table:not([aria-busy])").wait_for(state="attached")
    page.clock.fast_forward(15_000)
    assert stack.call("PATCH", f"/workloads/notebooks/{ids[40]}", {"name": "bulk 040 v2"})[0] == 200
    set_visibility(page, "visible")
    page.get_by_role("link", name="bulk 040 v2", exact=True).wait_for(timeout=4_000)

    # A notebook's page shows nothing of the one shown before while it loads.
    page.get_by_role("link", name="bulk 060", exact=True).click()
    page.locator("#nb-facts", has_text=ids[60]).wait_for()
    held: list[Any] = []
    pattern = f"**/api/v1/workloads/notebooks/{ids[59]}"
    page.route(pattern, lambda route: held.append(route))
    page.evaluate("id => { location.hash = '#/notebooks/' + id; }", ids[59])
    wait(lambda: held or page.wait_for_timeout(100), 10, "the describe request")
    shown = page.locator("#view-notebook").inner_text()
    assert ids[60] not in shown and "bulk 060" not in shown, shown
    for route in held:
        route.continue_()
    page.unroute(pattern)
    page.locator("#nb-facts", has_text=ids[59]).wait_for()
    close_page(page)


def test_sign_out_leaves_nothing_behind_and_a_viewer_sees_only_its_actions(
    browser: Any, stack: Any, wait: Any
) -> None:
    nb_id = create_notebook_via_api(stack, "Secret plans")
    code, body = stack.call("POST", f"/workloads/notebooks/{nb_id}/start")
    assert code == 202, body
    code, member = stack.call("POST", "/members", {"email": "v@example.com", "name": "Vi Ewer"})
    assert code == 201, member
    code, viewer_token = stack.call("POST", f"/members/{member['id']}/tokens", {"name": "b"})
    assert code == 201, viewer_token
    code, team = stack.call("POST", "/teams", {"name": "readers"})
    assert code == 201, team
    assert (
        stack.call("PUT", f"/teams/{team['id']}/members/{member['id']}", {"role": "viewer"})[0]
        == 200
    )
    assert (
        stack.call("POST", f"/workloads/notebooks/{nb_id}/teams", {"teamIds": [team["id"]]})[0]
        == 200
    )

    stack.wait_provisioned(nb_id, START_SECONDS)

    def traces(page: Any, secret: str, route: bool = True) -> list[str]:
        """What of the signed-in member is still in the tab."""
        found = []
        html = page.content()
        found += [f"page shows {s!r}" for s in ("Secret plans", nb_id) if s in html]
        stored = page.evaluate("JSON.stringify([{...sessionStorage}, {...localStorage}])")
        found += [f"storage: {stored}"] if secret in stored or "notebooks.token" in stored else []
        frames = page.main_frame.child_frames
        found += [f"frame {f.url!r}" for f in frames if f.url not in ("", "about:blank")]
        found += [f"iframe src {s}" for s in page.locator("iframe[src]").all()]
        found += [f"route {page.url}"] if route and "#/" in page.url else []
        return found

    def console_tokens() -> list[dict[str, Any]]:
        _, mine = stack.call("GET", f"/members/{stack.member_id}/tokens")
        return [t for t in mine["items"] if t["name"] == "console sign-in"]

    # The owner signs in (the console mints its own 12 h token and keeps only
    # that one), opens the notebook, then signs out while it is open.
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    (own,) = console_tokens()
    assert own["expiresAt"] is not None
    stored = page.evaluate("JSON.stringify({...sessionStorage})")
    assert stack.token not in stored and own["prefix"] in stored
    page.get_by_role("button", name="Open Secret plans").click()
    page.locator("#open-frame").wait_for(state="visible")
    page.frame_locator("#open-frame").locator(".cm-editor").first.wait_for(timeout=60_000)
    notebook_page = f"{stack.proxy_url}/notebooks/{nb_id}/"
    probe = page.request  # shares the browser's cookies, the proxy's included
    assert probe.get(notebook_page).status == 200
    after: list[str] = []
    page.on(
        "request", lambda r: after.append(r.method + " " + r.url) if "/api/v1/" in r.url else None
    )
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert traces(page, stack.token) == []
    # Its token is revoked: the notebook session it opened in this browser
    # ends at the proxy too, while the token pasted in still works.
    assert after == [f"DELETE {stack.api_url}/api/v1/members/{stack.member_id}/tokens/{own['id']}"]
    assert console_tokens() == []
    wait(lambda: probe.get(notebook_page).status == 403, 15, "the proxy to refuse the cookie")
    assert stack.call("GET", "/me")[0] == 200
    after.clear()
    page.clock.install()
    page.clock.fast_forward(130_000)  # past a list poll and a ping
    flush_requests(page)
    assert after == [], after
    page.go_back()  # the member's earlier views do not come back
    page.wait_for_function("() => location.hash !== ''")  # back on the earlier entry
    page.get_by_role("heading", name="Sign in").wait_for()
    settle(page)  # whatever that entry's route queued has run: still signed out
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert page.locator("#nav").is_hidden()
    assert traces(page, stack.token, route=False) == []

    # A team viewer signs in next in the same tab: the list (not the owner's
    # last page), and only what a viewer may do: open it.
    page.goto(stack.api_url + "/")
    sign_in(page, stack.api_url, viewer_token["token"])
    assert page.url.endswith("#/notebooks")
    row = page.locator("#notebooks-body tr", has=page.get_by_role("link", name="Secret plans"))
    row.get_by_role("button", name="Open Secret plans").wait_for()
    assert row.get_by_role("button").all_inner_texts() == ["Open"]
    row.get_by_role("link", name="Secret plans").click()
    page.get_by_role("heading", name="Secret plans").wait_for()
    page.locator("#nb-teams").get_by_text("readers").wait_for()
    # (and make a notebook of their own from it)
    assert page.locator("#nb-actions button").all_inner_texts() == ["Open", "Make a copy"]
    assert page.get_by_role("button", name="Remove team readers").count() == 0
    assert not page.get_by_label("Add a team").is_visible()
    assert page.locator("#teams-readonly").is_visible()
    page.locator("#nb-actions").get_by_role("button", name="Open").click()
    page.locator("#open-mode", has_text="Read-only").wait_for()
    assert not page.get_by_role("button", name="Stop notebook").is_visible()

    # The console's token is revoked meanwhile (it is listed as "console
    # sign-in"): the next call's 401 signs out, says why, and leaves nothing
    # behind either.
    _, listed = stack.call("GET", f"/members/{member['id']}/tokens")
    (console,) = [t for t in listed["items"] if t["name"] == "console sign-in"]
    assert stack.call("DELETE", f"/members/{member['id']}/tokens/{console['id']}")[0] == 204
    _, problem = stack.call("GET", "/me", token="nbk_revoked")
    page.get_by_role("heading", name="Sign in").wait_for(timeout=20_000)
    assert page.locator("#signin-error").inner_text() == f"Signed out: {problem['detail']}"
    assert traces(page, viewer_token["token"]) == []
    close_page(page)


def test_the_status_filter_shows_what_runs_now(browser: Any, stack: Any, wait: Any) -> None:
    """What runs now, and whose (the admin audit: one page of every notebook,
    by date, was all): the Status filter asks the API for those statuses, says
    when none is, and a new notebook (stopped) clears a filter hiding it."""
    for i in range(2):
        create_notebook_via_api(stack, f"quiet {i}")
    busy = create_notebook_via_api(stack, "busy")
    assert stack.call("POST", f"/workloads/notebooks/{busy}/start")[0] == 202
    stack.wait_provisioned(busy, START_SECONDS)
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        wait(lambda: len(names(page)) == 3, 15, "the whole list")
        status = page.get_by_label("Status")
        with page.expect_response(lambda r: is_list(r) and "status=starting%2Crunning" in r.url):
            status.select_option(label="Running now")
        wait(lambda: names(page) == ["busy"], 15, "only the running one")
        status.select_option(label="Stopped")
        wait(lambda: sorted(names(page)) == ["quiet 0", "quiet 1"], 15, "the stopped ones")
        status.select_option(label="Failed")
        page.get_by_text("No notebook is failed.").wait_for()

        # Started from the keyboard under "Stopped", the row leaves the list:
        # focus goes to the row that took its place, not to the page's body.
        status.select_option(label="Stopped")
        wait(lambda: len(names(page)) == 2, 15, "the stopped ones")
        page.get_by_role("button", name="Start quiet 0").focus()
        page.keyboard.press("Enter")
        wait(lambda: names(page) == ["quiet 1"], 30, "the started one gone from Stopped")
        assert page.evaluate("document.activeElement.textContent") == "quiet 1"

        status.select_option(label="Running now")
        wait(lambda: names(page) == ["busy", "quiet 0"], 30, "the running ones")
        page.get_by_role("button", name="New notebook").click()
        dialog = page.get_by_role("dialog", name="New notebook")
        dialog.get_by_label("Name").fill("fresh")
        dialog.get_by_role("button", name="Create notebook").click()
        wait(lambda: "fresh" in names(page), 15, "the new notebook, filter cleared")
        assert status.input_value() == ""
    finally:
        close_page(page)
