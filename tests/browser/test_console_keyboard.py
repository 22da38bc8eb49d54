"""The console for keyboard, screen reader and small-screen users, in
headless Chromium against the whole stack (fixtures in conftest.py). The
API's answers are held or rewritten with Playwright's request routing and
polls run on Playwright's clock, so no notebook runs and nothing waits for a
poll's real 10 s:

- "Skip to content" moves focus to the main region, without a route or a
  history entry;
- Start and Stop keep focus on their row (the same control, or its
  counterpart once the status moved), after a success and after a refusal,
  in the list and on a notebook's page;
- a Start on its way stays busy across the list's redraws: a second click
  sends nothing;
- "Add team" and "Remove team" are busy while on their way (a double click
  sends one request); adding the last team moves focus to the team list's
  heading;
- long names wrap: no sideways scrolling at 390 px or 1280 px;
- each page has its own title, a notebook's page a neutral one while it loads;
- the status-message live regions are not rewritten by a poll that changed
  nothing;
- a 429's Retry-After holds the list's next poll back, and the same error is
  not rewritten;
- exact times (with the time zone) are in the text, and relative times on
  People (which does not poll) stay true.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from browser_helpers import (
    Held,
    close_page,
    create_notebook_via_api,
    flush_requests,
    member_with_token,
    open_answer,
    route_as_running,
    settle,
    sign_in,
    team_with,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LIST = re.compile(r"/api/v1/workloads/notebooks(\?|$)")


def describe_path(nb_id: str) -> re.Pattern[str]:
    return re.compile(rf"/api/v1/workloads/notebooks/{nb_id}$")


def row(page: Any, name: str) -> Any:
    return page.locator("#notebooks-body tr", has=page.get_by_role("link", name=name, exact=True))


def rewrite_notebooks(
    page: Any, pattern: re.Pattern[str], change: Callable[[dict[str, Any]], None]
) -> None:
    """The API's answers for `pattern` with `change` applied to each notebook
    in `included` (an error goes through as it is)."""

    def handler(route: Any) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        answer = route.fetch()
        if answer.status != 200:
            route.fulfill(response=answer)
            return
        body = answer.json()
        for nb in body.get("included", {}).get("notebooks", []):
            change(nb)
        route.fulfill(response=answer, json=body)

    page.route(pattern, handler)


def count_text_changes(page: Any, selector: str) -> None:
    """From now on, count the changes of `selector`'s text (what a live
    region announces) in `window.textChanges`."""
    page.evaluate(
        """selector => {
        window.textChanges = 0;
        const count = (records) => { window.textChanges += records.length; };
        const observer = new MutationObserver(count);
        const what = {childList: true, characterData: true, subtree: true};
        observer.observe(document.querySelector(selector), what);
    }""",
        selector,
    )


def poll_once(page: Any, pattern: re.Pattern[str]) -> None:
    """Move the page's clock to its next poll and let what it drew settle."""
    with page.expect_response(lambda r: r.request.method == "GET" and bool(pattern.search(r.url))):
        page.clock.fast_forward(10_000)
    settle(page)


def test_the_skip_link_moves_focus_to_main_without_navigating(browser: Any, stack: Any) -> None:
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    page.get_by_role("link", name="People", exact=True).click()
    page.get_by_role("heading", name="People", exact=True).wait_for()
    page.reload()  # focus at the document's start, as after any load
    page.locator("#view-people").wait_for()
    entries = page.evaluate("history.length")

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    settle(page)
    assert page.url.endswith("#/people"), page.url
    assert page.evaluate("history.length") == entries
    assert page.locator("#view-people").is_visible()
    assert page.locator("#view-notebooks").is_hidden()
    close_page(page)


