"""Offering a notebook in the console (headless Chromium, the whole stack;
fixtures in conftest.py): its owner, not an org admin, offers it to a
colleague found by name and may withdraw the offer; the colleague finds it
above their list, declines one and accepts another, which becomes theirs."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import (
    close_page,
    create_notebook_via_api,
    member_with_token,
    owner_of,
    sign_in,
    team_with,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def offer_by_api(stack: Any, nb_id: str, member_id: str, token: str) -> None:
    code, body = stack.call(
        "PUT", f"/workloads/notebooks/{nb_id}/offer", {"memberId": member_id}, token=token
    )
    assert code == 200, body


def test_an_owner_offers_a_notebook_and_the_colleague_accepts_it(
    browser: Any, stack: Any, artifacts: Any
) -> None:
    _, cleo_token = member_with_token(stack, "cleo@example.com", "Cleo Coder")
    dan, dan_token = member_with_token(stack, "dan@example.com", "Dan Data")
    model = create_notebook_via_api(stack, "Cleo's model", token=cleo_token)
    draft = create_notebook_via_api(stack, "Cleo's draft", token=cleo_token)

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, cleo_token)
        page.evaluate(f"location.hash = '#/notebooks/{model}'")
        offer = page.get_by_role("button", name="Offer Cleo's model to a colleague")
        offer.click()
        dialog = page.locator("#offer-dialog")
        expect(dialog.locator("#offer-title")).to_have_text("Offer “Cleo's model” to a colleague")
        email = page.get_by_label("Their email address")
        email.fill("nobody@example.com")
        dialog.get_by_role("button", name="Offer", exact=True).click()
        expect(page.locator("#offer-error")).to_contain_text(
            "No active member of this organization has that email address."
        )
        email.fill("Dan@Example.com")
        dialog.get_by_role("button", name="Offer", exact=True).click()
        pending = page.locator("#nb-offer")
        expect(pending).to_contain_text("Offered to Dan Data (dan@example.com)")
        assert not dialog.is_visible()
        expect(page.locator(f'[data-focus-key="{model}:Offer"]')).to_be_focused()
        page.screenshot(path=str(artifacts / "console-offer-made.png"), full_page=True)
        page.locator("#nb-history li", has_text="Offered to Dan Data (dan@example.com)").wait_for()
        # Offered again: the dialog says it would replace Dan's; a typo is caught.
        offer.click()
        expect(page.locator("#offer-replaces")).to_have_text(
            "It is offered to Dan Data (dan@example.com) now: offering it to someone else"
            " withdraws that offer."
        )
        email.fill("dan.example.com")
        dialog.get_by_role("button", name="Offer", exact=True).click()
        expect(page.locator("#offer-error")).to_have_text(
            "That is not an email address: it looks like name@example.com."
        )
        email.press("Escape")
        expect(dialog).to_be_hidden()
        # Withdrawn, then made again.
        pending.get_by_role("button", name="Withdraw offer").click()
        expect(pending).to_be_hidden()
        page.locator(
            "#nb-history li", has_text="Offer to Dan Data (dan@example.com) withdrawn"
        ).wait_for()
        assert stack.call("GET", f"/workloads/notebooks/{model}/offer")[0] == 404
    finally:
        close_page(page)

    sketch = create_notebook_via_api(stack, "Cleo's sketch", token=cleo_token)
    for nb in (sketch, draft, model):  # the model's offer is the newest
        offer_by_api(stack, nb, dan["id"], cleo_token)

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, dan_token)
        offers = page.locator("#offers")
        expect(offers.locator("li")).to_have_count(3)
        page.screenshot(path=str(artifacts / "console-offers-to-me.png"))
        first = offers.locator("li").first
        expect(first).to_contain_text(
            "Cleo Coder (cleo@example.com) offers you Cleo's model (stopped)"
        )
        offers.get_by_role("button", name="Decline Cleo's draft").click()
        expect(offers.locator("li")).to_have_count(2)
        # Focus on the section's heading, not on the next offer's button.
        expect(page.locator("#offers-title")).to_be_focused()
        offers.get_by_role("button", name="Accept Cleo's model").click()
        expect(offers.locator("li")).to_have_count(1)
        # Dan's own now: in his list, his to edit.
        page.locator("#notebooks-body tr", has_text="Cleo's model").wait_for()
        # The last one withdrawn while on screen: Accept is refused, and the
        # refusal stays said though no offer is left.
        assert (
            stack.call("DELETE", f"/workloads/notebooks/{sketch}/offer", token=cleo_token)[0] == 204
        )
        offers.get_by_role("button", name="Accept Cleo's sketch").click()
        expect(page.locator("#offers-error")).to_have_text(
            "Could not accept “Cleo's sketch”: This notebook is not offered to you."
        )
        expect(offers.locator("li")).to_have_count(0)
        expect(page.locator("#offers-title")).to_be_focused()
        assert owner_of(stack, model) == dan["id"]
        assert owner_of(stack, draft) != dan["id"]
        _, events = stack.call("GET", f"/workloads/notebooks/{draft}/events")
        assert events["items"][0]["reason"] == "Dan Data (dan@example.com) declined the offer"
    finally:
        close_page(page)


def test_a_colleague_who_sees_the_notebook_answers_its_offer_on_its_page(
    browser: Any, stack: Any
) -> None:
    _, cleo_token = member_with_token(stack, "cleo@example.com", "Cleo Coder")
    eve, eve_token = member_with_token(stack, "eve@example.com", "Eve Engineer")
    team = team_with(stack, "analysts", eve["id"], "viewer")
    report = create_notebook_via_api(stack, "Cleo's report", [team], token=cleo_token)
    offer_by_api(stack, report, eve["id"], cleo_token)

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, eve_token)
        page.evaluate(f"location.hash = '#/notebooks/{report}'")
        offer = page.locator("#nb-offer")
        expect(offer).to_contain_text(
            "Cleo Coder (cleo@example.com) offers you this notebook: accepted, it is yours"
        )
        offer.get_by_role("button", name="Accept").click()
        page.locator("#nb-facts dd").first.filter(has_text="you").wait_for()
        expect(offer).to_be_hidden()
        expect(page.locator(f'[data-focus-key="{report}:Offer"]')).to_be_focused()
        assert owner_of(stack, report) == eve["id"]
    finally:
        close_page(page)
