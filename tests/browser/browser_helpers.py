"""Page helpers the browser tests share."""

from __future__ import annotations

import re
import time
from typing import Any


def set_visibility(page: Any, state: str) -> None:
    """What the browser does when the member switches tabs (headless never does)."""
    page.evaluate(
        """state => {
        Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""",
        state,
    )


def sign_in(page: Any, api_url: str, token: str) -> None:
    """Sign in to the console from the keyboard, as a member would."""
    page.goto(api_url + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_label("API token").press("Enter")
    page.get_by_role("heading", name="Notebooks", exact=True).wait_for()


def create_notebook_via_api(
    stack: Any, name: str, teams: list[str] | None = None, token: str | None = None
) -> str:
    """A stopped notebook on the bootstrap's default workload config, owned
    by `token`'s member (else the admin's); its id."""
    _, configs = stack.call("GET", "/workloads/configs", token=token)
    config = next(c["id"] for c in configs["items"] if c["name"] == "default")
    body: dict[str, Any] = {"name": name, "workloadConfigId": config}
    if teams:
        body["teamIds"] = teams
    code, created = stack.call("POST", "/workloads/notebooks", body, token=token)
    assert code == 201, created
    return str(created["item"]["notebookId"])


def owner_of(stack: Any, nb_id: str) -> str:
    """The notebook's owner, as the API describes it."""
    code, body = stack.call("GET", f"/workloads/notebooks/{nb_id}")
    assert code == 200, body
    return str(body["included"]["notebooks"][0]["memberId"])


def member_with_token(stack: Any, email: str, name: str) -> tuple[dict[str, Any], str]:
    """A new member of the organization and a token of theirs (its secret)."""
    code, member = stack.call("POST", "/members", {"email": email, "name": name})
    assert code == 201, member
    code, made = stack.call("POST", f"/members/{member['id']}/tokens", {"name": "browser"})
    assert code == 201, made
    return member, str(made["token"])


def team_with(stack: Any, name: str, member_id: str, role: str) -> str:
    """A new team with `member_id` in it as `role`; its id."""
    code, team = stack.call("POST", "/teams", {"name": name})
    assert code == 201, team
    code, body = stack.call("PUT", f"/teams/{team['id']}/members/{member_id}", {"role": role})
    assert code == 200, body
    return str(team["id"])


def settle(page: Any) -> None:
    """Let the page run what an answer it just got has queued (its fetch
    continuations, then a task and two frames)."""
    page.evaluate(
        "() => new Promise((done) => setTimeout(() =>"
        " requestAnimationFrame(() => requestAnimationFrame(done)), 0))"
    )


def flush_requests(page: Any) -> None:
    """Until every request the page has made so far was reported to the
    test: a sentinel request made now is reported after them. So "nothing
    was sent" is asserted without waiting a guessed time."""
    with page.expect_request(lambda r: r.url.endswith("/__flush__")):
        page.evaluate("() => { fetch('/__flush__').catch(() => {}); }")


class Held:
    """Requests matching a route, held until released."""

    def __init__(self, page: Any, pattern: re.Pattern[str], method: str = "GET") -> None:
        self.page = page
        self.routes: list[Any] = []
        self.method = method
        page.route(pattern, self._hold)

    def wait(self, count: int = 1, seconds: float = 30) -> None:
        """Until `count` requests are held. Route handlers run only while
        Playwright talks to the page, so each poll is a (short) call to it."""
        deadline = time.monotonic() + seconds
        while len(self.routes) < count:
            assert time.monotonic() < deadline, f"{len(self.routes)} of {count} requests held"
            self.page.evaluate("() => new Promise((done) => setTimeout(done, 20))")

    def _hold(self, route: Any) -> None:
        if route.request.method == self.method:
            self.routes.append(route)
        else:
            route.continue_()

    def release_all(self) -> None:
        while self.routes:
            self.routes.pop(0).continue_()


def close_page(page: Any) -> None:
    """Close a page once no route handler can fail the test: a poll in flight
    as it closes would reach a handler that fetches ("Response has been
    disposed", a CI run's teardown error)."""
    page.unroute_all(behavior="ignoreErrors")
    page.close()


def route_notebook_as(page: Any, nb_id: str, **fields: Any) -> None:
    """The notebook's describe answered with `fields` over what the API says
    (a status no Sail or Marimo is needed for); an error (a 404 once it is
    deleted) goes through as it is."""

    def changed(route: Any) -> None:
        answer = route.fetch()
        if answer.status != 200:
            route.fulfill(response=answer)
            return
        body = answer.json()
        for item in body["included"]["notebooks"]:
            item.update(fields)
        route.fulfill(response=answer, json=body)

    page.route(re.compile(rf"/api/v1/workloads/notebooks/{nb_id}$"), changed)


def route_as_running(page: Any, nb_id: str) -> None:
    """The notebook's describe answered as if it ran."""
    route_notebook_as(page, nb_id, status="running", sessionId="SESSION1")


def open_answer(frame_url: str) -> dict[str, str]:
    """What `POST …/open` answers, with a URL the console may frame."""
    return {"url": frame_url, "expiresAt": "2099-01-01T00:00:00Z", "mode": "edit"}
