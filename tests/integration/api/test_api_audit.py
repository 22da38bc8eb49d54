"""The organization's administration, recorded (`GET /audit`, docs/api.md
"Audit"): each change to members, tokens, teams, workload configs, limits
and webhooks writes one entry in its own transaction (none for a refused
or failed one), with who, with which token, what and on what; names and
flags as sent, never a secret's value, a URL or an email; for org admins."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused

from common.tokens import hash_token
from sql import queries

V1 = "/api/v1"
SECRET = "hunter2-very-secret"


async def audit(client: TestClient, who: Any, query: str = "") -> dict[str, Any]:
    resp = await client.get(f"{V1}/audit{query}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    return dict(await body_of(resp))


async def call(client: TestClient, who: Any, method: str, path: str, body: Any = None) -> Any:
    resp = await client.request(method, V1 + path, json=body, headers=who.auth)
    assert resp.status < 300, await resp.text()
    return await body_of(resp) if resp.status != 204 else None


async def test_each_change_is_recorded_with_who_what_and_on_what(
    client: TestClient, world: World, factory: Factory
) -> None:
    admin = world.admin
    member = await call(
        client, admin, "POST", "/members", {"email": "bo@example.com", "name": "Bo"}
    )
    bo = member["id"]
    await call(client, admin, "PATCH", f"/members/{bo}", {"organizationAdmin": True})
    # A name as stored (NFC), not as sent.
    await call(client, admin, "PATCH", f"/members/{bo}", {"name": "Bo\u0301"})
    token = await call(client, admin, "POST", f"/members/{bo}/tokens", {"name": "ci"})
    await call(client, admin, "DELETE", f"/members/{bo}/tokens/{token['id']}")
    team = (await call(client, admin, "POST", "/teams", {"name": "analysts"}))["id"]
    await call(client, admin, "PATCH", f"/teams/{team}", {"name": "analytics"})
    await call(client, admin, "PUT", f"/teams/{team}/members/{bo}", {"role": "editor"})
    await call(client, admin, "DELETE", f"/teams/{team}/members/{bo}")
    config = await call(
        client,
        admin,
        "POST",
        "/workloads/configs",
        {"name": "prod", "secretEnv": {"DB_PASSWORD": SECRET}, "env": {"TZ": "UTC"}},
    )
    await call(
        client, admin, "PATCH", f"/workloads/configs/{config['id']}", {"secretEnv": {"KEY": "v"}}
    )
    await call(client, admin, "DELETE", f"/workloads/configs/{config['id']}")
    await call(client, admin, "PATCH", "/organization", {"maxRunning": 5})
    hook = await call(client, admin, "POST", "/webhooks", {"url": "https://hooks.example.com/x"})
    await call(client, admin, "PATCH", f"/webhooks/{hook['id']}", {"description": "pager"})
    await call(client, admin, "POST", f"/webhooks/{hook['id']}/secret")
    await call(client, admin, "DELETE", f"/webhooks/{hook['id']}")
    await call(client, admin, "POST", f"/members/{bo}/handover", {"memberId": world.owner.id})
    await call(client, admin, "DELETE", f"/members/{bo}")
    await call(client, admin, "POST", f"/members/{bo}/enable")
    await call(client, admin, "DELETE", f"/teams/{team}")
    # A member's own tokens are theirs (a console sign-in makes one, its
    # sign-out revokes it): not administration.
    own = await call(
        client, world.owner, "POST", f"/members/{world.owner.id}/tokens", {"name": "x"}
    )
    await call(client, world.owner, "DELETE", f"/members/{world.owner.id}/tokens/{own['id']}")

    got = await audit(client, admin)
    entries = list(reversed(got["items"]))  # oldest first, as made
    assert [(e["action"], e["targetType"], e["targetId"]) for e in entries] == [
        ("member.added", "member", bo),
        ("member.updated", "member", bo),
        ("member.updated", "member", bo),
        ("token.created", "token", token["id"]),
        ("token.revoked", "token", token["id"]),
        ("team.created", "team", team),
        ("team.renamed", "team", team),
        ("team.member_set", "member", bo),
        ("team.member_removed", "member", bo),
        ("workload_config.created", "workload_config", config["id"]),
        ("workload_config.updated", "workload_config", config["id"]),
        ("workload_config.deleted", "workload_config", config["id"]),
        ("organization.updated", "organization", world.org),
        ("webhook.created", "webhook", hook["id"]),
        ("webhook.updated", "webhook", hook["id"]),
        ("webhook.secret_renewed", "webhook", hook["id"]),
        ("webhook.deleted", "webhook", hook["id"]),
        ("member.notebooks_handed_on", "member", bo),
        ("member.disabled", "member", bo),
        ("member.enabled", "member", bo),
        ("team.deleted", "team", team),
    ]
    assert got["total"] == len(entries)
    assert {e["actor"] for e in entries} == {admin.id}
    assert {e["createdAt"] for e in entries} == {"2026-11-01T12:00:00+00:00"}
    details = {e["action"]: e["detail"] for e in entries}
    assert entries[2]["detail"] == {"fields": ["name"], "name": "B\u00f3"}
    assert details["member.notebooks_handed_on"] == {
        "fields": ["memberId"],
        "memberId": world.owner.id,
        "handedOn": 0,
    }
    assert details["webhook.updated"] == {"fields": ["description"]}
    assert details["team.deleted"] == {"name": "analytics"}  # the handler's: it is gone
    # Names, roles, flags, limits and ids as sent; the path's other ids.
    assert details["member.added"] == {"fields": ["email", "name"], "name": "Bo"}
    assert entries[1]["detail"] == {"fields": ["organizationAdmin"], "organizationAdmin": True}
    assert details["token.created"] == {"member": bo, "fields": ["name"], "name": "ci"}
    assert details["team.member_set"] == {"team": team, "fields": ["role"], "role": "editor"}
    assert details["team.member_removed"] == {"team": team}
    assert details["organization.updated"] == {"fields": ["maxRunning"], "maxRunning": 5}
    # Never a secret's value, a URL or an email: their names only.
    assert details["workload_config.created"] == {
        "fields": ["env", "name", "secretEnv"],
        "name": "prod",
        "secretEnvNames": ["DB_PASSWORD"],
        "secretEnvRemoved": [],
    }
    assert details["workload_config.updated"]["secretEnvNames"] == ["KEY"]
    assert details["workload_config.updated"]["secretEnvRemoved"] == []
    assert details["webhook.created"] == {"fields": ["url"]}
    stored = json.dumps(factory.value("select json_agg(detail) from audit_events"))
    for secret in (SECRET, "hooks.example.com", "bo@example.com", "UTC"):
        assert secret not in stored
    # A team or config named as now, or, deleted (both are here), by the
    # last name recorded for it; a membership's team too.
    names = {e["action"]: (e["targetName"], e["teamName"]) for e in entries}
    assert names["team.created"] == ("analytics", None)  # renamed since
    assert names["team.member_set"] == (None, "analytics")
    assert names["workload_config.deleted"] == ("prod", None)
    assert names["member.added"] == (None, None)
    # The members it names, by name (the actor, and those acted on).
    assert {m["id"] for m in got["included"]["members"]} == {admin.id, bo, world.owner.id}
    # The token each act was made with, and the request's id for its log line.
    row = factory.conn.execute(
        "select t.secret_hash, a.request_id from audit_events a join api_tokens t"
        " on t.id = a.token_id order by a.id limit 1"
    ).fetchone()
    assert row is not None and row[0] == hash_token(admin.token) and row[1]


async def test_a_refused_or_failed_change_records_nothing(
    client: TestClient, world: World, factory: Factory
) -> None:
    for method, path, body, who in (
        ("POST", "/teams", {"name": ""}, world.admin),  # invalid
        ("POST", "/teams", {"name": "x"}, world.owner),  # not an org admin
        ("PATCH", "/organization", {"maxRunning": -5}, world.admin),
        ("DELETE", f"/teams/{world.team}/members/NOSUCHMEMBER1", None, world.admin),
        ("DELETE", f"/members/{world.admin.id}", None, world.admin),  # oneself: 409
    ):
        resp = await client.request(method, V1 + path, json=body, headers=who.auth)
        assert resp.status >= 400, (path, await resp.text())
    assert factory.value("select count(*) from audit_events") == 0


async def test_org_admins_read_it_by_member_and_page_by_page(
    client: TestClient, world: World, factory: Factory
) -> None:
    for i in range(3):
        await call(client, world.admin, "POST", "/teams", {"name": f"t{i}"})
    # Another admin of the organization, and another organization's admin.
    factory.conn.execute(
        "update members set organization_admin = true where id = %s", (world.owner.id,)
    )
    await call(client, world.owner, "POST", "/teams", {"name": "owner's"})
    await call(client, world.stranger, "POST", "/teams", {"name": "elsewhere"})

    everything = await audit(client, world.owner)
    assert everything["total"] == 4  # not the other organization's
    mine = await audit(client, world.admin, f"?actor={world.owner.id}")
    assert [e["detail"]["name"] for e in mine["items"]] == ["owner's"]
    first = await audit(client, world.admin, "?limit=2")
    assert [e["detail"]["name"] for e in first["items"]] == ["owner's", "t2"]
    second = await audit(client, world.admin, f"?limit=2&marker={first['marker']}")
    assert [e["detail"]["name"] for e in second["items"]] == ["t1", "t0"]
    assert "marker" not in second
    # A live team is named as it is now; a disabled member is said so.
    await call(
        client,
        world.admin,
        "PATCH",
        f"/teams/{everything['items'][1]['targetId']}",
        {"name": "renamed"},
    )
    await call(client, world.admin, "DELETE", f"/members/{world.editor.id}")
    latest = await audit(client, world.owner)
    t2 = everything["items"][1]["targetId"]
    created = [e for e in latest["items"] if e["action"] == "team.created"]
    assert [e["targetName"] for e in created if e["targetId"] == t2] == ["renamed"]
    disabled = {m["id"]: m["disabled"] for m in latest["included"]["members"]}
    assert disabled[world.editor.id] is True
    # An admin's read-only token reads it; a marker is for its own filter.
    made = await call(
        client,
        world.admin,
        "POST",
        f"/members/{world.admin.id}/tokens",
        {"name": "auditor", "readOnly": True},
    )
    auditor = type(world.admin)(world.admin.id, world.admin.org, made["token"])
    assert (await audit(client, auditor))["total"] == 6  # its own token is not an entry
    await refused(
        await client.get(
            f"{V1}/audit?actor={world.owner.id}&marker={first['marker']}", headers=world.admin.auth
        ),
        400,
        "invalid_marker",
    )
    # Only org admins; a malformed member id is said so.
    await refused(await client.get(f"{V1}/audit", headers=world.viewer.auth), 403, "forbidden")
    await refused(
        await client.get(f"{V1}/audit?actor=nope", headers=world.admin.auth),
        400,
        "invalid_id",
        "actor",
    )
    await refused(
        await client.get(f"{V1}/audit?team=x", headers=world.admin.auth),
        400,
        "unknown_parameter",
    )


async def test_no_change_commits_without_its_entry(
    client: TestClient, world: World, factory: Factory, monkeypatch: Any
) -> None:
    monkeypatch.setitem(queries(), "api_record_audit", "select 1/0")
    resp = await client.post(f"{V1}/teams", json={"name": "ghost"}, headers=world.admin.auth)
    assert resp.status == 500
    assert factory.value("select count(*) from teams where name = 'ghost'") == 0