def test_start_and_stop_keep_focus_in_the_row_and_on_the_page(browser: Any, stack: Any) -> None:
    nb_id = create_notebook_via_api(stack, "Focus kept")
    page = browser.new_page(viewport=LAPTOP)
    started: set[str] = set()  # once its Start was answered, the API says starting

    def status(nb: dict[str, Any]) -> None:
        if nb["id"] in started:
            nb.update(status="starting", statusMessage="Starting Sail")

    rewrite_notebooks(page, LIST, status)
    rewrite_notebooks(page, describe_path(nb_id), status)

    def accept_start(route: Any) -> None:
        started.add(nb_id)
        route.fulfill(status=202, json={})

    page.route(re.compile(rf"/notebooks/{nb_id}/start$"), accept_start)
    problem = {"title": "Conflict", "status": 409, "code": "conflict", "detail": "Not now."}
    page.route(
        re.compile(rf"/notebooks/{nb_id}/stop$"),
        lambda route: route.fulfill(
            status=409, content_type="application/problem+json", body=json.dumps(problem)
        ),
    )
    sign_in(page, stack.api_url, stack.token)

    # The list: Start by keyboard; the redrawn row has Stop, which has focus.
    row(page, "Focus kept").get_by_role("button", name="Start Focus kept").focus()
    page.keyboard.press("Enter")
    stop = row(page, "Focus kept").get_by_role("button", name="Stop Focus kept")
    expect(stop).to_be_focused()
    # A refused Stop: its message shows and focus stays on Stop.
    page.keyboard.press("Enter")
    expect(page.locator("#notebooks-error")).to_have_text("Could not stop: Not now.")
    expect(stop).to_be_focused()
    assert stop.get_attribute("aria-busy") == "false"

    # A notebook's page: the same.
    started.clear()
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    start = page.locator("#nb-actions").get_by_role("button", name="Start", exact=True)
    start.focus()
    page.keyboard.press("Enter")
    stop = page.locator("#nb-actions").get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#nb-error")).to_have_text("Could not stop: Not now.")
    expect(stop).to_be_focused()

    # The open view's Stop: refused, it keeps focus too.
    route_as_running(page, nb_id)
    page.route(
        re.compile(rf"/notebooks/{nb_id}/open$"),
        lambda route: route.fulfill(json=open_answer(f"{stack.proxy_url}/healthz")),
    )
    page.route(re.compile(rf"/notebooks/{nb_id}/ping$"), lambda route: route.fulfill(status=204))
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    page.locator("#open-frame").wait_for(state="visible")
    stop = page.locator("#open-stop")
    stop.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#open-error")).to_have_text("Could not stop: Not now.")
    expect(stop).to_be_focused()
    assert stop.get_attribute("aria-busy") == "false"
    close_page(page)


def start_posts(page: Any) -> list[str]:
    """The start requests the page sends from now on (their URLs), as they go."""
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/start") else None,
    )
    return posts


def start_held(page: Any, name: str) -> tuple[Any, Held]:
    """Click the row's Start, its request held: the button and the hold."""
    held = Held(page, re.compile(r"/notebooks/[A-Z0-9]+/start$"), method="POST")
    start = row(page, name).get_by_role("button", name=f"Start {name}")
    start.click()
    held.wait()
    return start, held


def test_a_start_on_its_way_stays_busy_across_redraws(browser: Any, stack: Any) -> None:
    create_notebook_via_api(stack, "Started once")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()  # polls on demand (time still flows)
    posts = start_posts(page)
    sign_in(page, stack.api_url, stack.token)
    start, held = start_held(page, "Started once")

    # A poll redraws the row meanwhile: its new Start is busy too.
    start.evaluate("b => { b.dataset.before = 'yes'; }")
    poll_once(page, LIST)
    page.locator("#notebooks-table:not([aria-busy])").wait_for(state="attached")
    assert start.get_attribute("data-before") is None  # drawn afresh
    assert start.get_attribute("aria-busy") == "true"
    assert start.get_attribute("aria-disabled") == "true"
    start.dispatch_event("click")  # a second click, on the busy button
    flush_requests(page)
    assert len(posts) == 1, posts

    with page.expect_response(re.compile(r"/start$")):
        held.release_all()
    settle(page)
    expect(
        row(page, "Started once").locator("[data-action=start], [data-action=stop]").first
    ).not_to_have_attribute("aria-busy", "true")
    close_page(page)


