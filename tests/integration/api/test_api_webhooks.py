"""Webhooks through the API (docs/api.md "Webhooks"): an organization's
admins add, list and delete them and read their deliveries; the secret is
answered once; a URL the workers must not reach is refused. (That the
workers send them: tests/integration/reconciler/test_reconciler_webhooks.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, World, body_of, held, refused, until_waiting_on_locks

from api.app import create_app
from api.webhooks import MAX_WEBHOOKS
from common.clock import FakeClock
from common.settings import Settings

V1 = "/api/v1"
HOOKS = V1 + "/webhooks"
URL = "https://hooks.example.com/notebooks"


async def test_an_org_admin_adds_a_webhook_and_reads_its_secret_once(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.post(
        HOOKS,
        json={
            "url": URL,
            "description": "#data-alerts",
            "statuses": ["stopped", "failed", "failed"],
        },
        headers=world.admin.auth,
    )
    assert resp.status == 201, await resp.text()
    made = await body_of(resp)
    assert made["secret"].startswith("whsec_")
    assert made == {
        "id": made["id"],
        "url": URL,
        "description": "#data-alerts",
        "statuses": ["failed", "stopped"],
        "createdAt": factory.clock.now().isoformat(),
        "createdBy": world.admin.id,
        "previousSecretUntil": None,
        "enabled": True,
        "disabledAt": None,
        "disabledReason": None,
        "secret": made["secret"],
    }
    listed = await body_of(await client.get(HOOKS, headers=world.admin.auth))
    assert listed["total"] == 1
    assert listed["items"] == [{k: v for k, v in made.items() if k != "secret"}]
    assert made["secret"] not in await (await client.get(HOOKS, headers=world.admin.auth)).text()
    # Another organization's admin sees none of it.
    theirs = await body_of(await client.get(HOOKS, headers=world.stranger.auth))
    assert theirs == {"total": 0, "items": []}
    await refused(
        await client.get(f"{HOOKS}/{made['id']}/deliveries", headers=world.stranger.auth),
        404,
        "not_found",
        "id",
    )
    await refused(
        await client.delete(f"{HOOKS}/{made['id']}", headers=world.stranger.auth),
        404,
        "not_found",
        "id",
    )


async def test_only_org_admins_manage_webhooks(client: TestClient, world: World) -> None:
    made = await body_of(await client.post(HOOKS, json={"url": URL}, headers=world.admin.auth))
    for who in (world.owner, world.team_admin, world.viewer):
        await refused(
            await client.post(HOOKS, json={"url": URL}, headers=who.auth), 403, "forbidden"
        )
        await refused(await client.get(HOOKS, headers=who.auth), 403, "forbidden")
        await refused(
            await client.get(f"{HOOKS}/{made['id']}/deliveries", headers=who.auth),
            403,
            "forbidden",
        )
        await refused(
            await client.delete(f"{HOOKS}/{made['id']}", headers=who.auth), 403, "forbidden"
        )
    assert (await client.get(HOOKS)).status == 401
    # An org admin's read-only token reads them, and adds none.
    resp = await client.post(
        f"{V1}/members/{world.admin.id}/tokens",
        json={"name": "monitor", "readOnly": True},
        headers=world.admin.auth,
    )
    reader = {"Authorization": f"Bearer {(await body_of(resp))['token']}"}
    assert (await client.get(HOOKS, headers=reader)).status == 200
    await refused(
        await client.post(HOOKS, json={"url": URL}, headers=reader), 403, "read_only_token"
    )


async def test_a_url_the_workers_must_not_reach_is_refused(
    client: TestClient, world: World
) -> None:
    for url, why in (
        ("http://hooks.example.com/", "must be an https URL"),
        ("https://127.0.0.1:8080/", "names an address that is not public"),
        ("https://169.254.169.254/latest/meta-data/", "names an address that is not public"),
        ("https://user:secret@hooks.example.com/", "may not hold credentials"),
        ("not a url", "must be an https URL"),
    ):
        problem = await refused(
            await client.post(HOOKS, json={"url": url}, headers=world.admin.auth),
            400,
            "invalid_value",
            "url",
        )
        assert problem["detail"].startswith(f"The webhook's URL {why}"), problem
    for body, code, field in (
        ({}, "missing_field", "url"),
        ({"url": URL, "statuses": ["crashed"]}, "invalid_value", "statuses[0]"),
        ({"url": URL, "statuses": "failed"}, "wrong_type", "statuses"),
        ({"url": URL, "secret": "mine"}, "unknown_field", "secret"),
        ({"url": ""}, "invalid_length", "url"),
    ):
        await refused(
            await client.post(HOOKS, json=body, headers=world.admin.auth), 400, code, field
        )
    assert (await body_of(await client.get(HOOKS, headers=world.admin.auth)))["total"] == 0


async def test_an_operator_may_allow_insecure_webhooks(
    settings: Settings, clock: FakeClock, world: World
) -> None:
    app = create_app(dataclasses.replace(settings, webhooks_allow_insecure=True), clock=clock)
    async with TestClient(TestServer(app)) as insecure:
        resp = await insecure.post(
            HOOKS, json={"url": "http://127.0.0.1:9000/hook"}, headers=world.admin.auth
        )
        assert resp.status == 201, await resp.text()


async def test_an_organization_has_at_most_ten_webhooks(client: TestClient, world: World) -> None:
    for i in range(MAX_WEBHOOKS):
        resp = await client.post(HOOKS, json={"url": f"{URL}/{i}"}, headers=world.admin.auth)
        assert resp.status == 201
    await refused(
        await client.post(HOOKS, json={"url": URL}, headers=world.admin.auth),
        409,
        "webhook_limit_reached",
    )
    other = await client.post(HOOKS, json={"url": URL}, headers=world.stranger.auth)
    assert other.status == 201  # another organization's count


async def test_two_creates_at_the_limit_count_one_after_the_other(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """Nine made, two more at once: one is made, the other refused (each
    counts after the other's insert, not with a snapshot from before it)."""
    for i in range(MAX_WEBHOOKS - 1):
        assert (
            await client.post(HOOKS, json={"url": f"{URL}/{i}"}, headers=world.admin.auth)
        ).status == 201
    lock = "select 1 from organizations where id = %s for no key update"
    async with held(settings, lock, world.org):
        racing = asyncio.gather(
            client.post(HOOKS, json={"url": f"{URL}/a"}, headers=world.admin.auth),
            client.post(HOOKS, json={"url": f"{URL}/b"}, headers=world.admin.auth),
        )
        await until_waiting_on_locks(factory, 2, racing, "the creates did not wait")
    responses = await racing
    assert sorted(r.status for r in responses) == [201, 409]
    assert factory.value("select count(*) from webhooks where organization_id = %s", world.org) == (
        MAX_WEBHOOKS
    )


async def test_deliveries_say_how_each_went_and_go_with_their_webhook(
    client: TestClient, world: World, factory: Factory
) -> None:
    made = await body_of(
        await client.post(
            HOOKS, json={"url": URL, "statuses": ["starting"]}, headers=world.admin.auth
        )
    )
    nb = f"{V1}/workloads/notebooks/{world.notebook}"
    assert (await client.post(f"{nb}/start", headers=world.owner.auth)).status == 202
    factory.clock.advance(5)
    factory.reconciler_sets(world.notebook, "running", "ready")  # not asked for

    listed = await body_of(
        await client.get(f"{HOOKS}/{made['id']}/deliveries", headers=world.admin.auth)
    )
    [item] = listed["items"]
    assert item == {
        "id": item["id"],
        "type": "notebook.status_changed",
        "eventId": item["eventId"],
        "notebookId": world.notebook,
        "notebookName": f"nb {world.notebook}",
        "toStatus": "starting",
        "status": "pending",
        "attempts": 0,
        "lastAttemptAt": None,
        "nextAttemptAt": item["createdAt"],
        "held": False,
        "responseStatus": None,
        "lastError": None,
        "createdAt": item["createdAt"],
        "deliveredAt": None,
    }
    assert (await client.delete(f"{HOOKS}/{made['id']}", headers=world.admin.auth)).status == 204
    assert factory.value("select count(*) from webhook_deliveries") == 0
    await refused(
        await client.get(f"{HOOKS}/{made['id']}/deliveries", headers=world.admin.auth),
        404,
        "not_found",
        "id",
    )
    await refused(
        await client.delete(f"{HOOKS}/{made['id']}", headers=world.admin.auth),
        404,
        "not_found",
        "id",
    )


async def test_an_org_admin_sends_a_webhook_a_test(
    client: TestClient, world: World, factory: Factory
) -> None:
    made = await body_of(await client.post(HOOKS, json={"url": URL}, headers=world.admin.auth))
    test = f"{HOOKS}/{made['id']}/test"
    resp = await client.post(test, headers=world.admin.auth)
    assert resp.status == 202, await resp.text()
    sent = await body_of(resp)
    listed = await body_of(
        await client.get(f"{HOOKS}/{made['id']}/deliveries", headers=world.admin.auth)
    )
    [item] = listed["items"]
    assert (item["id"], item["type"], item["status"]) == (sent["id"], "webhook.test", "pending")
    assert (item["eventId"], item["notebookId"], item["toStatus"]) == (None, None, None)
    # One at a time: asked again while it waits (its receiver down, tried
    # again in an hour), the same one, made due now; once sent, a new one.
    factory.conn.execute(
        "update webhook_deliveries set attempts = 5, next_attempt_at = now() + interval '1 hour'"
    )
    again = await body_of(await client.post(test, headers=world.admin.auth))
    assert again == sent
    assert factory.value(
        "select next_attempt_at <= %s from webhook_deliveries", factory.clock.now()
    )
    factory.conn.execute("update webhook_deliveries set status = 'delivered'")
    third = await body_of(await client.post(test, headers=world.admin.auth))
    assert third != sent
    assert factory.value("select count(*) from webhook_deliveries") == 2
    await refused(await client.post(test, headers=world.owner.auth), 403, "forbidden")
    await refused(await client.post(test, headers=world.stranger.auth), 404, "not_found", "id")
    await refused(
        await client.post(test, json={"now": True}, headers=world.admin.auth),
        400,
        "unknown_field",
        "now",
    )


async def test_a_new_secret_is_answered_once_and_the_old_one_signs_a_day_more(
    client: TestClient, world: World, factory: Factory
) -> None:
    made = await body_of(await client.post(HOOKS, json={"url": URL}, headers=world.admin.auth))
    rotate = f"{HOOKS}/{made['id']}/secret"
    resp = await client.post(rotate, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    rotated = await body_of(resp)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    day_later = (factory.clock.now() + timedelta(days=1)).isoformat()
    assert rotated["previousSecretUntil"] == day_later
    [listed] = (await body_of(await client.get(HOOKS, headers=world.admin.auth)))["items"]
    assert listed["previousSecretUntil"] == day_later and "secret" not in listed
    kept = factory.value("select previous_secret from webhooks where id = %s", made["id"])
    assert kept == made["secret"]
    await refused(await client.post(rotate, headers=world.owner.auth), 403, "forbidden")
    await refused(await client.post(rotate, headers=world.stranger.auth), 404, "not_found", "id")


async def test_two_tests_asked_at_once_make_one(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    made = await body_of(await client.post(HOOKS, json={"url": URL}, headers=world.admin.auth))
    test = f"{HOOKS}/{made['id']}/test"
    async with held(settings, "select 1 from webhooks where id = %s for update", made["id"]):
        racing = asyncio.gather(
            client.post(test, headers=world.admin.auth),
            client.post(test, headers=world.admin.auth),
        )
        await until_waiting_on_locks(factory, 2, racing, "the tests did not wait")
    first, second = [await body_of(r) for r in await racing]
    assert first == second
    assert factory.value("select count(*) from webhook_deliveries") == 1


async def test_an_edit_keeps_the_secret_and_the_deliveries(
    client: TestClient, world: World, factory: Factory
) -> None:
    made = await body_of(
        await client.post(
            HOOKS, json={"url": URL, "statuses": ["failed"]}, headers=world.admin.auth
        )
    )
    hook = f"{HOOKS}/{made['id']}"
    assert (await client.post(f"{hook}/test", headers=world.admin.auth)).status == 202
    resp = await client.patch(
        hook,
        json={"url": f"{URL}/v2", "statuses": ["stopped", "failed"], "description": "moved"},
        headers=world.admin.auth,
    )
    assert resp.status == 200, await resp.text()
    edited = await body_of(resp)
    assert (edited["url"], edited["statuses"], edited["description"]) == (
        f"{URL}/v2",
        ["failed", "stopped"],
        "moved",
    )
    assert "secret" not in edited
    assert factory.value("select secret from webhooks where id = %s", made["id"]) == made["secret"]
    assert factory.value("select count(*) from webhook_deliveries") == 1  # kept
    # What is not sent stays; {} changes nothing.
    same = await body_of(await client.patch(hook, json={}, headers=world.admin.auth))
    assert same == edited
    for body, status, code, field in (
        ({"url": "http://hooks.example.com/"}, 400, "invalid_value", "url"),
        ({"statuses": ["gone"]}, 400, "invalid_value", "statuses[0]"),
        ({"secret": "x"}, 400, "unknown_field", "secret"),
    ):
        await refused(
            await client.patch(hook, json=body, headers=world.admin.auth), status, code, field
        )
    await refused(
        await client.patch(hook, json={"description": "x"}, headers=world.owner.auth),
        403,
        "forbidden",
    )
    await refused(
        await client.patch(hook, json={"description": "x"}, headers=world.stranger.auth),
        404,
        "not_found",
        "id",
    )
    listed = await body_of(await client.get(HOOKS, headers=world.admin.auth))
    assert listed["items"] == [edited]


async def test_an_admin_disables_a_webhook_and_enables_it_again(
    client: TestClient, world: World, factory: Factory
) -> None:
    made = await body_of(await client.post(HOOKS, json={"url": URL}, headers=world.admin.auth))
    url = f"{HOOKS}/{made['id']}"
    resp = await client.patch(url, json={"enabled": False}, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    off = await body_of(resp)
    name = factory.value("select name from members where id = %s", world.admin.id)
    assert (off["enabled"], off["disabledAt"], off["disabledReason"]) == (
        False,
        factory.clock.now().isoformat(),
        f"Disabled by {name}.",
    )
    # Told of nothing: a status change makes no delivery, and no test is sent.
    factory.reconciler_sets(world.notebook, "starting", "Start requested")
    assert factory.value("select count(*) from webhook_deliveries") == 0
    problem = await refused(
        await client.post(f"{url}/test", headers=world.admin.auth), 409, "webhook_disabled"
    )
    assert "Enable it first" in problem["detail"]
    # Disabled again: as it was (its reason and time kept).
    factory.clock.advance(60)
    again = await body_of(
        await client.patch(url, json={"enabled": False}, headers=world.admin.auth)
    )
    assert again["disabledAt"] == off["disabledAt"]
    # Enabled again: told of changes from now on, its days of failures counted anew.
    on = await body_of(await client.patch(url, json={"enabled": True}, headers=world.admin.auth))
    assert (on["enabled"], on["disabledAt"], on["disabledReason"]) == (True, None, None)
    assert factory.value("select enabled_at from webhooks") == factory.clock.now()
    factory.reconciler_sets(world.notebook, "running", "Ready")
    assert factory.value("select count(*) from webhook_deliveries") == 1
    await refused(
        await client.patch(url, json={"enabled": "no"}, headers=world.admin.auth),
        400,
        "wrong_type",
        "enabled",
    )


async def test_disabling_holds_what_waits_and_enabling_sends_or_gives_it_up(
    client: TestClient, world: World, factory: Factory
) -> None:
    made = await body_of(await client.post(HOOKS, json={"url": URL}, headers=world.admin.auth))
    url = f"{HOOKS}/{made['id']}"
    # Enabling one never disabled changes nothing.
    await client.patch(url, json={"enabled": True}, headers=world.admin.auth)
    assert factory.value("select enabled_at from webhooks") is None
    now = factory.clock.now()
    for age in (timedelta(days=2), timedelta(hours=1)):
        factory.conn.execute(
            "insert into webhook_deliveries (webhook_id, next_attempt_at, created_at)"
            " values (%s, %s, %s)",
            (made["id"], now - age + timedelta(seconds=10), now - age),
        )
    await client.patch(url, json={"enabled": False}, headers=world.admin.auth)
    waiting = factory.conn.execute(
        "select status, next_attempt_at::text from webhook_deliveries order by id"
    ).fetchall()
    assert waiting == [("pending", "infinity"), ("pending", "infinity")]
    # An admin's disabling of one the platform disabled keeps the platform's reason.
    factory.conn.execute("update webhooks set disabled_reason = 'Disabled by the platform: …'")
    resp = await client.patch(url, json={"enabled": False}, headers=world.admin.auth)
    assert (await body_of(resp))["disabledReason"] == "Disabled by the platform: …"
    listed = await body_of(await client.get(f"{url}/deliveries", headers=world.admin.auth))
    assert {(d["held"], d["nextAttemptAt"]) for d in listed["items"]} == {(True, None)}

    factory.clock.advance(60)
    await client.patch(url, json={"enabled": True}, headers=world.admin.auth)
    released = factory.conn.execute(
        "select status, last_error, next_attempt_at from webhook_deliveries order by id"
    ).fetchall()
    assert released == [
        ("failed", "Given up while the webhook was disabled", factory.clock.now()),
        ("pending", None, factory.clock.now()),
    ]
