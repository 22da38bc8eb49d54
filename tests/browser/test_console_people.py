"""The console's People page in headless Chromium against the whole stack
(fixtures in conftest.py): what an organization admin used to need curl for,
and what any member may do with their own tokens.

- an org admin adds a member (a duplicate email shows the API's 409 detail),
  pages through the members, makes a team, adds the member to it as editor,
  makes them a viewer, removes them, hands them a token that then works
  against the API, and disables them, after which that token is refused;
  the admin also makes a token of their own, sees it listed and revokes it;
- a member who is not an org admin sees their tokens and the teams but no
  Members section and no create-team form; as a team's admin they add a
  member to it by id; revoking "this console session" signs the console out.

Screenshot: tests/artifacts/console-people.png.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import (
    close_page,
    create_notebook_via_api,
    flush_requests,
    member_with_token,
    sign_in,
    team_with,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MEMBER_PAGE = 50  # the members table's page size (people.js)


def open_people(page: Any) -> None:
    page.get_by_role("link", name="People", exact=True).click()
    page.get_by_role("heading", name="People", exact=True).wait_for()
    page.locator("#tokens-body tr").first.wait_for()


def team_card(page: Any, name: str) -> Any:
    return page.locator("#people-teams details").filter(has=page.locator("summary", has_text=name))


def confirm(page: Any, button: str, expect: str = "") -> None:
    """Answer the confirmation dialog (its default button is Cancel)."""
    dialog = page.get_by_role("alertdialog")
    dialog.wait_for()
    assert page.evaluate("document.activeElement.textContent") == "Cancel"
    assert expect in dialog.inner_text(), dialog.inner_text()
    dialog.get_by_role("button", name=button).click()
    dialog.wait_for(state="hidden")


def focused_label(page: Any) -> str:
    return str(
        page.evaluate(
            "(() => { const el = document.activeElement;"
            " return el.getAttribute('aria-label') || (el.labels && el.labels[0]"
            " ? el.labels[0].textContent : el.textContent); })()"
        )
    )


def unlabeled(page: Any) -> list[str]:
    return list(
        page.evaluate("""() => [...document.querySelectorAll('input,select,textarea')]
            .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
            .map(el => el.id || el.name)""")
    )


def memberships(stack: Any, team_id: str) -> list[tuple[str, str]]:
    _, listed = stack.call("GET", f"/teams/{team_id}/members")
    return [(m["memberId"], m["role"]) for m in listed["items"]]


def test_people_admin_manages_members_teams_tokens_and_a_member_sees_its_own(
    browser: Any, stack: Any, wait: Any, artifacts: Path
) -> None:
    # Two pages of members: the first admin and 50 more, newest first.
    for i in range(MEMBER_PAGE):
        body = {"email": f"bulk{i:02}@example.com", "name": f"Bulk {i:02}"}
        assert stack.call("POST", "/members", body)[0] == 201
    _, admin = stack.call("GET", "/me")

    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, stack.token)
    open_people(page)
    assert page.locator("#people-you code").inner_text() == stack.member_id
    session = page.locator("#tokens-body tr", has_text="this console session")
    assert session.count() == 1 and "console sign-in" in session.inner_text()

    # Members, a page at a time (the API's marker).
    members = page.locator("#members-panel")
    info = members.locator("#members-page-info")
    wait(lambda: info.inner_text() == "Page 1 of 2 · 51 members", 10, "the members pager")
    assert members.locator("#members-body tr").count() == MEMBER_PAGE
    members.get_by_role("button", name="Next page").click()
    page.get_by_text("Page 2 of 2 · 51 members").wait_for()
    assert members.locator("#members-body tr").all_inner_texts()[0].startswith(admin["name"])
    members.get_by_role("button", name="Previous page").click()
    page.get_by_text("Page 1 of 2 · 51 members").wait_for()

    # Add a member; the same email again is the API's 409, shown as its detail.
    form = page.locator("#member-form")
    form.get_by_label("Email", exact=True).fill("ann@example.com")
    form.get_by_label("Name", exact=True).fill("Ann Analyst")
    form.get_by_role("button", name="Add member").click()
    ann_row = page.locator("#members-body tr", has_text="ann@example.com")
    ann_row.wait_for()
    page.get_by_text("Page 1 of 2 · 52 members").wait_for()
    wait(lambda: page.evaluate("document.activeElement.id") == "member-email", 5, "focus")
    _, newest = stack.call("GET", "/members?limit=1")
    ann = newest["items"][0]
    assert (ann["email"], ann["name"], ann["organizationAdmin"]) == (
        "ann@example.com",
        "Ann Analyst",
        False,
    )
    form.get_by_label("Email", exact=True).fill("ANN@example.com")
    form.get_by_label("Name", exact=True).fill("Ann Again")
    form.get_by_role("button", name="Add member").click()
    error = page.locator("#member-form-error")
    error.wait_for()
    code, problem = stack.call("POST", "/members", {"email": "ann@example.com", "name": "x"})
    assert code == 409 and problem["code"] == "member_exists"
    assert error.inner_text() == f"Could not add the member: {problem['detail']}"

    # A team: create it, add Ann as editor, make her a viewer, remove her.
    page.get_by_label("Team name").fill("data-eng")
    page.get_by_role("button", name="Create team").click()
    card = team_card(page, "data-eng")
    card.get_by_role("button", name="Add to data-eng").wait_for()
    _, teams = stack.call("GET", "/teams")
    (team,) = [t for t in teams["items"] if t["name"] == "data-eng"]
    card.get_by_label("Member to add").select_option(label="Ann Analyst (ann@example.com)")
    card.get_by_label("Role", exact=True).select_option("editor")
    card.get_by_role("button", name="Add to data-eng").click()
    role = card.get_by_label("Role of Ann Analyst in data-eng", exact=True)
    role.wait_for()
    assert role.input_value() == "editor"
    assert memberships(stack, team["id"]) == [(ann["id"], "editor")]
    wait(lambda: focused_label(page) == "Member to add", 5, "focus on the next member to add")
    # The picker reads the newest 100 (an organization of thousands is never
    # read whole) and offers those not in the team; a search narrows it
    # (GET /members?q=).
    picker = card.get_by_label("Member to add").locator("option")
    expect(picker).to_have_count(52)  # "Choose a member" and the 51 others: Ann is in it
    # A choice, then typing and Enter before the search answers: nobody is
    # added (an audit added the member chosen before the search).
    card.get_by_label("Member to add").select_option(label="Bulk 01 (bulk01@example.com)")
    find = card.get_by_label("Find whom to add")
    find.fill("zzz")
    find.press("Enter")
    card.locator(".error", has_text="Choose a member to add first.").wait_for()
    assert memberships(stack, team["id"]) == [(ann["id"], "editor")]
    card.get_by_label("Find whom to add").fill("bulk 00")
    expect(picker).to_have_count(2)
    assert picker.all_inner_texts() == ["Choose a member", "Bulk 00 (bulk00@example.com)"]
    assert unlabeled(page) == []
    assert "null" not in card.inner_text() and "undefined" not in card.inner_text()
    page.screenshot(path=str(artifacts / "console-people.png"), full_page=True)

    role.select_option("viewer")
    card.get_by_role("button", name="Save role of Ann Analyst in data-eng").click()
    wait(lambda: memberships(stack, team["id"]) == [(ann["id"], "viewer")], 10, "the role change")
    wait(
        lambda: focused_label(page) == "Save role of Ann Analyst in data-eng",
        5,
        "focus kept on Save",
    )
    card.get_by_role("button", name="Remove Ann Analyst from data-eng").click()
    confirm(page, "Remove from team", "Remove Ann Analyst from data-eng?")
    role.wait_for(state="detached")
    assert memberships(stack, team["id"]) == []
    card.get_by_text("Nobody is in this team yet.").wait_for()

    # Hand Ann her first token: shown once, and it works against the API.
    ann_row.get_by_role("button", name="New token for Ann Analyst").click()
    dialog = page.get_by_role("dialog", name="New token for Ann Analyst")
    # The longest life this console may give, not the list's first (1 hour):
    # a colleague handed a token the next day found it dead (admin audit).
    expiry = dialog.get_by_label("Expires")
    assert expiry.input_value() == ""
    assert expiry.evaluate("s => s.selectedOptions[0].text").startswith(
        "When this console session ends"
    )
    dialog.get_by_label("Token name").fill("first")
    dialog.get_by_role("button", name="Create token").click()
    dialog.wait_for(state="hidden")
    box = page.locator("#member-secret .secret-box")
    box.wait_for()
    assert "will not be shown again" in box.inner_text()
    secret = box.get_by_label("Token secret").input_value()
    assert secret.startswith("nbk_") and page.evaluate("document.activeElement.value") == secret
    code, me = stack.call("GET", "/me", token=secret)
    assert code == 200 and me["email"] == "ann@example.com", me
    box.get_by_role("button", name="Done").click()
    box.wait_for(state="detached")
    assert secret not in page.content()
    assert focused_label(page) == "New token for Ann Analyst"

    _, anns = stack.call("GET", f"/members/{me['id']}/tokens")
    ends = datetime.fromisoformat(anns["items"][0]["expiresAt"]) - datetime.now(UTC)
    assert ends > timedelta(hours=11), anns

    # Ann's tokens: the one just made, revoked on its own (no need to
    # disable her for a leaked token); asked first, then refused at once.
    ann_row.get_by_role("button", name="Tokens of Ann Analyst").click()
    tokens = page.get_by_role("dialog", name="Tokens of Ann Analyst")
    first = tokens.locator("#member-tokens-body tr", has_text="first")
    first.wait_for()
    assert first.locator("td[data-label='Made by']").inner_text() == "you"
    first.get_by_role("button", name=re.compile(r"^Revoke first \(")).click()
    confirm(page, "Revoke token", "Ann Analyst's other tokens go on")
    tokens.get_by_text("No live tokens.").wait_for()
    assert stack.call("GET", "/me", token=secret)[0] == 401
    tokens.get_by_role("button", name="Close").click()
    tokens.wait_for(state="hidden")
    assert focused_label(page) == "Tokens of Ann Analyst"

    # Found by a part of her email, however written; a search that finds
    # nobody says so; an empty box is everyone again (admin audit: paging by
    # date was the only way to find someone among thousands).
    search = page.get_by_label("Find a member")
    search.fill("ANN@")
    page.wait_for_function("() => document.querySelectorAll('#members-body tr').length === 1")
    assert "ann@example.com" in page.locator("#members-body tr").first.inner_text()
    assert page.locator("#members-found").inner_text() == "1 found"
    search.fill("zzz-nobody")
    page.get_by_text("Nobody's name or email contains “zzz-nobody”.").wait_for()
    search.fill("")
    page.get_by_text("Page 1 of 2").wait_for()

    # Ann made an organization admin, then no longer one; asked first each time.
    ann_row.get_by_role("button", name="Make Ann Analyst an organization admin").click()
    confirm(page, "Make admin", "open, stop or delete any notebook of the organization")
    ann_row.get_by_role("button", name="Remove Ann Analyst as organization admin").wait_for()
    assert ann_row.get_by_text("Organization admin").count() == 1
    _, ann_now = stack.call("GET", "/members?limit=100")
    assert [m["organizationAdmin"] for m in ann_now["items"] if m["id"] == me["id"]] == [True]
    ann_row.get_by_role("button", name="Remove Ann Analyst as organization admin").click()
    confirm(page, "Remove admin", "can then no longer")
    ann_row.get_by_role("button", name="Make Ann Analyst an organization admin").wait_for()

    # Disable Ann: asked first; then that token is refused at once.
    code, second = stack.call("POST", f"/members/{me['id']}/tokens", {"name": "second"})
    assert code == 201 and stack.call("GET", "/me", token=second["token"])[0] == 200
    ann_row.get_by_role("button", name="Disable Ann Analyst").click()
    # It says what she owns (`?owner=`), before what becomes of it.
    confirm(page, "Disable member", "Ann Analyst owns no notebook. Their notebooks stay")
    ann_row.wait_for(state="detached")
    assert stack.call("GET", "/me", token=second["token"])[0] == 401
    # The admin cannot disable itself (the API's 409): no such button.
    members.get_by_role("button", name="Next page").click()
    page.get_by_text("Page 2 of 2 · 51 members").wait_for()
    assert members.get_by_role("button", name=f"Disable {admin['name']}").count() == 0
    # The only admin stepping down: the API's refusal, kept in the question.
    members.get_by_role("button", name=f"Remove {admin['name']} as organization admin").click()
    dialog = page.get_by_role("alertdialog", name="Stop being an organization admin?")
    dialog.get_by_role("button", name="Remove admin").click()
    dialog.locator("#confirm-error", has_text="keeps at least one organization admin").wait_for()
    dialog.get_by_role("button", name="Cancel").click()

    # A token of the admin's own, for an hour: shown once, listed, revoked.
    token_form = page.locator("#token-form")
    token_form.get_by_label("Token name").fill("laptop")
    token_form.get_by_label("Expires").select_option(label="1 hour")
    token_form.get_by_role("button", name="Create token").click()
    own_box = page.locator("#token-secret .secret-box")
    own_box.wait_for()
    own = own_box.get_by_label("Token secret").input_value()
    assert token_form.get_by_label("Expires").input_value() == ""  # the next one: the longest
    code, me = stack.call("GET", "/me", token=own)
    assert code == 200 and me["id"] == stack.member_id
    laptop = page.locator("#tokens-body tr", has_text="laptop")
    laptop.wait_for()
    _, listed = stack.call("GET", f"/members/{stack.member_id}/tokens")
    (made,) = [t for t in listed["items"] if t["name"] == "laptop"]
    ends = datetime.fromisoformat(made["expiresAt"]) - datetime.now(UTC)
    assert timedelta(minutes=55) < ends <= timedelta(hours=1), made
    assert made["prefix"] in laptop.inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.api_url)
    own_box.get_by_role("button", name="Copy token").click()
    own_box.get_by_text("Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == own
    own_box.get_by_role("button", name="Done").click()
    laptop.get_by_role("button", name=re.compile(r"^Revoke laptop \(")).click()
    confirm(page, "Revoke token", "refused")
    laptop.wait_for(state="detached")
    assert stack.call("GET", "/me", token=own)[0] == 401
    assert session.count() == 1  # the console itself is still signed in

    # A team named wrong is renamed; one no longer needed is deleted, asked
    # first with what it takes (admin audit: neither was possible).
    code, scratch = stack.call("POST", "/teams", {"name": "scratch"})
    assert code == 201, scratch
    code, taken = stack.call("POST", "/teams", {"name": "taken"})
    assert code == 201, taken
    nb = create_notebook_via_api(stack, "Shared with scratch", [scratch["id"]])
    stack.call("PUT", f"/teams/{scratch['id']}/members/{stack.member_id}", {"role": "viewer"})
    page.reload()
    open_people(page)
    card = team_card(page, "scratch")
    card.locator("summary").click()
    name = card.get_by_label("Team name")
    name.fill("TAKEN")
    card.get_by_role("button", name="Rename scratch").click()
    _, refused = stack.call("PATCH", f"/teams/{scratch['id']}", {"name": "TAKEN"})
    card.locator(".error", has_text=refused["detail"]).wait_for()
    name.fill("sandbox")
    card.get_by_role("button", name="Rename scratch").click()
    card = team_card(page, "sandbox")
    card.get_by_role("button", name="Delete team sandbox").wait_for()
    assert stack.call("GET", f"/teams/{scratch['id']}/members")[0] == 200
    card.get_by_role("button", name="Delete team sandbox").click()
    confirm(page, "Delete team", "Its 1 member leaves it; the 1 notebook shared with it loses it")
    card.wait_for(state="detached")
    _, teams_now = stack.call("GET", "/teams")
    assert "sandbox" not in [t["name"] for t in teams_now["items"]]
    _, shared = stack.call("GET", f"/workloads/notebooks/{nb}")
    assert shared["item"]["teamIds"] == []
    _, me_now = stack.call("GET", "/me")
    assert scratch["id"] not in [t["teamId"] for t in me_now["teams"]]

    # Phone width: the tables are cards, nothing scrolls sideways.
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    close_page(page)

    # A member who is not an org admin (but admin of data-eng).
    code, bob = stack.call("POST", "/members", {"email": "bob@example.com", "name": "Bob"})
    assert code == 201, bob
    code, bob_token = stack.call("POST", f"/members/{bob['id']}/tokens", {"name": "pasted"})
    assert code == 201, bob_token
    path = f"/teams/{team['id']}/members/{bob['id']}"
    assert stack.call("PUT", path, {"role": "admin"})[0] == 200
    code, carol = stack.call("POST", "/members", {"email": "carol@example.com", "name": "Carol"})
    assert code == 201, carol

    page = browser.new_page(viewport=LAPTOP)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.method + " " + r.url))
    sign_in(page, stack.api_url, bob_token["token"])
    open_people(page)
    page.get_by_role("heading", name="Your tokens").wait_for()
    bob_session = page.locator("#tokens-body tr", has_text="this console session")
    assert bob_session.count() == 1
    # who made each: the console's sign-in token Bob himself, "pasted" the admin
    assert "you" in bob_session.locator("td[data-label='Made by']").inner_text()
    pasted = page.locator("#tokens-body tr", has_text="pasted")
    assert pasted.locator("td[data-label='Made by']").inner_text() == "an organization admin"
    card = team_card(page, "data-eng")
    card.wait_for()
    assert "you: admin" in card.locator("summary").inner_text()
    assert page.get_by_role("heading", name="Members").count() == 0
    assert not page.locator("#members-panel").is_visible()
    assert not page.get_by_label("Team name").is_visible()
    assert page.get_by_role("button", name="Create team").count() == 0
    assert not [a for a in asked if re.search(r"/api/v1/members(\?|$)", a)], asked

    # As the team's admin, Bob adds a member by id (he cannot list members);
    # an id that is no member is the API's 404, shown in the team.
    card.locator("summary").click()
    member_id = card.get_by_label("Member id")
    # An email (what a team admin knows of a colleague) is said to be one,
    # before anything is sent (the API would say only "not a valid id").
    member_id.fill("carol@example.com")
    card.get_by_role("button", name="Add to data-eng").click()
    card.locator(".error", has_text="That is an email address").wait_for()
    assert bob["id"] in card.locator(".error").inner_text()  # what an id looks like
    flush_requests(page)
    assert not [a for a in asked if a.startswith("PUT ")], asked
    member_id.fill("NOSUCHMEMBER")
    card.get_by_role("button", name="Add to data-eng").click()
    team_error = card.locator(".error")
    team_error.wait_for()
    _, missing = stack.call("PUT", f"/teams/{team['id']}/members/NOSUCHMEMBER", {"role": "editor"})
    assert team_error.inner_text() == f"Could not add the member: {missing['detail']}"
    member_id.fill(carol["id"])
    card.get_by_label("Role", exact=True).select_option("viewer")
    card.get_by_role("button", name="Add to data-eng").click()
    # Named, though Bob cannot list members: the team's list names its own.
    card.get_by_label("Role of Carol in data-eng", exact=True).wait_for()
    assert sorted(memberships(stack, team["id"])) == sorted(
        [(bob["id"], "admin"), (carol["id"], "viewer")]
    )
    assert unlabeled(page) == []

    # Bob, the team's only admin, making himself a viewer or leaving is asked
    # first, and told he cannot undo it and the team keeps no admin (admin
    # audit: it went through at one click). Cancel changes nothing.
    card.get_by_label("Role of Bob in data-eng", exact=True).select_option("viewer")
    card.get_by_role("button", name="Save role of Bob in data-eng").click()
    confirm(page, "Cancel", "You will no longer manage data-eng, and cannot undo it")
    card.get_by_role("button", name="Remove Bob from data-eng").click()
    dialog = page.get_by_role("alertdialog", name="Leave data-eng?")
    assert "You cannot add yourself back." in dialog.inner_text()
    assert "data-eng will have no admin left" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert (bob["id"], "admin") in memberships(stack, team["id"])
    # Carol's role is an ordinary change: no question.
    card.get_by_label("Role of Carol in data-eng", exact=True).select_option("editor")
    card.get_by_role("button", name="Save role of Carol in data-eng").click()
    wait(lambda: (carol["id"], "editor") in memberships(stack, team["id"]), 10, "the role")
    assert page.get_by_role("alertdialog").count() == 0

    # Revoking this console session's token signs the console out.
    bob_session.get_by_role("button", name=re.compile(r"^Revoke ")).click()
    confirm(page, "Revoke and sign out", "signs you out")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert (
        page.locator("#signin-error").inner_text()
        == "Signed out: you revoked this console session's token."
    )
    assert "#/" not in page.url
    stored = page.evaluate("JSON.stringify({...sessionStorage})")
    assert "notebooks.token" not in stored, stored
    _, bob_tokens = stack.call("GET", f"/members/{bob['id']}/tokens")
    assert [t["name"] for t in bob_tokens["items"]] == ["pasted"]
    assert stack.call("GET", "/me", token=bob_token["token"])[0] == 200
    close_page(page)


def test_revoking_the_expiring_token_a_console_signed_in_with_says_it_signs_out(
    browser: Any, stack: Any
) -> None:
    """A console's token made with a pasted token that has an end is bound to
    it (`madeWith`): the People page marks the pasted token, its Revoke says
    the console goes too, and signs out at once instead of at the next 401."""
    code, dan = stack.call("POST", "/members", {"email": "dan@example.com", "name": "Dan"})
    assert code == 201, dan
    body = {"name": "pasted-for-a-day", "expiresInSeconds": 86400}
    code, pasted = stack.call("POST", f"/members/{dan['id']}/tokens", body)
    assert code == 201, pasted
    assert pasted["madeWith"] is None  # an admin's token for a colleague is not bound

    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, stack.api_url, pasted["token"])
    open_people(page)
    _, listed = stack.call("GET", f"/members/{dan['id']}/tokens")
    (console_token,) = [t for t in listed["items"] if t["id"] != pasted["id"]]
    assert console_token["madeWith"] == pasted["id"], listed
    row = page.locator("#tokens-body tr", has_text="pasted-for-a-day")
    assert "this console signed in with it" in row.inner_text()
    session_row = page.locator("#tokens-body tr", has_text="this console session")
    assert "signed in with it" not in session_row.inner_text()

    row.get_by_role("button", name=re.compile(r"^Revoke pasted-for-a-day ")).click()
    confirm(page, "Revoke and sign out", "signs you out of this console")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert (
        page.locator("#signin-error").inner_text()
        == "Signed out: you revoked this console session's token."
    )
    assert stack.call("GET", "/me", token=pasted["token"])[0] == 401
    _, left = stack.call("GET", f"/members/{dan['id']}/tokens")
    assert left["items"] == []
    close_page(page)


def test_a_read_only_token_is_made_for_a_script_and_never_signs_in(
    browser: Any, stack: Any
) -> None:
    """People's token form makes a read-only token (docs/api.md "Read-only
    tokens"), listed as such; the API lets it read and nothing more, and the
    console will not sign in with it, saying why."""
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        open_people(page)
        token_form = page.locator("#token-form")
        token_form.get_by_label("Token name").fill("backup script")
        token_form.get_by_label("Read only").check()
        token_form.get_by_role("button", name="Create token").click()
        box = page.locator("#token-secret .secret-box")
        box.wait_for()
        script = box.get_by_label("Token secret").input_value()
        box.get_by_role("button", name="Done").click()
        expect(token_form.get_by_label("Read only")).not_to_be_checked()  # the next one: not
        row = page.locator("#tokens-body tr", has_text="backup script")
        expect(row).to_contain_text("read-only")
        session = page.locator("#tokens-body tr", has_text="this console")
        assert "read-only" not in session.inner_text()
        assert stack.call("GET", "/workloads/notebooks", token=script)[0] == 200
        code, problem = stack.call("POST", "/teams", {"name": "scripted"}, token=script)
        assert (code, problem["code"]) == (403, "read_only_token")

        other = browser.new_page(viewport=LAPTOP)
        try:
            other.goto(stack.api_url + "/")
            other.get_by_label("API token").fill(script)
            other.get_by_label("API token").press("Enter")
            expect(other.locator("#signin-error")).to_have_text(
                "That token is read-only, for scripts: sign in with a token that is not read-only."
            )
            expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
        finally:
            close_page(other)
    finally:
        close_page(page)


def test_teams_are_listed_by_name_your_own_first(browser: Any, stack: Any, wait: Any) -> None:
    """Sixty teams newest first was a list to search by memory (the admin
    audit): People lists yours first, each part by name, however capitalised;
    the pickers of teams list them by name too."""
    for name in ("alpha", "zeta", "Beta"):
        assert stack.call("POST", "/teams", {"name": name})[0] == 201
    team_with(stack, "zz mine", stack.member_id, "viewer")
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        options = page.locator("#list-team option")
        wait(lambda: options.count() == 5, 15, "the team filter")
        assert options.all_inner_texts()[1:] == ["alpha", "Beta", "zeta", "zz mine"]
        open_people(page)
        cards = page.locator("#people-teams summary .team-name")
        wait(lambda: cards.count() == 4, 15, "the teams")
        assert cards.all_inner_texts() == ["zz mine", "alpha", "Beta", "zeta"]
    finally:
        close_page(page)


def test_member_rows_keep_addresses_and_times_whole(browser: Any, stack: Any) -> None:
    """Beside a row of buttons, an address and a time broke mid-word at
    laptop width ("user2@example./com", "3 minut/es ago": the admin audit)."""
    for i, name in enumerate(["Bob Builder", "Ann Analyst", "Carol Cartographer-Longname"]):
        member_with_token(stack, f"user{i}@example.com", name)
    page = browser.new_page(viewport=LAPTOP)
    try:
        sign_in(page, stack.api_url, stack.token)
        open_people(page)
        rows = page.locator("#members-body tr")
        rows.nth(3).wait_for()
        one_line = (
            "el => { const r = document.createRange(); r.selectNodeContents(el);"
            " return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; }"
        )
        for i in range(4):
            for cell in ("td[data-label='Email']", "td[data-label='Added'] .relative"):
                lines = rows.nth(i).locator(cell).evaluate(one_line)
                assert lines == 1, (i, cell, lines)
    finally:
        close_page(page)
