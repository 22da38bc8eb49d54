"""The console when things change under it or the API answers badly, in
headless Chromium against the whole stack (fixtures in conftest.py). The
API's answers are held or rewritten with Playwright's request routing, and
polls are run on Playwright's clock, so nothing waits 10 s for a poll:

- an edit that only renames keeps timeouts that are not whole minutes;
- a notebook deleted elsewhere (or no longer shared) sends its page, or its
  open view, back to the list, which says so, and is no longer polled;
- a team filter whose team the member left falls back to "Any";
- coming back to an open notebook while the last visit's `open` is on its
  way opens it at once;
- a members page answered after another page was asked for is not drawn;
- a failed `GET /me` at load (not a 401) offers Retry, not the sign-in form
  (which would make a second console token);
- an error page that is not the API's JSON (a load balancer's HTML) is shown
  as its status line, never as its source.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from browser_helpers import (
    Held,
    close_page,
    create_notebook_via_api,
    flush_requests,
    open_answer,
    route_as_running,
    route_notebook_as,
    settle,
    sign_in,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def next_polls_until(page: Any, locator: Any, state: str = "visible", tries: int = 5) -> None:
    """Move the page's clock past its next poll until `locator` gets to
    `state`. A poll already on its way when the clock moves (a ping's status
    read) schedules the next one after the jump: one jump is not always
    enough, and real time is not waited for."""
    for _ in range(tries):
        page.clock.fast_forward(30_000)  # past a poll, at the visible or the hidden rate
        try:
            locator.wait_for(state=state, timeout=3_000)
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError(f"{locator} not {state} after {tries} polls")


GONE = "no longer exists, or is no longer shared with you."


def row(page: Any, name: str) -> Any:
    return page.locator("#notebooks-body tr", has=page.get_by_role("link", name=name, exact=True))


def names(page: Any) -> list[str]:
    return [str(n) for n in page.locator("#notebooks-body .nb-link").all_inner_texts()]


def default_config(stack: Any) -> str:
    _, configs = stack.call("GET", "/workloads/configs")
    return str(next(c["id"] for c in configs["items"] if c["name"] == "default"))


def described(stack: Any, nb_id: str) -> dict[str, Any]:
    code, body = stack.call("GET", f"/workloads/notebooks/{nb_id}")
    assert code == 200, body
    return dict(body["included"]["notebooks"][0])


def test_an_edit_that_only_renames_keeps_timeouts_that_are_not_whole_minutes(
    browser: Any, stack: Any, wait: Any
) -> None:
    code, created = stack.call(
        "POST",
        "/workloads/notebooks",
        {
            "name": "Odd timeouts",
            "workloadConfigId": default_config(stack),
            "idleTimeoutSeconds": 450,  # shown as 8 minutes
            "detachedTimeoutSeconds": 3630,  # shown as 61 minutes
        },
    )
    assert code == 201, created
    nb_id = created["item"]["notebookId"]
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)

    row(page, "Odd timeouts").get_by_role("button", name="Edit Odd timeouts").click()
    dialog = page.get_by_role("dialog", name="Edit notebook")
    assert dialog.get_by_label("Idle timeout (minutes)").input_value() == "8"
    assert dialog.get_by_label("Detached timeout (minutes)").input_value() == "61"
    patches: list[Any] = []
    page.on("request", lambda r: patches.append(r.post_data_json) if r.method == "PATCH" else None)
    dialog.get_by_label("Name").fill("Odd timeouts v2")
    dialog.get_by_role("button", name="Save").click()
    row(page, "Odd timeouts v2").wait_for()
    assert patches == [{"name": "Odd timeouts v2"}]
    nb = described(stack, nb_id)
    assert (nb["idleTimeoutSeconds"], nb["detachedTimeoutSeconds"]) == (450, 3630)

    # Minutes the member does change are saved, and only those.
    row(page, "Odd timeouts v2").get_by_role("button", name="Edit Odd timeouts v2").click()
    dialog.get_by_label("Idle timeout (minutes)").fill("10")
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    wait(lambda: described(stack, nb_id)["idleTimeoutSeconds"] == 600, 10, "the new idle timeout")
    assert described(stack, nb_id)["detachedTimeoutSeconds"] == 3630
    assert patches[-1] == {"idleTimeoutSeconds": 600}
    close_page(page)


def test_a_timeout_out_of_range_is_refused_in_the_forms_own_words(browser: Any, stack: Any) -> None:
    """The API's answer named `idleTimeoutSeconds` and counted seconds, in a
    form that asks for minutes."""
    page = browser.new_page(viewport=LAPTOP)
    writes: list[str] = []
    page.on(
        "request",
        lambda r: (
            writes.append(r.method)
            if r.method in ("POST", "PATCH") and "/notebooks" in r.url
            else None
        ),
    )
    sign_in(page, stack.api_url, stack.token)
    page.get_by_role("button", name="New notebook").click()
    dialog = page.get_by_role("dialog", name="New notebook")
    dialog.get_by_label("Name").fill("Too quick")
    idle = dialog.get_by_label("Idle timeout (minutes)")
    idle.fill("1")
    dialog.get_by_role("button", name="Create notebook").click()
    expect(page.locator("#create-error")).to_have_text(
        "Idle timeout must be 0 (never) or 5 to 10080 minutes."
    )
    expect(idle).to_be_focused()
    idle.fill("0")
    dialog.get_by_label("Detached timeout (minutes)").fill("20000")
    dialog.get_by_role("button", name="Create notebook").click()
    expect(page.locator("#create-error")).to_have_text(
        "Detached timeout must be 0 (never) or 5 to 10080 minutes."
    )
    assert writes == []
    close_page(page)


def test_a_notebook_deleted_elsewhere_sends_its_page_back_to_the_list(
    browser: Any, stack: Any
) -> None:
    nb_id = create_notebook_via_api(stack, "Doomed page")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()  # polls on demand (time still flows)
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    page.locator("#nb-title", has_text="Doomed page").wait_for()
    page.locator(f"#nb-actions [data-focus-key='{nb_id}:Delete']").wait_for()

    assert stack.call("DELETE", f"/workloads/notebooks/{nb_id}")[0] == 204
    notice = page.locator("#notebooks-notice")
    next_polls_until(page, notice)  # the page's next poll: a 404
    assert notice.inner_text() == f"“Doomed page” {GONE}"
    assert page.url.endswith("#/notebooks")
    page.get_by_role("heading", name="Notebooks", exact=True).wait_for()
    assert page.locator("#view-notebook").is_hidden()
    assert page.locator("#nb-error").is_hidden()
    # The list drawn again without it (its rows from before go with its refresh).
    expect(page.locator(f"[data-focus-key^='{nb_id}:']:visible")).to_have_count(0)
    assert page.locator("#add-team-form:visible").count() == 0

    # The notebook is no longer polled: the next poll reads the list only.
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    with page.expect_response(re.compile(r"/api/v1/workloads/notebooks(\?|$)")):
        page.clock.fast_forward(10_000)
    settle(page)
    assert not [u for u in asked if nb_id in u], asked
    close_page(page)


def test_a_404_page_from_in_front_of_the_api_is_an_error_not_a_notebook_gone(
    browser: Any, stack: Any
) -> None:
    """An ingress answering its own 404 during a deploy is not the API saying
    the notebook is gone: the page stays, with the error, and polls on."""
    nb_id = create_notebook_via_api(stack, "Still here")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    page.locator("#nb-title", has_text="Still here").wait_for()
    page.route(
        re.compile(rf"/api/v1/workloads/notebooks/{nb_id}$"),
        lambda route: route.fulfill(status=404, content_type="text/html", body="<h1>404</h1>"),
    )
    error = page.locator("#nb-error")
    next_polls_until(page, error)
    assert "HTTP 404 Not Found" in error.inner_text()
    assert page.url.endswith(f"#/notebooks/{nb_id}")
    assert page.locator("#notebooks-notice").is_hidden()
    close_page(page)


def test_an_open_notebook_deleted_elsewhere_goes_back_to_the_list(browser: Any, stack: Any) -> None:
    nb_id = create_notebook_via_api(stack, "Doomed open")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    route_as_running(page, nb_id)
    page.route(
        re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/open$"),
        lambda route: route.fulfill(json=open_answer(f"{stack.proxy_url}/healthz")),
    )
    page.route(
        re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/ping$"),
        lambda route: route.fulfill(status=204),
    )
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    page.locator("#open-frame").wait_for(state="visible")

    assert stack.call("DELETE", f"/workloads/notebooks/{nb_id}")[0] == 204
    notice = page.locator("#notebooks-notice")
    next_polls_until(page, notice)  # the open view's next status read: a 404
    assert notice.inner_text() == f"“Doomed open” {GONE}"
    assert page.url.endswith("#/notebooks")
    frame = page.locator("#open-frame")
    assert frame.is_hidden() and frame.get_attribute("src") is None
    assert page.locator("#open-stop:visible").count() == 0
    close_page(page)


def test_a_team_filter_the_member_lost_falls_back_to_any(browser: Any, stack: Any) -> None:
    code, member = stack.call("POST", "/members", {"email": "tess@example.com", "name": "Tess"})
    assert code == 201, member
    code, member_token = stack.call("POST", f"/members/{member['id']}/tokens", {"name": "t"})
    assert code == 201, member_token
    teams = {}
    for name in ("data-eng", "analysts"):
        code, team = stack.call("POST", "/teams", {"name": name})
        assert code == 201, team
        teams[name] = team["id"]
        path = f"/teams/{team['id']}/members/{member['id']}"
        assert stack.call("PUT", path, {"role": "viewer"})[0] in (200, 201)
        create_notebook_via_api(stack, f"Shared with {name}", [team["id"]])

    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    sign_in(page, stack.api_url, member_token["token"])
    row(page, "Shared with analysts").wait_for()
    page.get_by_label("Shared with team").select_option(label="data-eng")
    row(page, "Shared with analysts").wait_for(state="detached")
    assert names(page) == ["Shared with data-eng"]

    path = f"/teams/{teams['data-eng']}/members/{member['id']}"
    assert stack.call("DELETE", path)[0] == 204
    gone = page.locator("#list-team option", has_text="data-eng")
    next_polls_until(page, gone, "detached")  # the filtered list's next poll: a 403
    row(page, "Shared with analysts").wait_for()
    assert page.get_by_label("Shared with team").input_value() == ""
    options = page.locator("#list-team option").all_inner_texts()
    assert options == ["Any (all you can see)", "analysts"]
    assert names(page) == ["Shared with analysts"]
    assert page.locator("#notebooks-error").is_hidden()
    notice = page.locator("#notebooks-notice")
    assert notice.is_visible() and "data-eng" in notice.inner_text()
    close_page(page)


def test_coming_back_while_open_is_on_its_way_opens_at_once(browser: Any, stack: Any) -> None:
    nb_id = create_notebook_via_api(stack, "Back again")
    page = browser.new_page(viewport=LAPTOP)
    route_as_running(page, nb_id)
    page.route(
        re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/ping$"),
        lambda route: route.fulfill(status=204),
    )
    held: list[Any] = []
    holding = [True]
    answer = open_answer(f"{stack.proxy_url}/healthz")

    def opening(route: Any) -> None:
        if holding[0]:
            held.append(route)
        else:
            route.fulfill(json=answer)

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/open$"), opening)
    sign_in(page, stack.api_url, stack.token)

    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    deadline = time.monotonic() + 30
    while not held:  # route handlers run while Playwright talks to the page
        assert time.monotonic() < deadline, "no open request"
        page.evaluate("() => new Promise((done) => setTimeout(done, 20))")
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    page.locator("#nb-title", has_text="Back again").wait_for()
    holding[0] = False  # this visit's own open goes through
    describe = re.compile(rf"/api/v1/workloads/notebooks/{nb_id}$")
    with page.expect_response(describe):
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    settle(page)
    for route in held:  # the first visit's open answers only now
        route.fulfill(json=answer)
    # Before its next poll (10 s after this visit began), with room for a slow machine.
    page.locator("#open-frame").wait_for(state="visible", timeout=7_000)
    assert page.locator("#open-error").is_hidden()
    close_page(page)


def test_a_late_members_page_is_not_drawn_over_the_page_asked_for(browser: Any, stack: Any) -> None:
    for i in range(50):  # 51 with the admin: two pages of 50
        body = {"email": f"m{i:02}@example.com", "name": f"Member {i:02}"}
        assert stack.call("POST", "/members", body)[0] == 201
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    page.get_by_role("link", name="People", exact=True).click()
    members = page.locator("#members-body tr")
    members.nth(49).wait_for()
    held = Held(page, re.compile(r"/api/v1/members\?limit=50&marker="))

    page.locator("#members-next").click()  # page 2, held
    held.wait()
    # Meanwhile a member is added: the table goes to page 1, the newest first.
    page.locator("#member-email").fill("late@example.com")
    page.locator("#member-name").fill("Latecomer")
    page.locator("#member-email").press("Enter")
    page.locator("#members-body tr", has_text="Latecomer").wait_for()
    with page.expect_response(re.compile(r"/members\?limit=50&marker=")):
        held.release_all()
    settle(page)
    assert members.count() == 50
    assert "Latecomer" in members.first.inner_text()
    assert page.locator("#members-page-info").inner_text() == "Page 1 of 2 · 52 members"
    close_page(page)


def test_a_failed_me_at_load_offers_retry_not_sign_in(browser: Any, stack: Any) -> None:
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    signed_in_with = page.evaluate("sessionStorage.getItem('notebooks.token')")

    def console_tokens() -> int:
        _, tokens = stack.call("GET", f"/members/{stack.member_id}/tokens")
        return sum(1 for t in tokens["items"] if t["name"] == "console sign-in")

    assert console_tokens() == 1
    failed: list[str] = []

    def me(route: Any) -> None:
        if failed:
            route.continue_()
            return
        failed.append(route.request.url)
        route.fulfill(
            status=503,
            content_type="application/problem+json",
            json={"title": "Service Unavailable", "status": 503, "detail": "Try again soon."},
        )

    page.route(re.compile(r"/api/v1/me$"), me)
    page.reload()
    retry = page.get_by_role("button", name="Retry")
    retry.wait_for(timeout=5_000)
    shown = page.locator("#retry-error").inner_text()
    assert shown == "Could not read who you are: Try again soon."
    assert page.locator("#view-signin").is_hidden()
    assert not page.get_by_label("API token").is_visible()

    retry.click()
    page.get_by_role("heading", name="Notebooks", exact=True).wait_for()
    assert page.locator("#view-retry").is_hidden()
    assert page.evaluate("sessionStorage.getItem('notebooks.token')") == signed_in_with
    assert console_tokens() == 1
    close_page(page)


def test_the_retry_page_signs_out_of_the_tab_when_the_api_stays_down(
    browser: Any, stack: Any
) -> None:
    """Without a way out, a tab whose /me keeps failing was stuck until closed."""
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    page.route(
        re.compile(r"/api/v1/me$"),
        lambda route: route.fulfill(
            status=503,
            content_type="application/problem+json",
            json={"title": "Service Unavailable", "status": 503, "detail": "Down."},
        ),
    )
    page.reload()
    page.get_by_role("button", name="Retry").wait_for(timeout=5_000)
    page.locator("#retry-signout").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert "the console's token was not revoked" in page.locator("#signin-error").inner_text()
    assert page.evaluate("sessionStorage.getItem('notebooks.token')") is None
    close_page(page)


def test_an_html_error_page_is_shown_as_its_status_line(browser: Any, stack: Any) -> None:
    gateway_page = (
        "<html><head><title>502 Bad Gateway</title></head><body>"
        "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
    )
    answers = [{"status": 502, "content_type": "text/html", "body": gateway_page}]

    def listing(route: Any) -> None:
        if route.request.method == "GET" and answers:
            route.fulfill(**answers[0])
        else:
            route.continue_()

    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    page.route(re.compile(r"/api/v1/workloads/notebooks(\?|$)"), listing)
    sign_in(page, stack.api_url, stack.token)
    error = page.locator("#notebooks-error")
    error.wait_for()
    assert error.inner_text() == "Could not load notebooks: HTTP 502 Bad Gateway"

    # A success that is not JSON either: its status, not the parser's quote of it.
    answers[0] = {"status": 200, "content_type": "text/html", "body": gateway_page}
    page.clock.fast_forward(10_000)
    error.get_by_text("not the API's JSON").wait_for()
    not_json = "HTTP 200 OK: the answer is not the API's JSON"
    assert error.inner_text() == f"Could not load notebooks: {not_json}"
    assert "<" not in error.inner_text()
    close_page(page)


def test_a_stopped_notebooks_open_view_says_so_in_a_sentence_and_offers_start(
    browser: Any, stack: Any
) -> None:
    """Stopped by someone else while open, the view said "Stop requested It
    opens here when it runs." and offered only a disabled Stop."""
    nb_id = create_notebook_via_api(stack, "Stopped under me")
    page = browser.new_page(viewport=LAPTOP)
    starts: list[str] = []

    def started(route: Any) -> None:
        starts.append(route.request.method)
        route.fulfill(status=202, content_type="application/json", body="{}")

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/start$"), started)
    route_stopping = re.compile(rf"/api/v1/workloads/notebooks/{nb_id}$")

    def stopping(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        for item in body["included"]["notebooks"]:
            item.update(status="stopped", statusMessage="idle for 1 h")
        route.fulfill(response=answer, json=body)

    page.route(route_stopping, stopping)
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    message = page.locator("#open-message")
    expect(message).to_have_text("Idle for 1 h. It opens here when it runs.")
    start = page.get_by_role("button", name="Start notebook")
    expect(start).to_be_visible()
    expect(page.locator("#open-stop")).to_be_hidden()
    start.click()
    expect(page.locator("#open-error")).to_be_hidden()
    assert starts == ["POST"]
    page.unroute_all(behavior="ignoreErrors")  # a poll on its way as the page closes
    close_page(page)


def test_a_team_viewer_is_offered_neither_start_nor_stop(browser: Any, stack: Any) -> None:
    code, team = stack.call("POST", "/teams", {"name": "watchers"})
    assert code == 201, team
    nb_id = create_notebook_via_api(stack, "Watched", [team["id"]])
    code, member = stack.call("POST", "/members", {"email": "w@example.com", "name": "Wa Tcher"})
    assert code == 201, member
    code, token = stack.call("POST", f"/members/{member['id']}/tokens", {"name": "w"})
    assert code == 201, token
    code, _ = stack.call("PUT", f"/teams/{team['id']}/members/{member['id']}", {"role": "viewer"})
    assert code == 200
    viewer = token["token"]
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, viewer)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    expect(page.locator("#open-message")).to_have_text(
        "The notebook is stopped. It opens here when it runs."
    )
    expect(page.locator("#open-start")).to_be_hidden()
    expect(page.locator("#open-stop")).to_be_hidden()
    close_page(page)


