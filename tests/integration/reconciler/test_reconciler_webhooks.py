"""Webhook deliveries (migration 0029, reconciler/webhooks.py, docs/api.md
"Webhooks"): a status change writes one delivery per webhook that asked for
it, in the same statement; the workers send it to a real receiver on this
machine, signed as Standard Webhooks verify, and try again when it fails,
for a day; a URL at a non-public address is never reached."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from common.clock import FakeClock
from common.ids import new_id
from reconciler import webhooks
from reconciler.webhooks import client_session, deliver_due
from sql import query as sql_query

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def verified(secret: str, headers: Any, body: bytes) -> bool:
    """Standard Webhooks' verification, written from its specification (not
    from our signing code): HMAC-SHA256 of `id.timestamp.body` with the
    secret's base64-decoded key, one of the space-separated `v1,` values."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        sig.startswith("v1,") and hmac.compare_digest(sig[3:], expected)
        for sig in headers["webhook-signature"].split()
    )


class Receiver:
    """An HTTP server on loopback answering `status` (a list: one per call,
    the last repeated), keeping what it was sent."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status == 302:
            return web.Response(status=302, headers={"Location": "http://127.0.0.1:9/"})
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver([204])
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}/hook"
    yield r
    await runner.cleanup()


async def webhook(db: Any, org: str, url: str, statuses: tuple[str, ...] = ()) -> str:
    wid = new_id()
    await db.execute(
        "insert into webhooks (id, organization_id, url, statuses, secret, created_at,"
        " created_by) values (%s, %s, %s, %s, %s, now(), 'M')",
        (wid, org, url, list(statuses), SECRET),
    )
    return wid


async def deliveries(db: Any, wid: str) -> list[dict[str, Any]]:
    cur = await db.execute(
        "select * from webhook_deliveries where webhook_id = %s order by id", (wid,)
    )
    return await cur.fetchall()


async def send_due(pool: Any, clock: FakeClock, *, allow_insecure: bool = True) -> int:
    async with client_session(allow_insecure) as session:
        return await deliver_due(pool, session, clock.now, allow_insecure)


async def test_a_status_change_reaches_the_webhook_signed(rows, pool, db, receiver) -> None:
    # Microseconds ending in 0: JSON drops the trailing zero, and the
    # payload's timestamp must be written as `createdAt` is (a CI run found it).
    clock = FakeClock(datetime.now(UTC).replace(microsecond=702610))
    wid = await webhook(db, rows.org, receiver.url)
    failed_only = await webhook(db, rows.org, receiver.url, ("failed",))
    elsewhere = await webhook(db, new_id(), receiver.url)  # another organization's
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())  # stopped -> starting
    await db.execute(  # an edit's history entry leaves the status: told of nothing
        "insert into notebook_events (notebook_id, organization_id, from_status, to_status,"
        " reason, actor) values (%s, %s, 'starting', 'starting', 'Renamed', %s)",
        (nid, rows.org, rows.member),
    )
    assert len(await deliveries(db, wid)) == 1
    assert await deliveries(db, failed_only) == [] and await deliveries(db, elsewhere) == []

    assert await send_due(pool, clock) == 1
    [(headers, body)] = receiver.received
    assert verified(SECRET, headers, body)
    assert headers["Content-Type"] == "application/json"
    [sent] = await deliveries(db, wid)
    assert headers["webhook-id"] == f"delivery_{sent['id']}"
    assert int(headers["webhook-timestamp"]) == int(clock.now().timestamp())
    payload = json.loads(body)
    assert payload["type"] == "notebook.status_changed"
    data = payload["data"]
    assert payload["timestamp"] == data["createdAt"]  # when it changed (Standard Webhooks)
    assert (data["notebookId"], data["organizationId"], data["ownerId"]) == (
        nid,
        rows.org,
        rows.member,
    )
    assert (data["fromStatus"], data["toStatus"], data["actor"]) == (
        "stopped",
        "starting",
        rows.member,
    )
    assert (sent["status"], sent["attempts"], sent["response_status"]) == ("delivered", 1, 204)
    assert await send_due(pool, clock) == 0  # sent once


async def test_a_delivery_not_taken_is_tried_again_then_given_up(rows, pool, db, receiver):
    """A 500, then the receiver gone: waits of 10 s, then 30 s, …; a day
    after the status change the delivery is given up."""
    clock = FakeClock(datetime.now(UTC))
    receiver.statuses = [500, 302, 204]
    wid = await webhook(db, rows.org, receiver.url)
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())

    assert await send_due(pool, clock) == 1
    [d] = await deliveries(db, wid)
    assert (d["status"], d["attempts"], d["response_status"]) == ("pending", 1, 500)
    assert d["last_error"] == "The receiver answered 500 Internal Server Error"
    assert d["next_attempt_at"] == clock.now() + timedelta(seconds=10)
    assert await send_due(pool, clock) == 0  # not due yet
    clock.advance(10)
    assert await send_due(pool, clock) == 1  # a redirect is not followed: not delivered
    [d] = await deliveries(db, wid)
    assert (d["attempts"], d["response_status"]) == (2, 302)
    assert d["next_attempt_at"] == clock.now() + timedelta(seconds=30)
    clock.advance(30)
    assert await send_due(pool, clock) == 1
    [d] = await deliveries(db, wid)
    assert (d["status"], d["attempts"], d["last_error"]) == ("delivered", 3, None)
    assert len(receiver.received) == 3
    assert len({h["webhook-id"] for h, _ in receiver.received}) == 1  # one message, retried

    # A receiver that never answers 2xx: given up after a day.
    receiver.statuses = [503]
    other = await rows.notebook()
    await rows.start(other, now=clock.now())
    began = clock.now()
    attempts = 0
    while True:
        assert await send_due(pool, clock) == 1
        attempts += 1
        [_, d] = await deliveries(db, wid)
        if d["status"] == "failed":
            break
        clock.advance((d["next_attempt_at"] - clock.now()).total_seconds())
    assert clock.now() - began <= timedelta(days=1)
    assert d["attempts"] == attempts > 20  # an hour apart at most, for a day
    assert webhooks.retry_at(attempts, began, clock.now()) is None


async def test_a_claimed_delivery_is_another_workers_once_its_lease_ends(rows, pool, db, receiver):
    clock = FakeClock(datetime.now(UTC))
    wid = await webhook(db, rows.org, receiver.url)
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    await db.execute(  # a worker claimed it and was killed before it recorded anything
        "update webhook_deliveries set locked_until = %s, attempts = 1 where webhook_id = %s",
        (clock.now() + timedelta(seconds=webhooks.LEASE_SECONDS), wid),
    )
    assert await send_due(pool, clock) == 0
    clock.advance(webhooks.LEASE_SECONDS)
    assert await send_due(pool, clock) == 1
    [d] = await deliveries(db, wid)
    assert (d["status"], d["attempts"]) == ("delivered", 2)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("https://127.0.0.1:9/hook", "The URL names an address that is not public."),
        ("https://[::1]:9/hook", "The URL names an address that is not public."),
        (
            "https://169.254.169.254/latest/meta-data",
            "The URL names an address that is not public.",
        ),
        ("https://localhost:9/hook", "localhost resolves to no public address"),
    ],
)
async def test_a_non_public_address_is_never_reached(rows, pool, db, url, error) -> None:
    """Unless the operator allows insecure webhooks: an address in the URL
    (never resolved: checked before), or a name as it resolves now (a
    webhook made when it resolved elsewhere)."""
    clock = FakeClock(datetime.now(UTC))
    wid = await webhook(db, rows.org, url)
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    assert await send_due(pool, clock, allow_insecure=False) == 1
    [d] = await deliveries(db, wid)
    assert d["status"] == "pending" and d["response_status"] is None
    assert error in d["last_error"], d


async def test_one_delivery_that_cannot_be_sent_holds_up_no_other(rows, pool, db, receiver):
    """A URL the client raises on (a host name it cannot encode, written
    before the API refused such names) is that delivery's miss; the
    others of its batch are delivered and recorded."""
    clock = FakeClock(datetime.now(UTC))
    bad = await webhook(db, rows.org, "https://a..example.com/hook")
    good = await webhook(db, rows.org, receiver.url)
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    assert await send_due(pool, clock) == 2
    [missed] = await deliveries(db, bad)
    assert (missed["status"], missed["attempts"]) == ("pending", 1)
    assert missed["last_error"].startswith("The URL has a host name that is not valid")
    [sent] = await deliveries(db, good)
    assert sent["status"] == "delivered"


async def test_a_lease_run_out_records_nothing_over_the_next_claim(rows, pool, db, receiver):
    """A worker that sent past its lease (a slow pool, a clock behind)
    leaves the delivery as the worker that claimed it since records it."""
    clock = FakeClock(datetime.now(UTC))
    wid = await webhook(db, rows.org, receiver.url)
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    lease = clock.now() + timedelta(seconds=webhooks.LEASE_SECONDS)
    await db.execute(  # claimed since by another worker, whose lease ends later
        "update webhook_deliveries set locked_until = %s, attempts = 1 where webhook_id = %s",
        (lease + timedelta(seconds=30), wid),
    )
    [d] = await deliveries(db, wid)
    await db.execute(
        sql_query("webhook_delivery_missed"),
        {
            "id": d["id"],
            "lease_until": lease,
            "next_attempt_at": None,
            "response_status": 500,
            "error": "late",
        },
    )
    [after] = await deliveries(db, wid)
    assert (after["status"], after["last_error"]) == ("pending", None)


async def test_a_notebook_deleted_for_good_is_told_of_with_its_owner_then(
    rows, pool, db, receiver
) -> None:
    clock = FakeClock(datetime.now(UTC))
    nid = await rows.notebook()
    wid = await webhook(db, rows.org, receiver.url, ("stopped",))
    await db.execute(
        "update notebooks set desired_state = 'deleted', status = 'stopping' where id = %s",
        (nid,),
    )
    await db.execute(
        sql_query("reconciler_delete_notebook"),
        {"id": nid, "reason": "Deleted for good", "now": clock.now(), "trash_days": 0},
    )
    assert await send_due(pool, clock) == 1
    [(_, body)] = receiver.received
    data = json.loads(body)["data"]
    assert (data["notebookId"], data["ownerId"], data["toStatus"]) == (nid, rows.member, "stopped")
    assert [d["status"] for d in await deliveries(db, wid)] == ["delivered"]


async def test_the_workers_loop_sends_until_it_is_stopped(rows, pool, db, receiver) -> None:
    """As a worker runs it (reconciler/worker.py): a status change is sent
    within its interval; a stop ends the loop."""
    stop = asyncio.Event()
    clock = FakeClock(datetime.now(UTC))
    loop = asyncio.create_task(
        webhooks.webhook_loop(pool, stop, clock, allow_insecure=True, interval=0.05)
    )
    try:
        wid = await webhook(db, rows.org, receiver.url)
        nid = await rows.notebook()
        await rows.start(nid, now=clock.now())
        deadline = asyncio.get_running_loop().time() + 10
        while [d["status"] for d in await deliveries(db, wid)] != ["delivered"]:
            assert not loop.done(), loop
            assert asyncio.get_running_loop().time() < deadline, "not delivered in time"
            await asyncio.sleep(0.02)
        assert len(receiver.received) == 1
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)


async def test_a_test_delivery_says_which_webhook(rows, pool, db, receiver) -> None:
    """`POST /webhooks/{id}/test`'s delivery: no event; its type and data
    name the webhook, signed like any other."""
    clock = FakeClock(datetime.now(UTC))
    wid = await webhook(db, rows.org, receiver.url)
    await db.execute(
        "insert into webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at)"
        " values (%s, null, %s, %s)",
        (wid, clock.now(), clock.now()),
    )
    assert await send_due(pool, clock) == 1
    [(headers, body)] = receiver.received
    assert verified(SECRET, headers, body)
    payload = json.loads(body)
    assert payload["type"] == "webhook.test"
    assert payload["data"] == {
        "webhookId": wid,
        "organizationId": rows.org,
        "requestedAt": payload["data"]["requestedAt"],
    }
    assert [d["status"] for d in await deliveries(db, wid)] == ["delivered"]


async def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(rows, pool, db, receiver):
    """Two signatures while the old secret still signs: a receiver holding
    either verifies; after its day, the new one's alone."""
    clock = FakeClock(datetime.now(UTC))
    old = SECRET
    new = "whsec_" + base64.b64encode(b"n" * 24).decode()
    wid = await webhook(db, rows.org, receiver.url)
    await db.execute(
        "update webhooks set previous_secret = secret, previous_until = %s, secret = %s"
        " where id = %s",
        (clock.now() + timedelta(days=1), new, wid),
    )
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    assert await send_due(pool, clock) == 1
    headers, body = receiver.received[0]
    assert len(headers["webhook-signature"].split()) == 2
    assert verified(old, headers, body) and verified(new, headers, body)

    clock.advance(86_400)
    await rows.stop(nid, now=clock.now())
    assert await send_due(pool, clock) == 1
    headers, body = receiver.received[1]
    assert len(headers["webhook-signature"].split()) == 1
    assert verified(new, headers, body) and not verified(old, headers, body)


