"""The console's guards against answers that come late or wrong, in headless
Chromium against the whole stack (fixtures in conftest.py). The API's
answers are held or rewritten with Playwright's request routing, so each
race is played in a fixed order rather than hoped for:

- a notebook's page whose answer arrives after the member went on to another
  notebook is not drawn over that one;
- a token created just before the member left the People page never puts its
  secret in a page (not the one left, not the one come back to);
- an `open` answer whose URL is not a web address on another origin than the
  console's (its own origin would run unsandboxed beside the console's
  token; `javascript:` would run in it) is refused, and no frame is loaded.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from browser_helpers import Held, close_page, create_notebook_via_api, settle, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def test_a_late_answer_for_a_notebook_left_is_not_drawn(browser: Any, stack: Any) -> None:
    first = create_notebook_via_api(stack, "first notebook")
    second = create_notebook_via_api(stack, "second notebook")
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    held = Held(page, re.compile(rf"/api/v1/workloads/notebooks/{first}$"))

    page.evaluate(f"location.hash = '#/notebooks/{first}'")
    held.wait()
    page.evaluate(f"location.hash = '#/notebooks/{second}'")
    page.locator("#nb-title", has_text="second notebook").wait_for()

    with page.expect_response(re.compile(rf"/notebooks/{first}$")):
        held.release_all()
    settle(page)
    assert page.locator("#nb-title").inner_text() == "second notebook"
    assert page.title() == "second notebook · Notebooks"
    # and its actions are the second notebook's, not the first's
    starts = page.locator("#nb-actions [data-focus-key]")
    keys = [starts.nth(i).get_attribute("data-focus-key") for i in range(starts.count())]
    assert keys and all(str(k).startswith(f"{second}:") for k in keys), keys
    close_page(page)


def test_a_token_made_as_the_member_leaves_shows_its_secret_nowhere(
    browser: Any, stack: Any
) -> None:
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    page.get_by_role("link", name="People", exact=True).click()
    page.locator("#tokens-body tr").first.wait_for()
    held = Held(page, re.compile(r"/api/v1/members/[A-Z0-9]+/tokens$"), method="POST")

    page.locator("#token-name").fill("made while leaving")
    page.locator("#token-name").press("Enter")
    held.wait()
    page.locator("a[data-nav=notebooks]").click()
    page.get_by_role("heading", name="Notebooks", exact=True).wait_for()

    with page.expect_response(re.compile(r"/tokens$")) as answer:
        held.release_all()
    secret = json.loads(answer.value.body())["token"]
    settle(page)
    assert secret not in page.content()
    page.get_by_role("link", name="People", exact=True).click()
    page.locator("#tokens-body tr", has_text="made while leaving").wait_for()
    assert secret not in page.content()
    assert page.locator(".secret-box").count() == 0
    close_page(page)


@pytest.mark.parametrize(
    "url",
    [
        "{console}/notebooks/{id}/_open?token=x",  # the console's own origin
        "javascript:parent.document.title='owned'",
        "data:text/html,<script>parent.document.title='owned'</script>",
    ],
)
def test_an_open_url_that_is_not_the_proxys_is_never_framed(
    browser: Any, stack: Any, url: str
) -> None:
    nb = create_notebook_via_api(stack, "framed notebook")
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)

    def running(route: Any) -> None:
        """The notebook as if it ran (no Sail or Marimo needed to be refused)."""
        answer = route.fetch()
        body = answer.json()
        for item in body["included"]["notebooks"]:
            item.update(status="running", sessionId="SESSION1")
        route.fulfill(response=answer, json=body)

    opened: list[str] = []

    def open_answer(route: Any) -> None:
        opened.append(route.request.url)
        route.fulfill(
            status=200,
            json={
                "url": url.format(console=stack.api_url, id=nb),
                "expiresAt": "2099-01-01T00:00:00Z",
                "mode": "edit",
            },
        )

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb}$"), running)
    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb}/open$"), open_answer)
    page.evaluate(f"location.hash = '#/notebooks/{nb}/open'")
    error = page.locator("#open-error")
    error.wait_for()
    assert "not a web address of the proxy's" in error.inner_text()
    assert len(opened) == 1
    frame = page.locator("#open-frame")
    assert frame.get_attribute("src") is None and frame.is_hidden()
    assert page.title() != "owned"
    close_page(page)