def _open_on_a_clock(page: Any, stack: Any, token: str, nb_id: str) -> None:
    """Signed in with `token`, the notebook's open view shown, on a
    controlled clock (its ping tick and mode check come on fast_forward)."""
    sign_in(page, stack.api_url, token)
    page.clock.install()
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    page.locator("#open-frame").wait_for(state="visible")


def _route_pings(page: Any, nb_id: str) -> None:
    """The notebook's pings answered as the API does (no session needed)."""
    page.route(
        re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/ping$"),
        lambda route: route.fulfill(status=204),
    )


def _route_stops(page: Any, nb_id: str) -> list[str]:
    """The notebook's stops recorded (their methods) and answered 202 with its describe."""
    stops: list[str] = []

    def stopping(route: Any) -> None:
        stops.append(route.request.method)
        described = route.fetch(method="GET", url=route.request.url.removesuffix("/stop"))
        route.fulfill(status=202, json=described.json())

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/stop$"), stopping)
    return stops


def _member_of_team(stack: Any, email: str, role: str) -> tuple[str, str]:
    """A new member with `role` in a new team: (its token, the team's id)."""
    code, member = stack.call("POST", "/members", {"email": email, "name": email.split("@")[0]})
    assert code == 201, member
    code, tok = stack.call("POST", f"/members/{member['id']}/tokens", {"name": "browser"})
    assert code == 201, tok
    code, team = stack.call("POST", "/teams", {"name": f"team of {email}"})
    assert code == 201, team
    path = f"/teams/{team['id']}/members/{member['id']}"
    assert stack.call("PUT", path, {"role": role})[0] == 200
    return str(tok["token"]), str(team["id"])


