"""One origin per notebook, in headless Chromium against the whole stack
(api, worker, proxy, local runtime with real Sail and Marimo) configured with
NOTEBOOKS_PROXY_NOTEBOOK_URL=http://{id}.nb.test:{port} and the console at
http://nb.test:{port} (Chromium maps both to loopback; fixtures in conftest).

The member opens notebook Beta, then notebook Alpha, from the console: each
editor loads in the iframe from its own host. Then Alpha's page does what any
script in a notebook's outputs could do to reach Beta, whose cookie this
browser holds: fetch Beta on Beta's origin (the browser's CORS blocks the
read), fetch Beta's path on Alpha's own origin (the proxy answers 404: that
host serves Alpha alone; on one shared origin this read Beta's page and its
server token), and open Beta's WebSocket (the proxy refuses Alpha's Origin).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from browser_helpers import close_page, create_notebook_via_api

pytestmark = [pytest.mark.browser, pytest.mark.slow]

START_SECONDS = 120

READ_ATTEMPTS = """async (urls) => {
  const out = [];
  for (const url of urls) {
    try {
      const r = await fetch(url, {credentials: "include"});
      out.push(`${r.status} ${(await r.text()).slice(0, 60)}`);
    } catch (e) {
      out.push("blocked");
    }
  }
  return out;
}"""

WEBSOCKET_ATTEMPT = """(url) => new Promise((done) => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); done("open"); };
  ws.onerror = () => done("refused");
})"""


def create_and_start(stack: Any, name: str) -> str:
    nb_id = create_notebook_via_api(stack, name)
    assert stack.call("POST", f"/workloads/notebooks/{nb_id}/start")[0] == 202
    return nb_id


def open_from_console(page: Any, name: str) -> str:
    """Open `name` from the list; the host its editor loaded from."""
    page.get_by_role("link", name="Notebooks", exact=True).first.click()
    page.get_by_role("button", name=f"Open {name}").click()
    frame = page.locator("#open-frame")
    frame.wait_for(state="visible")
    page.frame_locator("#open-frame").locator(".cm-editor").first.wait_for(timeout=60_000)
    return urlsplit(frame.get_attribute("src") or "").netloc


def test_each_notebook_has_its_own_origin_and_cannot_reach_another(
    browser_own_origins: Any, stack_own_origins: Any
) -> None:
    stack = stack_own_origins
    alpha, beta = create_and_start(stack, "Alpha"), create_and_start(stack, "Beta")
    stack.wait_provisioned(alpha, START_SECONDS)
    stack.wait_provisioned(beta, START_SECONDS)
    proxy_port = stack.proxy_url.rsplit(":", 1)[1]

    page = browser_own_origins.new_page(viewport={"width": 1280, "height": 800})
    page.goto(stack.console_url + "/")
    page.get_by_label("API token").fill(stack.token)
    page.get_by_label("API token").press("Enter")
    page.get_by_role("heading", name="Notebooks", exact=True).wait_for()

    beta_host = f"{beta.lower()}.nb.test:{proxy_port}"
    alpha_host = f"{alpha.lower()}.nb.test:{proxy_port}"
    assert open_from_console(page, "Beta") == beta_host  # the browser now holds Beta's cookie
    assert open_from_console(page, "Alpha") == alpha_host
    alpha_page = next(f for f in page.frames if urlsplit(f.url).netloc == alpha_host)

    beta_there, beta_here = alpha_page.evaluate(
        READ_ATTEMPTS, [f"http://{beta_host}/notebooks/{beta}/", f"/notebooks/{beta}/"]
    )
    assert beta_there == "blocked"
    assert beta_here.startswith("404 "), beta_here
    socket = alpha_page.evaluate(WEBSOCKET_ATTEMPT, f"ws://{beta_host}/notebooks/{beta}/ws")
    assert socket == "refused"
    # Alpha's own page still works as Marimo's: its own API answers.
    (own,) = alpha_page.evaluate(READ_ATTEMPTS, [f"/notebooks/{alpha}/api/version"])
    assert own.startswith("200 "), own
    close_page(page)
