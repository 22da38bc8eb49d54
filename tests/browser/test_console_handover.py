"""Handing a notebook on from its page (headless Chromium, the whole stack;
fixtures in conftest.py): an org admin finds the new owner by name (an owner
who is not one is not offered it); the history says who handed it to whom."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import (
    close_page,
    create_notebook_via_api,
    member_with_token,
    owner_of,
    sign_in,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}


def test_an_admin_hands_a_disabled_members_notebook_to_someone_found_by_name(
    browser: Any, stack: Any
) -> None:
    ann, ann_token = member_with_token(stack, "ann@example.com", "Ann Analyst")
    bob, _ = member_with_token(stack, "bob@example.com", "Bob Builder")
    nb_id = create_notebook_via_api(stack, "Ann's analysis", token=ann_token)
    assert stack.call("DELETE", f"/members/{ann['id']}")[0] == 204

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        facts = page.locator("#nb-facts")
        owner = facts.locator("dd").first  # the first fact is the owner
        owner.filter(has_text="Ann Analyst (disabled)").wait_for()
        facts.get_by_role("button", name="Hand Ann's analysis on to another owner").click()
        dialog = page.locator("#owner-dialog")
        # Ann is disabled: nothing is said of her access (she has none).
        assert "keeps access" not in dialog.inner_text()
        # Nobody chosen yet: said, and nothing sent.
        dialog.get_by_role("button", name="Hand on").click()
        assert page.locator("#owner-error").inner_text() == "Choose the new owner first."
        # A choice, then typing and Enter before the search answers: the
        # choice is gone at the first keystroke, so nobody gets it (an audit
        # handed it to the member chosen before the search).
        choice = page.get_by_label("New owner", exact=True)
        expect(choice.locator("option", has_text="Bob Builder")).to_have_count(1)
        choice.select_option(bob["id"])
        search = page.get_by_label("Find the new owner")
        search.fill("carl")
        search.press("Enter")
        expect(page.locator("#owner-error")).to_have_text("Choose the new owner first.")
        assert owner_of(stack, nb_id) == ann["id"]
        search.fill("builder")
        # The search's answer replaces the first one (every member): only Bob is left.
        expect(choice.locator("option")).to_have_count(2)
        assert choice.locator("option").all_inner_texts() == [
            "Choose a member",
            "Bob Builder (bob@example.com)",
        ]
        choice.select_option(bob["id"])
        dialog.get_by_role("button", name="Hand on").click()
        owner.filter(has_text="Bob Builder").wait_for()
        assert not dialog.is_visible()
        # Focus goes back to the control, not to the page's body.
        focused = page.evaluate("document.activeElement.dataset.focusKey")
        assert focused == f"{nb_id}:HandOn"
        page.locator(
            "#nb-history li",
            has_text="Handed on from Ann Analyst (ann@example.com)"
            " to Bob Builder (bob@example.com)",
        ).wait_for()
        assert owner_of(stack, nb_id) == bob["id"]
    finally:
        close_page(page)


def test_an_owner_who_is_not_an_admin_is_not_offered_a_hand_over(browser: Any, stack: Any) -> None:
    """The API refuses it (the notebook's cost would move to a colleague who
    never agreed): no button that could only fail."""
    _, cleo_token = member_with_token(stack, "cleo@example.com", "Cleo Coder")
    nb_id = create_notebook_via_api(stack, "Cleo's model", token=cleo_token)

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, cleo_token)
        page.evaluate(f"location.hash = '#/notebooks/{nb_id}'")
        owner = page.locator("#nb-facts dd").first
        owner.filter(has_text="you").wait_for()
        page.locator("#nb-actions").get_by_role("button", name="Edit").wait_for()
        assert page.get_by_role("button", name="Hand Cleo's model on to another owner").count() == 0
    finally:
        close_page(page)


def test_an_admin_finds_a_leaving_members_notebooks_from_people(browser: Any, stack: Any) -> None:
    """Someone leaves: from their row in People, the list of what they own
    (`?owner=`), however many notebooks the organization has."""
    eve, eve_token = member_with_token(stack, "eve@example.com", "Eve Engineer")
    create_notebook_via_api(stack, "Eve's pipeline", token=eve_token)
    create_notebook_via_api(stack, "The admin's own")
    assert stack.call("DELETE", f"/members/{eve['id']}")[0] == 204

    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        page.get_by_role("link", name="People", exact=True).click()
        page.get_by_label("Show disabled members").check()
        page.get_by_role("button", name="Notebooks of Eve Engineer").click()
        rows = page.locator("#notebooks-body tr")
        expect(rows).to_have_count(1)
        assert "Eve's pipeline" in rows.first.inner_text()
        owner = page.get_by_label("Owner", exact=True)
        assert owner.locator("option:checked").inner_text() == "Eve Engineer (disabled)"
        # "Me": the admin's own; "Anyone": both.
        owner.select_option(label="Me")
        rows.filter(has_text="The admin's own").wait_for()
        expect(rows).to_have_count(1)
        owner.select_option(label="Anyone")
        expect(rows).to_have_count(2)
        # All of Eve's at once (someone leaving owns many): the filter's
        # "Hand all on…", to the admin's colleague found by name.
        create_notebook_via_api(stack, "Spare")  # not Eve's: stays
        code, frank = stack.call(
            "POST", "/members", {"email": "frank@example.com", "name": "Frank Finance"}
        )
        assert code == 201, frank
        owner.select_option(label="Eve Engineer (disabled)")
        expect(rows).to_have_count(1)
        page.get_by_role("button", name="Hand every notebook of Eve Engineer (disabled) on").click()
        dialog = page.locator("#owner-dialog")
        assert "Each becomes the new owner's" in dialog.inner_text()
        # How many, whatever the list's filters show.
        expect(page.locator("#owner-title")).to_have_text(
            "Hand all 1 notebook of Eve Engineer (disabled) on"
        )
        page.get_by_label("Find the new owner").fill("frank")
        choice = page.get_by_label("New owner", exact=True)
        expect(choice.locator("option")).to_have_count(2)
        choice.select_option(frank["id"])
        dialog.get_by_role("button", name="Hand on").click()
        notice = page.locator("#notebooks-notice")
        expect(notice).to_have_text(
            "1 notebook of Eve Engineer (disabled) handed on to Frank Finance."
        )
        page.locator("#notebooks-empty").wait_for()
        code, franks = stack.call("GET", f"/workloads/notebooks?owner={frank['id']}")
        assert code == 200 and franks["total"] == 1
        # Back to People: still the disabled members, as left.
        page.get_by_role("link", name="People", exact=True).click()
        expect(page.get_by_label("Show disabled members")).to_be_checked()
        page.get_by_role("button", name="Notebooks of Eve Engineer").wait_for()
    finally:
        close_page(page)
