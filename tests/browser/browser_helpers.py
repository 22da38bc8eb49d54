"""Page helpers the browser tests share."""

from __future__ import annotations

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


def create_notebook_via_api(stack: Any, name: str, teams: list[str] | None = None) -> str:
    """A stopped notebook on the bootstrap's default workload config; its id."""
    _, configs = stack.call("GET", "/workloads/configs")
    config = next(c["id"] for c in configs["items"] if c["name"] == "default")
    body: dict[str, Any] = {"name": name, "workloadConfigId": config}
    if teams:
        body["teamIds"] = teams
    code, created = stack.call("POST", "/workloads/notebooks", body)
    assert code == 201, created
    return str(created["item"]["notebookId"])