async def give_up(pool: Any, db: Any, clock: FakeClock, wid: str) -> dict[str, Any]:
    """Send the webhook's newest delivery until it is given up (a day)."""
    while True:
        assert await send_due(pool, clock) == 1
        d = (await deliveries(db, wid))[-1]
        if d["status"] == "failed":
            return d
        clock.advance((d["next_attempt_at"] - clock.now()).total_seconds())


async def hook_row(db: Any, wid: str) -> dict[str, Any]:
    cur = await db.execute("select * from webhooks where id = %s", (wid,))
    row = await cur.fetchone()
    assert row is not None
    return row


def disabled_count() -> float:
    return REGISTRY.get_sample_value("notebooks_webhooks_disabled_total") or 0.0


async def test_a_webhook_failing_for_days_is_disabled_and_told_of_nothing(
    rows, pool, db, receiver
) -> None:
    clock = FakeClock(datetime.now(UTC))
    receiver.statuses = [503]
    # Failing for three days: a delivery made then was given up, none since
    # succeeded. Another whose receiver answered since, and a quiet one (its
    # last success five days ago, nothing to tell of since), each miss today
    # and stay enabled.
    failing = await webhook(db, rows.org, receiver.url)
    answered = await webhook(db, rows.org, receiver.url)
    quiet = await webhook(db, rows.org, receiver.url)
    days = lambda n: clock.now() - timedelta(days=n)  # noqa: E731
    await db.execute("update webhooks set created_at = %s", (days(10),))
    for hook, status, created, delivered in (
        (failing, "failed", days(3), None),
        (answered, "failed", days(3), None),
        (answered, "delivered", days(2), days(2)),
        (quiet, "delivered", days(5), days(5)),
    ):
        await db.execute(
            "insert into webhook_deliveries (webhook_id, status, next_attempt_at, created_at,"
            " delivered_at) values (%s, %s, %s, %s, %s)",
            (hook, status, created, created, delivered),
        )
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    before = disabled_count()
    while True:  # the three deliveries retried together until given up, a day on
        assert await send_due(pool, clock) == 3
        pending = [
            d
            for h in (failing, answered, quiet)
            for d in await deliveries(db, h)
            if d["status"] == "pending"
        ]
        if not pending:
            break
        clock.advance((min(d["next_attempt_at"] for d in pending) - clock.now()).total_seconds())
    gone = await hook_row(db, failing)
    assert gone["disabled_at"] == clock.now()
    assert gone["disabled_reason"] == (
        "Disabled by the platform: no delivery has succeeded for 3 days (the last: The"
        " receiver answered 503 Service Unavailable). Enable it again once its receiver answers."
    )
    assert (await hook_row(db, answered))["disabled_at"] is None
    assert (await hook_row(db, quiet))["disabled_at"] is None
    assert disabled_count() == before + 1

    # Told of nothing while disabled: no delivery is made for it.
    other = await rows.notebook()
    await rows.start(other, now=clock.now())
    assert len(await deliveries(db, failing)) == 2
    # A delivery of it waiting (one claimed as it was disabled, recorded
    # since) is not sent while it is disabled, nor given up.
    await db.execute(
        "insert into webhook_deliveries (webhook_id, next_attempt_at, created_at)"
        " values (%s, %s, %s)",
        (failing, clock.now(), clock.now()),
    )
    receiver.statuses = [204]
    assert await send_due(pool, clock) == 2  # the other two webhooks' new deliveries
    assert await send_due(pool, clock) == 0
    held = (await deliveries(db, failing))[-1]
    assert (held["status"], held["attempts"]) == ("pending", 0)


async def test_one_enabled_again_has_its_days_counted_anew(rows, pool, db, receiver) -> None:
    clock = FakeClock(datetime.now(UTC))
    receiver.statuses = [503]
    wid = await webhook(db, rows.org, receiver.url)
    await db.execute(
        "update webhooks set created_at = %s, enabled_at = %s where id = %s",
        (clock.now() - timedelta(days=30), clock.now() - timedelta(hours=1), wid),
    )
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    await give_up(pool, db, clock, wid)  # a day of misses, not three since enabled
    assert (await hook_row(db, wid))["disabled_at"] is None