def test_read_only_says_why_and_offers_editing_once_the_owner_has_left(
    browser: Any, stack: Any
) -> None:
    """A team editor opening while the owner works watches, and is told why;
    once `open` would give it edit (the owner left), a switch is offered,
    and the other way round when the owner comes back (the proxy has ended
    its editing). Before, Read-only was never explained and never lifted."""
    token, team = _member_of_team(stack, "ed@example.com", "editor")
    nb_id = create_notebook_via_api(stack, "Shared work", teams=[team])
    page = browser.new_page(viewport=LAPTOP)
    route_as_running(page, nb_id)
    _route_pings(page, nb_id)
    mode = ["view"]  # what `open` answers: the owner is present, then not
    opens: list[str] = []

    def opening(route: Any) -> None:
        opens.append(mode[0])
        route.fulfill(json={**open_answer(f"{stack.proxy_url}/healthz"), "mode": mode[0]})

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/open$"), opening)
    _open_on_a_clock(page, stack, token, nb_id)
    note = page.locator("#open-note")
    expect(note).to_have_text(re.compile(r"The owner is working in this notebook: you can watch"))
    expect(page.locator("#open-mode")).to_have_text("Read-only")
    switch = page.get_by_role("button", name="Switch to editing")
    assert switch.is_hidden()

    mode[0] = "edit"  # the owner left
    page.clock.fast_forward(61_000)
    switch.wait_for()
    expect(note).to_contain_text("The owner has left: you can edit now.")
    assert page.locator("#open-mode").inner_text() == "Read-only"  # nothing reloaded under it
    switch.click()
    expect(page.locator("#open-mode")).to_have_text("Editing")
    expect(note).to_be_hidden()

    mode[0] = "view"  # the owner is back: the proxy ended this member's editing
    page.clock.fast_forward(61_000)
    reopen = page.get_by_role("button", name="Reopen read-only")
    reopen.wait_for()
    expect(note).to_contain_text("The owner is back: editing here has ended.")
    reopen.click()
    expect(page.locator("#open-mode")).to_have_text("Read-only")
    assert opens == ["view", "edit", "edit", "view", "view"]
    close_page(page)