def test_a_start_answered_stays_busy_until_the_row_shows_it(browser: Any, stack: Any) -> None:
    """Between the API's answer and the redraw that shows the notebook
    starting, the row still has Start: busy, so a click sends nothing."""
    create_notebook_via_api(stack, "Answered once")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()  # no scheduled poll gets in between
    posts = start_posts(page)
    sign_in(page, stack.api_url, stack.token)
    start, held_start = start_held(page, "Answered once")
    held_list = Held(page, LIST)
    held_start.release_all()
    held_list.wait()  # answered; the list that shows it is on its way

    assert start.get_attribute("aria-busy") == "true"
    start.dispatch_event("click")
    flush_requests(page)
    assert len(posts) == 1, posts

    held_list.release_all()
    stop = row(page, "Answered once").get_by_role("button", name="Stop Answered once")
    expect(stop).not_to_have_attribute("aria-busy", "true")
    close_page(page)


def test_a_start_the_api_never_answers_fails_after_60_s_and_frees_its_button(
    browser: Any, stack: Any
) -> None:
    """A hung API (an audit froze it) left Start busy for ever, saying
    nothing. A write waits out the API's own limits (40 s), which finishes
    it even once the console has given up, and says it may have been done."""
    create_notebook_via_api(stack, "Never answered")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    sign_in(page, stack.api_url, stack.token)
    start, _held = start_held(page, "Never answered")  # never released
    page.clock.fast_forward(59_000)
    settle(page)
    assert start.get_attribute("aria-busy") == "true"  # not given up early
    page.clock.fast_forward(2_000)
    error = page.locator("#notebooks-error")
    expect(error).to_have_text(
        "Could not start: The API did not answer within 60 s."
        " It may still have been done: look again before you repeat it."
    )
    expect(
        row(page, "Never answered").get_by_role("button", name="Start Never answered")
    ).not_to_have_attribute("aria-busy", "true")
    close_page(page)


def test_add_and_remove_team_are_busy_and_keep_focus(browser: Any, stack: Any) -> None:
    teams = {}
    for name in ("alpha", "beta"):
        code, team = stack.call("POST", "/teams", {"name": name})
        assert code == 201, team
        teams[name] = team["id"]
    nb_id = create_notebook_via_api(stack, "Shared", [teams["alpha"]])
    page = browser.new_page(viewport=LAPTOP)
    sent: list[str] = []
    page.on(
        "request",
        lambda r: (
            sent.append(r.method) if re.search(r"/notebooks/[A-Z0-9]+/teams", r.url) else None
        ),
    )
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    remove = page.get_by_role("button", name="Remove team alpha")

    # Remove asks first (Cancel, the default, sends nothing); a double click
    # on its Remove team: one DELETE, no false error.
    remove.click()
    asked = page.get_by_role("alertdialog", name="Remove team alpha?")
    expect(asked.get_by_role("button", name="Cancel")).to_be_focused()
    expect(asked).to_contain_text("They can be given access again")
    page.keyboard.press("Enter")
    expect(asked).to_be_hidden()
    expect(remove).to_be_focused()
    flush_requests(page)
    assert sent.count("DELETE") == 0, sent
    remove.click()
    asked.get_by_role("button", name="Remove team").dblclick()
    expect(remove).to_have_count(0)
    expect(page.locator("#nb-teams")).to_have_text("Not shared with any team.")
    flush_requests(page)
    assert sent.count("DELETE") == 1, sent
    assert page.locator("#teams-error").is_hidden(), page.locator("#teams-error").inner_text()

    # A double click on Add team: one POST.
    page.get_by_label("Add a team").select_option(label="alpha")
    page.get_by_role("button", name="Add team").dblclick()
    page.get_by_role("button", name="Remove team alpha").wait_for()
    flush_requests(page)
    assert sent.count("POST") == 1, sent
    assert page.locator("#teams-error").is_hidden(), page.locator("#teams-error").inner_text()

    # The last team, by keyboard: the form goes, focus goes to the list's heading.
    expect(page.get_by_label("Add a team").locator("option")).to_have_count(1)
    page.get_by_role("button", name="Add team").focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Remove team beta").wait_for()
    expect(page.locator("#add-team-form")).to_be_hidden()
    expect(page.get_by_role("heading", name="Teams with access")).to_be_focused()

    # While its answer is on its way the question cannot be closed (Escape,
    # Cancel): a second question asked meanwhile would get the first's answer.
    held = Held(page, re.compile(r"/notebooks/[A-Z0-9]+/teams/[A-Z0-9]+$"), method="DELETE")
    page.get_by_role("button", name="Remove team beta").click()
    asked = page.get_by_role("alertdialog", name="Remove team beta?")
    asked.get_by_role("button", name="Remove team").click()
    held.wait()
    page.keyboard.press("Escape")
    expect(asked).to_be_visible()
    expect(asked.get_by_role("button", name="Cancel")).to_be_disabled()
    held.release_all()
    expect(asked).to_be_hidden()
    expect(page.get_by_role("button", name="Remove team beta")).to_have_count(0)
    close_page(page)


