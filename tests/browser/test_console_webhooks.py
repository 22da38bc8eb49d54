"""Webhooks in the console (headless Chromium, the whole stack with a real
worker; docs/console.md "Webhooks"): an org admin adds one, copies its
secret once, a notebook's failed start reaches the receiver signed with
that secret, its delivery is listed, and the webhook is deleted on a
question. Members who are not org admins are not offered the page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from browser_helpers import close_page, create_notebook_via_api, member_with_token, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


class Received:
    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks' verification, from its specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return f"v1,{digest}" in headers["webhook-signature"].split()


def test_an_org_admin_adds_a_webhook_that_tells_of_a_failed_start(
    browser: Any, stack_webhooks: Any, settings: Any, receiver: tuple[str, Received]
) -> None:
    stack = stack_webhooks
    url, got = receiver
    nb_id = create_notebook_via_api(stack, "Nightly load")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="Webhooks", exact=True).click()
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_focused()
        expect(page.locator("#webhooks-empty")).to_have_text("No webhook yet.")
        form = page.locator("#webhook-form")
        form.get_by_role("button", name="Add webhook").click()
        expect(page.locator("#webhook-form-error")).to_have_text("Enter the URL to send to.")
        form.get_by_label("URL").fill("ftp://hooks.example.com/")
        form.get_by_role("button", name="Add webhook").click()
        expect(page.locator("#webhook-form-error")).to_contain_text("must be an http(s) URL")
        form.get_by_label("URL").fill(url)
        form.get_by_label("Description").fill("#data-alerts")
        form.get_by_label("failed").check()
        form.get_by_role("button", name="Add webhook").click()

        secret_field = page.get_by_label("Signing secret")
        expect(secret_field).to_be_focused()
        secret = secret_field.input_value()
        assert secret.startswith("whsec_")
        row = page.locator("#webhooks-body tr")
        expect(row).to_have_count(1)
        expect(row.first).to_contain_text(url)
        expect(row.first).to_contain_text("#data-alerts")
        expect(row.first.locator("td").nth(1)).to_have_text("failed")
        page.get_by_role("button", name="Done").click()
        expect(secret_field).to_have_count(0)  # shown once
        assert secret not in page.content()

        # A failed start, as the workers record one: the worker sends it.
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            for old, new in (("stopped", "starting"), ("starting", "failed")):
                conn.execute(
                    "insert into notebook_events (notebook_id, organization_id, notebook_name,"
                    " from_status, to_status, reason, actor) values (%s, %s, 'Nightly load',"
                    " %s, %s, 'Sail did not start', 'reconciler')",
                    (nb_id, stack.organization_id, old, new),
                )
        deadline = time.monotonic() + 30
        while not got.posts:
            assert time.monotonic() < deadline, "the worker sent nothing"
            time.sleep(0.1)
        [(headers, body)] = got.posts  # `starting` was not asked for
        assert verified(secret, headers, body)
        assert b'"toStatus" : "failed"' in body or b'"toStatus": "failed"' in body, body

        # A test, to try the receiver: sent as any delivery, listed beside it.
        row.first.get_by_role("button", name=f"Send a test to {url} (#data-alerts)").click()
        expect(page.locator("#announcer")).to_contain_text(f"Test sent to {url}")
        while len(got.posts) < 2:
            assert time.monotonic() < deadline + 30, "the worker sent no test"
            time.sleep(0.1)
        test_headers, test_body = got.posts[1]
        assert verified(secret, test_headers, test_body)
        assert b'"type":"webhook.test"' in test_body, test_body

        row.first.get_by_role("button", name=f"Deliveries of {url} (#data-alerts)").click()
        deliveries = page.locator("#deliveries-body tr")
        expect(deliveries).to_have_count(2)
        expect(deliveries.first).to_contain_text("a test")
        deliveries = page.locator("#deliveries-body tr:not(:first-child)")
        expect(deliveries).to_have_count(1)
        expect(deliveries.first).to_contain_text("Nightly load")
        expect(deliveries.first).to_contain_text("failed")
        expect(deliveries.first).to_contain_text("Delivered")
        expect(deliveries.first.locator("td").nth(4)).to_have_text("204")

        # A new secret, on a question: shown once; the old one signs a day more.
        row.first.get_by_role("button", name=f"New secret for {url} (#data-alerts)").click()
        page.get_by_role("alertdialog", name="Give this webhook a new secret?").get_by_role(
            "button", name="New secret"
        ).click()
        expect(secret_field).to_be_focused()
        assert secret_field.input_value() not in (secret, "")
        expect(row.first).to_contain_text("Its old secret signs too until")
        page.get_by_role("button", name="Done").click()

        # An edit keeps the secret: the form says so by not showing one.
        row.first.get_by_role("button", name=f"Edit {url} (#data-alerts)").click()
        expect(page.get_by_role("heading", name="Edit webhook")).to_be_visible()
        expect(form.get_by_label("URL")).to_have_value(url)
        expect(form.get_by_label("URL")).to_be_focused()
        form.get_by_label("failed").uncheck()
        form.get_by_label("stopped").check()
        form.get_by_role("button", name="Save webhook").click()
        expect(page.locator("#announcer")).to_have_text("Webhook saved")
        expect(row.first.locator("td").nth(1)).to_have_text("stopped")
        expect(page.get_by_role("heading", name="Add a webhook")).to_be_visible()
        expect(page.get_by_label("Signing secret")).to_have_count(0)
        [hook] = stack.call("GET", "/webhooks")[1]["items"]
        assert hook["statuses"] == ["stopped"]

        row.first.get_by_role("button", name=f"Delete {url} (#data-alerts)").click()
        dialog = page.get_by_role("alertdialog", name="Delete this webhook?")
        dialog.get_by_role("button", name="Delete").click()
        expect(page.locator("#webhooks-empty")).to_be_visible()
        expect(page.locator("#deliveries-panel")).to_be_hidden()
        assert stack.call("GET", "/webhooks")[1]["total"] == 0
    finally:
        close_page(page)


def test_a_member_is_not_offered_webhooks(browser: Any, stack: Any) -> None:
    _, token = member_with_token(stack, "bo@example.com", "Bo")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, token)
        expect(page.get_by_role("link", name="Usage", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="Webhooks", exact=True)).to_have_count(0)
        page.evaluate("location.hash = '#/webhooks'")
        expect(page.locator("#webhooks-error")).to_contain_text("Only organization admins")
    finally:
        close_page(page)


def test_an_admin_disables_a_webhook_and_enables_it_again(browser: Any, stack: Any) -> None:
    url = "https://hooks.example.com/pager"
    code, made = stack.call("POST", "/webhooks", {"url": url})
    assert code == 201, made
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate("location.hash = '#/webhooks'")
        row = page.locator(f"[data-webhook='{made['id']}']")
        expect(row).to_contain_text("every status change")
        row.get_by_role("button", name=f"Disable {url}").click()
        expect(row).to_contain_text("Nothing: disabled")
        expect(row.locator("[data-disabled-reason]")).to_contain_text("Disabled by ")
        # No test for a disabled webhook; focus stays on its switch.
        expect(row.get_by_role("button", name=f"Send a test to {url}")).to_have_count(0)
        enable = row.get_by_role("button", name=f"Enable {url}")
        expect(enable).to_be_focused()
        _, listed = stack.call("GET", "/webhooks")
        assert listed["items"][0]["enabled"] is False
        enable.click()
        expect(row).to_contain_text("every status change")
        expect(row.get_by_role("button", name=f"Send a test to {url}")).to_be_visible()
        _, listed = stack.call("GET", "/webhooks")
        assert listed["items"][0]["enabled"] is True
    finally:
        close_page(page)