def test_a_team_viewer_is_told_why_it_only_watches_and_is_not_asked_again(
    browser: Any, stack: Any
) -> None:
    token, team = _member_of_team(stack, "vi@example.com", "viewer")
    nb_id = create_notebook_via_api(stack, "Shown work", teams=[team])
    page = browser.new_page(viewport=LAPTOP)
    route_as_running(page, nb_id)
    _route_pings(page, nb_id)
    opens: list[int] = []

    def opening(route: Any) -> None:
        opens.append(1)
        route.fulfill(json={**open_answer(f"{stack.proxy_url}/healthz"), "mode": "view"})

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/open$"), opening)
    _open_on_a_clock(page, stack, token, nb_id)
    expect(page.locator("#open-note")).to_have_text(
        "You are a viewer of this notebook: you can watch it, not run or edit it."
    )
    page.clock.fast_forward(61_000)
    settle(page)
    assert len(opens) == 1  # its mode never changes: `open` is not asked again
    assert page.get_by_role("button", name="Switch to editing").is_hidden()
    close_page(page)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        ("idle", "", "in 4 minutes"),  # idle timeout: 5 min, last active a minute ago
        ("detached", "", "in 1 hour"),  # detached timeout: 1 h
        ("idle", "activity unknown: the kernel did not answer", "in 1 hour"),
        ("running", "", None),
    ],
)
def test_an_unattended_notebook_says_when_it_stops_by_itself(
    browser: Any, stack: Any, status: str, message: str, expected: str | None
) -> None:
    """Idle and detached notebooks stop on their timeouts: the page says
    when (before, the member had to add the timeout to "Last active")."""
    nb_id = create_notebook_via_api(stack, "Unattended")
    assert (
        stack.call(
            "PATCH",
            f"/workloads/notebooks/{nb_id}",
            {"idleTimeoutSeconds": 300, "detachedTimeoutSeconds": 3600},
        )[0]
        == 200
    )
    page = browser.new_page(viewport=LAPTOP)
    last_active = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))

    route_notebook_as(page, nb_id, status=status, statusMessage=message, lastActiveAt=last_active)
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    facts = page.locator("#nb-facts")
    facts.get_by_text("Last active").wait_for()
    stops = facts.locator("dt", has_text="Stops by itself")
    if expected is None:
        assert stops.count() == 0
    else:
        when = facts.locator("dt:has-text('Stops by itself') + dd")
        expect(when).to_have_text(re.compile(rf"^{expected} \(.+ UTC\) unless someone opens it$"))
    close_page(page)