def test_a_poll_the_api_never_answers_says_so_after_15_s(browser: Any, stack: Any) -> None:
    """A frozen API left a notebook's page showing old data with no word."""
    nb_id = create_notebook_via_api(stack, "Frozen API")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    page.locator("#nb-title", has_text="Frozen API").wait_for()
    held = Held(page, describe_path(nb_id))
    page.clock.fast_forward(10_000)  # the next poll, held
    held.wait()
    page.clock.fast_forward(16_000)
    expect(page.locator("#nb-error")).to_have_text(
        "Could not load the notebook: The API did not answer within 15 s."
    )
    page.unroute_all(behavior="ignoreErrors")
    close_page(page)


def test_removing_the_team_that_gives_ones_own_access_says_so_first(
    browser: Any, stack: Any
) -> None:
    """A team admin who unshares the notebook from their own (only) team
    loses it too, and cannot share it back: the question says so, and the
    page goes back to the list, which says why the notebook is gone."""
    tina, token = member_with_token(stack, "tina@example.com", "Tina")
    nb_id = create_notebook_via_api(stack, "Model", [team_with(stack, "ml", tina["id"], "admin")])
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    page.get_by_role("button", name="Remove team ml").click()
    asked = page.get_by_role("alertdialog", name="Remove team ml?")
    expect(asked).to_contain_text("That includes you")
    asked.get_by_role("button", name="Remove team").click()
    expect(page.locator("#notebooks-notice")).to_have_text(
        "“Model” no longer exists, or is no longer shared with you."
    )
    assert stack.call("GET", f"/workloads/notebooks/{nb_id}", token=token)[0] == 404
    close_page(page)


