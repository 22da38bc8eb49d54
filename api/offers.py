"""Offering a notebook (docs/api.md "Offering a notebook"): its owner offers
it to a colleague, who accepts it, and with it its running slot, or
declines it. An org admin hands a notebook on without asking anyone
(notebooks.hand_on); an owner may not, since its cost would move to a
colleague who never agreed: the offer is that agreement.

Every write locks the notebook row first, then reads the offer: a withdrawal
and an accept, or a hand-over and an accept, serialize on the row, and the
second sees what the first did."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from api.config_teams import check_config_usable
from api.context import Ctx
from api.errors import BadRequest, Forbidden, NotFound
from api.members import EMAIL_SCHEMA
from api.notebooks import (
    ADMINISTER,
    check_running_limits,
    describe_notebook,
    handed_on,
    holds_slot,
    locked,
    member_label,
    record_change,
    sees,
)
from api.responses import no_content, page_params, plain_list, raw_json
from api.validation import ID_SCHEMA, obj, path_id, read_body

# Long enough for a colleague back from two weeks away; an offer nobody
# answers should not hand a notebook on months later.
OFFER_LIFETIME = timedelta(days=14)

# The recipient by id, or by email: a member who is not an org admin may
# not list the organization's members, but knows a colleague's address.
OFFER_SCHEMA = obj({"memberId": ID_SCHEMA, "email": EMAIL_SCHEMA})


async def offer_body(ctx: Ctx, notebook_id: str) -> str | None:
    """The pending offer, if the caller is its recipient or sees the notebook."""
    params = ctx.mine(id=notebook_id, see_all=ctx.me.organization_admin)
    row = await ctx.one("api_offer_body", params)
    return None if row is None else str(row["body"])


def not_offered_to_you() -> NotFound:
    # The same answer whether or not there is an offer: to who may not see
    # the notebook, nothing says whether it exists or is offered to someone.
    return NotFound("This notebook is not offered to you.", field="offer")


def offered_to_nobody() -> NotFound:
    return NotFound("This notebook is offered to nobody.", field="offer")


async def put_offer(ctx: Ctx) -> web.Response:
    """Offer the notebook (its owner only) to the colleague `memberId` or
    `email` names, replacing the pending offer if there is one; the same
    offer again changes nothing."""
    notebook_id = path_id(ctx.request, "id")
    row = await locked(ctx, notebook_id, ADMINISTER)
    body = await read_body(ctx.request, OFFER_SCHEMA)
    if row["access"] != "owner":
        raise Forbidden(
            "Only its owner offers a notebook; an org admin hands one on with PATCH memberId."
        )
    to = await recipient(ctx, body)
    to_id = to["id"]
    pending = await ctx.one("api_pending_offer", ctx.mine(id=notebook_id))
    if pending is None or pending["to_member_id"] != to_id:
        await ctx.run(
            "api_put_offer",
            ctx.mine(id=notebook_id, to_member_id=to_id, expires_at=ctx.now + OFFER_LIFETIME),
        )
        await record_change(
            ctx, notebook_id, row, f"Offered to {member_label(to['name'], to['email'])}"
        )
    answer = await offer_body(ctx, notebook_id)
    assert answer is not None  # its owner sees it
    return raw_json(answer)


async def recipient(ctx: Ctx, body: dict[str, Any]) -> dict[str, Any]:
    """The member `memberId` or `email` names (one of them): another active
    member of the organization, key-share-locked as a hand-over's new owner
    is, so a disabling of them waits for the offer or is seen by it."""
    if ("memberId" in body) == ("email" in body):
        raise BadRequest(
            "Name the colleague by memberId or by email, one of the two.",
            code="missing_field" if not body else "validation_failed",
            field="memberId",
        )
    field = "memberId" if "memberId" in body else "email"
    if field == "memberId":
        to = await ctx.one(
            "api_new_owner", ctx.mine(owner_id=body[field], old_owner_id=body[field])
        )
    else:
        to = await ctx.one("api_offer_recipient_by_email", ctx.mine(email=body[field]))
    if to is None:
        what = "id" if field == "memberId" else "email address"
        raise BadRequest(
            f"No active member of this organization has that {what}.",
            code="unknown_reference",
            field=field,
        )
    if to["id"] == ctx.me.member_id:
        raise BadRequest("You own this notebook already.", field=field)
    return to


async def get_offer(ctx: Ctx) -> web.Response:
    """The pending offer: to its recipient, and to whoever sees the notebook."""
    notebook_id = path_id(ctx.request, "id")
    answer = await offer_body(ctx, notebook_id)
    if answer is not None:
        return raw_json(answer)
    if not await sees(ctx, notebook_id):
        raise not_offered_to_you()
    raise offered_to_nobody()


async def _locked_offer(ctx: Ctx, notebook_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The notebook (locked) and its pending offer, read after the lock; 404
    unless the caller is its recipient or sees the notebook."""
    row = await ctx.one("api_lock_offered_notebook", ctx.mine(id=notebook_id))
    pending = None
    if row is not None:
        pending = await ctx.one("api_pending_offer", ctx.mine(id=notebook_id))
    if pending is not None and pending["to_member_id"] == ctx.me.member_id:
        assert row is not None
        return row, pending
    if row is None or not await sees(ctx, notebook_id):
        raise not_offered_to_you()
    if pending is None:
        raise offered_to_nobody()
    return row, pending


async def delete_offer(ctx: Ctx) -> web.Response:
    """Its owner (or an org admin) withdraws the offer; its recipient declines it."""
    notebook_id = path_id(ctx.request, "id")
    row, pending = await _locked_offer(ctx, notebook_id)
    to = member_label(pending["to_name"], pending["to_email"])
    if pending["to_member_id"] == ctx.me.member_id:
        reason = f"{to} declined the offer"
    elif row["member_id"] == ctx.me.member_id or ctx.me.organization_admin:
        reason = f"Offer to {to} withdrawn"
    else:
        raise Forbidden("Only its owner withdraws an offer, and its recipient declines it.")
    await ctx.run("api_delete_offers", {"ids": [notebook_id]})
    await record_change(ctx, notebook_id, row, reason)
    return no_content()


async def accept_offer(ctx: Ctx) -> web.Response:
    """The recipient takes the notebook: it is theirs, and so is its running
    slot, under their own running limit."""
    notebook_id = path_id(ctx.request, "id")
    row, pending = await _locked_offer(ctx, notebook_id)
    if pending["to_member_id"] != ctx.me.member_id:
        raise Forbidden("Only the member it is offered to accepts it.")
    me = await ctx.one(
        "api_new_owner", ctx.mine(owner_id=ctx.me.member_id, old_owner_id=row["member_id"])
    )
    assert me is not None  # the caller's token was live: the endpoint checked it
    if holds_slot(row):
        # Running on, now at their cost: on a config they may use only.
        await check_config_usable(ctx, row["workload_config_id"], ctx.me.member_id)
        await check_running_limits(ctx, ctx.me.member_id, organization=False, who="You")
    await ctx.run("api_delete_offers", {"ids": [notebook_id]})
    await record_change(ctx, notebook_id, row, f"{handed_on(me)}, who accepted the offer")
    await ctx.run(
        "api_hand_on_notebooks", ctx.mine(new_owner_id=ctx.me.member_id, ids=[notebook_id])
    )
    return await describe_notebook(ctx, notebook_id)


async def list_my_offers(ctx: Ctx) -> web.Response:
    scope = f"offers:{ctx.me.member_id}"
    row = await ctx.one("api_offers_to_me_page", ctx.mine(**page_params(ctx, scope)))
    assert row is not None
    return plain_list(ctx, scope, row)