def test_stopping_a_notebook_someone_may_be_working_in_is_asked_first(
    browser: Any, stack: Any
) -> None:
    """A team editor's one click on Stop ended the owner's live session (a
    user audit): for a notebook not one's own that is running, Stop asks
    first, in the notebook's page and in its open view; Cancel sends nothing."""
    token, team = _member_of_team(stack, "st@example.com", "editor")
    nb_id = create_notebook_via_api(stack, "Busy work", teams=[team])
    page = browser.new_page(viewport=LAPTOP)
    route_as_running(page, nb_id)
    _route_pings(page, nb_id)
    page.route(
        re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/open$"),
        lambda route: route.fulfill(json=open_answer(f"{stack.proxy_url}/healthz")),
    )
    stops = _route_stops(page, nb_id)
    sign_in(page, stack.api_url, token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    stop = page.locator("#nb-actions").get_by_role("button", name="Stop", exact=True)
    stop.click()
    dialog = page.get_by_role("alertdialog", name="Stop “Busy work”?")
    expect(dialog).to_contain_text("Someone may be working in it")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    flush_requests(page)
    assert stops == []
    stop.click()
    with page.expect_response(re.compile(r"/stop$")):
        dialog.get_by_role("button", name="Stop for everyone").click()
    assert stops == ["POST"]

    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    page.locator("#open-frame").wait_for(state="visible")
    page.get_by_role("button", name="Stop notebook").click()
    dialog.get_by_role("button", name="Cancel").click()
    flush_requests(page)
    assert stops == ["POST"]
    page.get_by_role("button", name="Stop notebook").click()
    with page.expect_response(re.compile(r"/stop$")):
        dialog.get_by_role("button", name="Stop for everyone").click()
    assert stops == ["POST", "POST"]
    close_page(page)


def test_the_owner_stops_their_own_notebook_at_once(browser: Any, stack: Any) -> None:
    nb_id = create_notebook_via_api(stack, "Mine")
    page = browser.new_page(viewport=LAPTOP)
    route_as_running(page, nb_id)
    stops = _route_stops(page, nb_id)
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    with page.expect_response(re.compile(r"/stop$")):
        page.locator("#nb-actions").get_by_role("button", name="Stop", exact=True).click()
    assert stops == ["POST"]
    assert page.get_by_role("alertdialog").count() == 0
    close_page(page)


def test_a_mode_check_answered_after_a_switch_does_not_undo_it(browser: Any, stack: Any) -> None:
    """A check still on its way when the member switched answers about the
    editor before: dropped, or "The owner is back" would show over the new
    editing session (a review)."""
    token, team = _member_of_team(stack, "late@example.com", "editor")
    nb_id = create_notebook_via_api(stack, "Late check")
    assert stack.call("POST", f"/workloads/notebooks/{nb_id}/teams", {"teamIds": [team]})[0] == 200
    page = browser.new_page(viewport=LAPTOP)
    route_as_running(page, nb_id)
    _route_pings(page, nb_id)
    mode, hold, held = ["view"], [False], []

    def opening(route: Any) -> None:
        if hold[0]:
            held.append(route)
        else:
            route.fulfill(json={**open_answer(f"{stack.proxy_url}/healthz"), "mode": mode[0]})

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb_id}/open$"), opening)
    _open_on_a_clock(page, stack, token, nb_id)
    mode[0] = "edit"
    page.clock.fast_forward(61_000)
    switch = page.get_by_role("button", name="Switch to editing")
    switch.wait_for()
    hold[0] = True
    page.clock.fast_forward(61_000)  # the next check: held
    deadline = time.monotonic() + 30
    while not held:  # route handlers run while Playwright talks to the page
        assert time.monotonic() < deadline, "no mode check"
        page.evaluate("() => new Promise((done) => setTimeout(done, 20))")
    hold[0] = False
    switch.click()
    expect(page.locator("#open-mode")).to_have_text("Editing")
    held[0].fulfill(json={**open_answer(f"{stack.proxy_url}/healthz"), "mode": "view"})
    settle(page)
    expect(page.locator("#open-note")).to_be_hidden()
    close_page(page)