def test_sharing_changed_elsewhere_redraws_the_teams_list_on_the_next_poll(
    browser: Any, stack: Any
) -> None:
    """The list kept a team removed elsewhere (with a Remove that then
    failed) while the facts above it said otherwise."""
    teams = {}
    for name in ("gamma", "delta"):
        code, team = stack.call("POST", "/teams", {"name": name})
        assert code == 201, team
        teams[name] = team["id"]
    nb_id = create_notebook_via_api(stack, "Shared elsewhere", [teams["gamma"]])
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    sign_in(page, stack.api_url, stack.token)
    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    page.get_by_role("button", name="Remove team gamma").wait_for()

    code, _ = stack.call("DELETE", f"/workloads/notebooks/{nb_id}/teams/{teams['gamma']}")
    assert code == 204
    code, _ = stack.call(
        "POST", f"/workloads/notebooks/{nb_id}/teams", {"teamIds": [teams["delta"]]}
    )
    assert code in (200, 201)
    poll_once(page, describe_path(nb_id))
    expect(page.get_by_role("button", name="Remove team gamma")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove team delta")).to_be_visible()
    close_page(page)


def fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_long_names_wrap_without_sideways_scrolling(
    browser: Any, stack: Any, artifacts: Any
) -> None:
    long_team = "t" * 128
    code, shared = stack.call("POST", "/teams", {"name": long_team})
    assert code == 201, shared
    code, other = stack.call("POST", "/teams", {"name": "u" * 128})
    assert code == 201, other
    name = "n" * 128
    nb_id = create_notebook_via_api(stack, name, [shared["id"]])
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    page.get_by_role("link", name=name, exact=True).wait_for()
    page.locator("#list-team-field").wait_for()
    widths = "() => [document.documentElement.scrollWidth, innerWidth]"
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        assert fits(page), ("list", size, page.evaluate(widths))
    page.screenshot(path=str(artifacts / "console-long-names-phone.png"), full_page=True)

    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    page.locator("#nb-title", has_text=name).wait_for()
    page.get_by_label("Add a team").wait_for()
    page.get_by_role("button", name=f"Remove team {long_team}").wait_for()
    for size in (PHONE, LAPTOP):
        page.set_viewport_size(size)
        assert fits(page), ("notebook page", size, page.evaluate(widths))
    page.screenshot(path=str(artifacts / "console-long-names.png"), full_page=True)

    # The New notebook dialog lists every team to share with.
    page.get_by_role("link", name="Notebooks", exact=True).first.click()
    page.get_by_role("button", name="New notebook").click()
    dialog = page.get_by_role("dialog", name="New notebook")
    dialog.get_by_text(long_team).wait_for()
    inside = "d => d.scrollWidth <= d.clientWidth"
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        assert dialog.evaluate(inside), ("new notebook dialog", size)
    dialog.get_by_role("button", name="Cancel").click()

    # People, with a long team's card open (an org admin sees its forms).
    page.get_by_role("link", name="People", exact=True).click()
    card = page.locator(".team-card", has=page.locator("summary", has_text=long_team))
    card.locator("summary").click()
    card.get_by_role("button", name=re.compile("^Add to")).wait_for()
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        assert fits(page), ("people", size, page.evaluate(widths))
    close_page(page)

    # A member whose name is that long: Sign out stays on the screen.
    _, token = member_with_token(stack, "l@example.com", "m" * 128)
    page = browser.new_page(viewport=PHONE)
    sign_in(page, stack.api_url, token)
    sign_out = page.get_by_role("button", name="Sign out").bounding_box()
    assert sign_out is not None and sign_out["x"] + sign_out["width"] <= PHONE["width"]
    assert fits(page), ("signed in", page.evaluate(widths))
    assert page.locator("#who-name").get_attribute("title") == "m" * 128
    close_page(page)


def test_each_page_has_its_own_title(browser: Any, stack: Any) -> None:
    first = create_notebook_via_api(stack, "First")
    second = create_notebook_via_api(stack, "Second")
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    expect(page).to_have_title("Notebooks")
    page.get_by_role("link", name="Workload configs", exact=True).click()
    expect(page).to_have_title("Workload configs · Notebooks")
    page.get_by_role("link", name="People", exact=True).click()
    expect(page).to_have_title("People · Notebooks")

    page.evaluate(f"location.hash = '#/notebooks/{first}'")
    expect(page).to_have_title("First · Notebooks")
    held = Held(page, describe_path(second))
    page.evaluate(f"location.hash = '#/notebooks/{second}'")
    held.wait()
    assert page.title() == "Notebook · Notebooks"  # not the name of the one before
    held.release_all()
    expect(page).to_have_title("Second · Notebooks")
    close_page(page)


def test_live_status_messages_are_not_rewritten_by_a_poll_that_changed_nothing(
    browser: Any, stack: Any
) -> None:
    nb_id = create_notebook_via_api(stack, "Quiet")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    rewrite_notebooks(
        page, describe_path(nb_id), lambda nb: nb.update(statusMessage="Waiting for capacity")
    )
    sign_in(page, stack.api_url, stack.token)

    page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
    expect(page.locator("#nb-message")).to_have_text("Waiting for capacity")
    count_text_changes(page, "#nb-message")
    poll_once(page, describe_path(nb_id))
    poll_once(page, describe_path(nb_id))
    assert page.evaluate("window.textChanges") == 0

    page.evaluate(f"location.hash = '#/notebooks/{nb_id}/open'")
    expect(page.locator("#open-message")).to_have_text(
        "Waiting for capacity. It opens here when it runs."
    )
    count_text_changes(page, "#open-message")
    poll_once(page, describe_path(nb_id))
    poll_once(page, describe_path(nb_id))
    assert page.evaluate("window.textChanges") == 0
    close_page(page)


def test_a_429_holds_the_next_poll_back_for_its_retry_after(browser: Any, stack: Any) -> None:
    create_notebook_via_api(stack, "Busy API")
    page = browser.new_page(viewport=LAPTOP)
    page.clock.install()
    problem = {"title": "Too Many Requests", "status": 429, "detail": "Slow down."}

    def too_many(route: Any) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        route.fulfill(
            status=429,
            headers={"Retry-After": "60"},
            content_type="application/problem+json",
            body=json.dumps(problem),
        )

    page.route(LIST, too_many)
    lists: list[str] = []
    page.on(
        "request",
        lambda r: lists.append(r.url) if r.method == "GET" and LIST.search(r.url) else None,
    )
    sign_in(page, stack.api_url, stack.token)
    error = page.locator("#notebooks-error")
    expect(error).to_have_text("Could not load notebooks: Slow down.")
    table = page.locator("#notebooks-table:not([aria-busy])")
    table.wait_for(state="attached")  # the next poll is scheduled
    count_text_changes(page, "#notebooks-error")
    asked = len(lists)

    # Past the usual 10 s (and 30 s): no poll before the 60 s asked for.
    page.clock.fast_forward(10_000)
    flush_requests(page)
    page.clock.fast_forward(20_000)
    flush_requests(page)
    assert len(lists) == asked, lists
    table.wait_for(state="attached")

    # At 60 s it polls; the same 429 leaves the alert as it was.
    with page.expect_response(LIST):
        page.clock.fast_forward(30_000)
    table.wait_for(state="attached")
    assert len(lists) == asked + 1
    assert page.evaluate("window.textChanges") == 0
    expect(error).to_have_text("Could not load notebooks: Slow down.")

    # Once it answers, the error goes.
    page.unroute(LIST, too_many)
    with page.expect_response(LIST):
        page.clock.fast_forward(60_000)
    expect(error).to_be_hidden()
    page.get_by_role("link", name="Busy API", exact=True).wait_for()
    close_page(page)


def test_exact_times_are_in_the_text_and_people_keeps_relative_times_true(
    browser: Any, stack: Any
) -> None:
    page = browser.new_page(viewport=LAPTOP, timezone_id="UTC", locale="en-US")
    page.clock.install()
    sign_in(page, stack.api_url, stack.token)
    page.get_by_role("link", name="People", exact=True).click()
    session = page.locator("#tokens-body tr", has_text="this console session")
    created = session.locator("td[data-label='Created'] time")
    expect(created).to_contain_text(re.compile("now|second"))
    exact = created.locator(".visually-hidden")
    # Reachable without a mouse: the exact time, with its zone, is in the text.
    assert (
        "UTC" in exact.inner_text()
        and str(page.evaluate("new Date().getFullYear()")) in exact.inner_text()
    )

    # Every time written out in full says its zone, the token's expiry too.
    hint = page.locator("#token-expiry option").last
    assert "UTC" in hint.inner_text(), hint.inner_text()

    # At laptop width an action cell is a table cell (a flex one cut the
    # row's border short) and its buttons' labels never break.
    revoke = session.get_by_role("button", name=re.compile("^Revoke"))
    cell = session.locator("td.row-actions")
    assert cell.evaluate("td => getComputedStyle(td).display") == "table-cell"
    height = revoke.evaluate("b => b.getBoundingClientRect().height")
    assert height < 44, height  # its min-height is 36 px; a second line makes it 48 or more

    # People does not poll; two hours on, the relative time says so by itself.
    page.clock.fast_forward(2 * 3600 * 1000)
    expect(created).to_contain_text("2 hours ago")
    close_page(page)
