"""Supporting endpoints: /me, members, tokens, teams and memberships,
workload configs; their permissions and state rules."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, until_waiting_on_locks

from common.clock import FakeClock
from common.ids import new_id
from common.settings import Settings
from common.tokens import hash_token, new_token, token_prefix
from sql import query

V1 = "/api/v1"


async def test_me_shows_member_and_teams(client: TestClient, world: World) -> None:
    body = await body_of(await client.get(V1 + "/me", headers=world.editor.auth))
    assert body["id"] == world.editor.id and body["organizationId"] == world.org
    assert body["organizationAdmin"] is False
    assert body["teams"] == [{"teamId": world.team, "role": "editor"}]
    # The token of the call: what a script may do with it, and until when.
    assert body["token"]["readOnly"] is False
    assert set(body["token"]) == {"id", "readOnly", "expiresAt"}


async def test_members_are_managed_by_org_admins(client: TestClient, world: World) -> None:
    new = {"email": "ada@example.com", "name": "Ada"}
    resp = await client.post(V1 + "/members", json=new, headers=world.owner.auth)
    assert resp.status == 403
    resp = await client.post(V1 + "/members", json=new, headers=world.admin.auth)
    assert resp.status == 201
    ada = await body_of(resp)
    assert ada["email"] == "ada@example.com" and ada["organizationAdmin"] is False
    again = await client.post(V1 + "/members", json=new, headers=world.admin.auth)
    assert again.status == 409 and (await body_of(again))["code"] == "member_exists"
    # An email is one person however it is capitalised.
    shouted = {"email": "Ada@Example.COM", "name": "Ada again"}
    again = await client.post(V1 + "/members", json=shouted, headers=world.admin.auth)
    assert again.status == 409 and (await body_of(again))["code"] == "member_exists"
    bad = await client.post(
        V1 + "/members", json={"email": "nope", "name": "x"}, headers=world.admin.auth
    )
    assert bad.status == 400 and (await body_of(bad))["field"] == "email"
    listed = await body_of(await client.get(V1 + "/members", headers=world.admin.auth))
    assert ada["id"] in [m["id"] for m in listed["items"]]
    assert (await client.get(V1 + "/members", headers=world.owner.auth)).status == 403
    # A new member gets a token from an admin, then works.
    tok = await body_of(
        await client.post(
            f"{V1}/members/{ada['id']}/tokens", json={"name": "t"}, headers=world.admin.auth
        )
    )
    ada_auth = {"Authorization": f"Bearer {tok['token']}"}
    assert (await client.get(V1 + "/me", headers=ada_auth)).status == 200
    # Another member may not mint tokens for Ada; an admin may not disable itself.
    assert (
        await client.post(
            f"{V1}/members/{ada['id']}/tokens", json={"name": "t"}, headers=world.owner.auth
        )
    ).status == 403
    selfie = await client.delete(f"{V1}/members/{world.admin.id}", headers=world.admin.auth)
    assert selfie.status == 409 and (await body_of(selfie))["code"] == "cannot_disable_self"
    assert (
        await client.delete(f"{V1}/members/{ada['id']}", headers=world.admin.auth)
    ).status == 204
    assert (await client.get(V1 + "/me", headers=ada_auth)).status == 401
    assert (
        await client.delete(f"{V1}/members/{ada['id']}", headers=world.admin.auth)
    ).status == 404
    # Another organization's members are invisible.
    assert (
        await client.delete(f"{V1}/members/{world.owner.id}", headers=world.stranger.auth)
    ).status == 404


async def test_teams_and_memberships(client: TestClient, world: World) -> None:
    assert (
        await client.post(V1 + "/teams", json={"name": "ml"}, headers=world.owner.auth)
    ).status == 403
    resp = await client.post(V1 + "/teams", json={"name": "ml"}, headers=world.admin.auth)
    assert resp.status == 201
    team = await body_of(resp)
    assert team["name"] == "ml" and team["createdBy"] == world.admin.id
    dup = await client.post(V1 + "/teams", json={"name": "ml"}, headers=world.admin.auth)
    assert dup.status == 409 and (await body_of(dup))["code"] == "team_name_taken"
    url = f"{V1}/teams/{team['id']}/members/{world.owner.id}"
    assert (await client.put(url, json={"role": "admin"}, headers=world.owner.auth)).status == 403
    resp = await client.put(url, json={"role": "admin"}, headers=world.admin.auth)
    assert resp.status == 200
    assert await body_of(resp) == {
        "teamId": team["id"],
        "memberId": world.owner.id,
        "role": "admin",
    }
    # Now a team admin, the owner manages the team's members.
    url2 = f"{V1}/teams/{team['id']}/members/{world.viewer.id}"
    assert (await client.put(url2, json={"role": "viewer"}, headers=world.owner.auth)).status == 200
    bad = await client.put(url2, json={"role": "boss"}, headers=world.owner.auth)
    assert bad.status == 400 and (await body_of(bad))["field"] == "role"
    assert (await client.delete(url2, headers=world.owner.auth)).status == 204
    assert (await client.delete(url2, headers=world.owner.auth)).status == 404
    foreign = f"{V1}/teams/{team['id']}/members/{world.stranger.id}"
    assert (
        await client.put(foreign, json={"role": "viewer"}, headers=world.admin.auth)
    ).status == 404
    listed = await body_of(await client.get(V1 + "/teams", headers=world.viewer.auth))
    assert listed["total"] == 2
    assert (await body_of(await client.get(V1 + "/teams", headers=world.stranger.auth)))[
        "total"
    ] == 0


async def test_workload_configs(client: TestClient, world: World) -> None:
    spec = {
        "name": "big",
        "mode": "cluster",
        "workers": 4,
        "sail": {"cpu": "2", "memory": "4Gi", "image": "sail:0.7"},
        "env": {"SPARK_CONF": "x"},
    }
    assert (
        await client.post(V1 + "/workloads/configs", json=spec, headers=world.owner.auth)
    ).status == 403
    resp = await client.post(V1 + "/workloads/configs", json=spec, headers=world.admin.auth)
    assert resp.status == 201, await resp.text()
    cfg = await body_of(resp)
    assert cfg["mode"] == "cluster" and cfg["workers"] == 4 and cfg["marimo"] == {}
    assert cfg["sail"] == spec["sail"] and cfg["env"] == {"SPARK_CONF": "x"}
    minimal = await body_of(
        await client.post(V1 + "/workloads/configs", json={"name": "m"}, headers=world.admin.auth)
    )
    assert minimal["mode"] == "standalone" and minimal["workers"] == 1
    for bad, field in (
        ({"name": "b", "workers": 65}, "workers"),
        ({"name": "b", "mode": "huge"}, "mode"),
        ({"name": "b", "env": {"1X": "y"}}, "env.1X"),
        ({"name": "b", "sail": {"cpu": "lots"}}, "sail.cpu"),
        ({"name": "b", "sail": {"gpu": "1"}}, "sail.gpu"),
    ):
        resp = await client.post(V1 + "/workloads/configs", json=bad, headers=world.admin.auth)
        assert resp.status == 400 and (await body_of(resp))["field"] == field, bad
    url = f"{V1}/workloads/configs/{cfg['id']}"
    assert (await body_of(await client.get(url, headers=world.viewer.auth)))["name"] == "big"
    assert (await client.get(url, headers=world.stranger.auth)).status == 404
    resp = await client.patch(url, json={"workers": 2, "name": "bigger"}, headers=world.admin.auth)
    assert resp.status == 200 and (await body_of(resp))["workers"] == 2
    taken = await client.patch(url, json={"name": "m"}, headers=world.admin.auth)
    assert taken.status == 409 and (await body_of(taken))["code"] == "config_name_taken"
    in_use = await client.delete(f"{V1}/workloads/configs/{world.config}", headers=world.admin.auth)
    assert in_use.status == 409 and (await body_of(in_use))["code"] == "workload_config_in_use"
    assert (await client.delete(url, headers=world.admin.auth)).status == 204
    assert (await client.get(url, headers=world.admin.auth)).status == 404
    listed = await body_of(await client.get(V1 + "/workloads/configs", headers=world.viewer.auth))
    assert listed["total"] == 2


async def test_a_disabled_owner_is_marked_so_in_included_members(
    client: TestClient, world: World
) -> None:
    """A disabled member's notebooks stay theirs (docs/api.md): a client
    shows the owner as disabled, not as someone to ask (the admin audit)."""
    url = f"{V1}/workloads/notebooks/{world.notebook}"
    described = await body_of(await client.get(url, headers=world.admin.auth))
    owner = next(m for m in described["included"]["members"] if m["id"] == world.owner.id)
    assert owner["disabled"] is False
    resp = await client.delete(f"{V1}/members/{world.owner.id}", headers=world.admin.auth)
    assert resp.status == 204
    described = await body_of(await client.get(url, headers=world.admin.auth))
    owner = next(m for m in described["included"]["members"] if m["id"] == world.owner.id)
    assert owner["disabled"] is True


async def test_a_config_in_use_says_how_many_notebooks_hold_it_and_what_to_do(
    client: TestClient, world: World, factory: Factory
) -> None:
    config = factory.config(world.org)
    url = f"{V1}/workloads/configs/{config}"
    first = factory.notebook(world.owner, config)
    factory.notebook(world.owner, config, status="running")
    two = await body_of(await client.delete(url, headers=world.admin.auth))
    assert two["code"] == "workload_config_in_use"
    assert two["detail"] == (
        "2 notebooks use this workload config; give them another one (while stopped) or"
        " delete them first."
    )
    factory.conn.execute(
        "delete from notebooks where id <> %s and workload_config_id = %s", (first, config)
    )
    one = await body_of(await client.delete(url, headers=world.admin.auth))
    assert one["detail"].startswith("1 notebook uses this workload config;")
    # Deleted, but its resources not yet removed by the reconciler: it still
    # holds the config, and the admin is told to wait, not to act.
    deleted = await client.delete(f"{V1}/workloads/notebooks/{first}", headers=world.owner.auth)
    assert deleted.status == 204
    waiting = await body_of(await client.delete(url, headers=world.admin.auth))
    assert waiting["code"] == "workload_config_in_use"
    assert waiting["detail"] == (
        "A deleted notebook that used this workload config is still being removed;"
        " try again in a minute."
    )
    factory.conn.execute("delete from notebooks where id = %s", (first,))
    assert (await client.delete(url, headers=world.admin.auth)).status == 204


async def test_workload_config_quantities_and_env_a_cluster_would_refuse_or_misread(
    client: TestClient, world: World
) -> None:
    """What the schema's formats let through but a pod could not run with:
    no limit at all (a zero), Kubernetes' own spelling (`k`, whole
    millicores), sizes no server starts in, the platform's own variables, an
    env too large for one environment string."""
    big_env = {f"V{i}": "x" * 4000 for i in range(9)}  # 36 KiB in all
    cases = [
        ({"sail": {"memory": "0"}}, "sail.memory", "out_of_range"),
        ({"sail": {"memory": "1"}}, "sail.memory", "out_of_range"),
        ({"marimo": {"memory": "63Mi"}}, "marimo.memory", "out_of_range"),
        ({"sail": {"memory": "2Ti"}}, "sail.memory", "out_of_range"),
        ({"sail": {"memory": "512K"}}, "sail.memory", "invalid_value"),  # Kubernetes: `k`
        ({"sail": {"cpu": "0"}}, "sail.cpu", "out_of_range"),
        ({"marimo": {"cpu": "0m"}}, "marimo.cpu", "out_of_range"),
        ({"sail": {"cpu": "0.5m"}}, "sail.cpu", "invalid_value"),  # no fraction of a millicore
        ({"sail": {"cpu": "257"}}, "sail.cpu", "out_of_range"),
        ({"env": {"SPARK_REMOTE": "sc://evil:15002"}}, "env.SPARK_REMOTE", "reserved_name"),
        ({"env": {"SAIL_MODE": "local"}}, "env.SAIL_MODE", "reserved_name"),
        ({"env": {"sail_mode": "local"}}, "env.sail_mode", "reserved_name"),
        (
            {"env": {"SAIL_CLUSTER__WORKER_MAX_COUNT": "9999"}},
            "env.SAIL_CLUSTER__WORKER_MAX_COUNT",
            "reserved_name",
        ),
        (
            {"env": {"SAIL_KUBERNETES__NAMESPACE": "kube-system"}},
            "env.SAIL_KUBERNETES__NAMESPACE",
            "reserved_name",
        ),
        ({"env": big_env}, "env", "out_of_range"),
    ]
    made = await client.post(
        V1 + "/workloads/configs", json={"name": "sized"}, headers=world.admin.auth
    )
    url = f"{V1}/workloads/configs/{(await body_of(made))['id']}"
    for bad, field, code in cases:
        for method, target, body in (
            ("POST", V1 + "/workloads/configs", {"name": "b", **bad}),
            ("PATCH", url, bad),
        ):
            resp = await client.request(method, target, json=body, headers=world.admin.auth)
            problem = await body_of(resp)
            assert resp.status == 400, (method, bad)
            assert (problem["field"], problem["code"]) == (field, code), (method, bad)
    good = {
        "sail": {"cpu": "250m", "memory": "64Mi"},
        "marimo": {"cpu": "0.001", "memory": "1Ti"},
        "env": {"SAIL_SPARK__SESSION_TIMEOUT_SECS": "60", "SPARK_CONF": "x"},
    }
    resp = await client.patch(url, json=good, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    assert (await body_of(resp))["marimo"] == good["marimo"]


async def test_an_org_admin_renames_members_and_makes_them_admins_or_not(
    client: TestClient, world: World, factory: Factory
) -> None:
    """Making a colleague an org admin (or no longer one) needed the database
    (the admin audit). The organization keeps at least one active admin,
    whatever crosses: two admins demoting each other at once leave one."""
    url = f"{V1}/members/{world.owner.id}"
    promote = {"organizationAdmin": True}
    for who in (world.owner, world.team_admin, world.viewer):
        assert (await client.patch(url, json=promote, headers=who.auth)).status == 403
    resp = await client.patch(url, json=promote, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    promoted = await body_of(resp)
    assert promoted["id"] == world.owner.id and promoted["organizationAdmin"] is True
    assert (await client.get(V1 + "/members", headers=world.owner.auth)).status == 200
    renamed = await body_of(
        await client.patch(url, json={"name": "Olivia Owner"}, headers=world.owner.auth)
    )
    assert renamed["name"] == "Olivia Owner", renamed
    assert renamed["organizationAdmin"] is True
    bad = await client.patch(url, json={"organizationAdmin": "yes"}, headers=world.admin.auth)
    assert bad.status == 400 and (await body_of(bad))["field"] == "organizationAdmin"
    unknown = await client.patch(url, json={"email": "x@y.z"}, headers=world.admin.auth)
    assert unknown.status == 400
    foreign = f"{V1}/members/{world.stranger.id}"
    assert (await client.patch(foreign, json=promote, headers=world.admin.auth)).status == 404

    # Two admins demoting each other at once: one of them stays an admin.
    demote = {"organizationAdmin": False}
    first, second = await asyncio.gather(
        client.patch(url, json=demote, headers=world.admin.auth),
        client.patch(f"{V1}/members/{world.admin.id}", json=demote, headers=world.owner.auth),
    )
    statuses = sorted([first.status, second.status])
    admins = "select count(*) from members where organization_id = %s and organization_admin"
    assert factory.value(admins, world.org) == 1, statuses
    assert statuses[0] == 200 and statuses[1] in (403, 409), statuses
    # The last admin cannot step down; after another is made one, it can.
    (last,) = [m for m in (world.admin, world.owner) if _is_admin(factory, m.id)]
    other = world.owner if last is world.admin else world.admin
    own = f"{V1}/members/{last.id}"
    refused = await client.patch(own, json=demote, headers=last.auth)
    assert refused.status == 409
    assert (await body_of(refused))["code"] == "last_organization_admin"
    back = f"{V1}/members/{other.id}"
    assert (await client.patch(back, json=promote, headers=last.auth)).status == 200
    assert (await client.patch(own, json=demote, headers=last.auth)).status == 200
    assert not _is_admin(factory, last.id) and _is_admin(factory, other.id)
    # A disabled member is no member to change.
    assert (
        await client.delete(f"{V1}/members/{world.viewer.id}", headers=other.auth)
    ).status == 204
    gone = f"{V1}/members/{world.viewer.id}"
    assert (await client.patch(gone, json=promote, headers=other.auth)).status == 404


async def test_members_are_found_by_a_part_of_their_name_or_email(
    client: TestClient, world: World
) -> None:
    """An admin of thousands looks a member up (the admin audit: five pages
    of 50 by date). Case-insensitive, `%` and `_` plain; pages carry on."""
    for email, name in (
        ("ada.lovelace@example.com", "Ada Lovelace"),
        ("grace@navy.example", "Grace Hopper"),
        ("under_score@example.com", "Percent 100%"),
    ):
        resp = await client.post(
            V1 + "/members", json={"email": email, "name": name}, headers=world.admin.auth
        )
        assert resp.status == 201

    async def found(q: str, extra: str = "") -> dict:
        resp = await client.get(f"{V1}/members?q={q}{extra}", headers=world.admin.auth)
        assert resp.status == 200, await resp.text()
        return await body_of(resp)

    assert [m["name"] for m in (await found("LOVE"))["items"]] == ["Ada Lovelace"]
    assert [m["name"] for m in (await found("navy.EXAMPLE"))["items"]] == ["Grace Hopper"]
    assert [m["name"] for m in (await found("%25"))["items"]] == ["Percent 100%"]
    assert [m["name"] for m in (await found("r_s"))["items"]] == ["Percent 100%"]
    assert (await found("nobody-here"))["total"] == 0
    both = await found("a", "&limit=1")  # Ada, Grace (and others of the world)
    assert both["total"] >= 2 and len(both["items"]) == 1 and "marker" in both
    rest = await found("a", f"&limit=100&marker={both['marker']}")
    assert len(rest["items"]) == both["total"] - 1
    # A marker belongs to its search.
    other = await client.get(
        f"{V1}/members?q=grace&marker={both['marker']}", headers=world.admin.auth
    )
    assert other.status == 400 and (await body_of(other))["code"] == "invalid_marker"
    long = await client.get(f"{V1}/members?q={'x' * 129}", headers=world.admin.auth)
    assert long.status == 400 and (await body_of(long))["field"] == "q"
    assert (await client.get(f"{V1}/members?q=ada", headers=world.owner.auth)).status == 403


async def test_notebooks_are_listed_by_status(
    client: TestClient, world: World, factory: Factory
) -> None:
    """What runs now, and whose: an admin lists the notebooks in some
    statuses (the admin audit). Unknown statuses are refused, naming the
    field; a marker belongs to its filter."""
    running = factory.notebook(world.owner, world.config, status="running")
    factory.notebook(world.owner, world.config, status="failed")
    nb = V1 + "/workloads/notebooks"

    async def listed(query: str) -> dict:
        resp = await client.get(nb + query, headers=world.admin.auth)
        assert resp.status == 200, await resp.text()
        return await body_of(resp)

    up = await listed("?status=starting,running,idle,detached,stopping")
    assert [i["notebookId"] for i in up["items"]] == [running] and up["total"] == 1
    assert [n["status"] for n in up["included"]["notebooks"]] == ["running"]
    everything = await listed("")
    assert everything["total"] == 3
    two = await listed("?status=stopped,failed&limit=1")
    assert two["total"] == 2 and "marker" in two
    other = await client.get(
        f"{nb}?status=stopped&marker={two['marker']}", headers=world.admin.auth
    )
    assert other.status == 400 and (await body_of(other))["code"] == "invalid_marker"
    for bad in ("?status=sleeping", "?status=", "?status=running,,idle"):
        resp = await client.get(nb + bad, headers=world.admin.auth)
        assert resp.status == 400 and (await body_of(resp))["field"] == "status", bad
    # A team's list takes it too: its one notebook is stopped.
    team = f"{V1}/workloads/teams/{world.team}/notebooks"
    for status, total in (("stopped", 1), ("running", 0)):
        resp = await client.get(f"{team}?status={status}", headers=world.editor.auth)
        assert resp.status == 200 and (await body_of(resp))["total"] == total, status


def _is_admin(factory: Factory, member_id: str) -> bool:
    return bool(factory.value("select organization_admin from members where id = %s", member_id))


async def test_an_org_admin_renames_and_deletes_a_team(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A team named wrong, or no longer needed, was there for ever (the admin
    audit). Deleting one ends what it gave: its members leave it and the
    notebooks shared with it are unshared from it."""
    url = f"{V1}/teams/{world.team}"
    name = {"name": "Data Engineering"}
    for who in (world.team_admin, world.owner, world.viewer):
        assert (await client.patch(url, json=name, headers=who.auth)).status == 403
    resp = await client.patch(url, json=name, headers=world.admin.auth)
    assert resp.status == 200, await resp.text()
    renamed = await body_of(resp)
    assert renamed["name"] == "Data Engineering" and renamed["id"] == world.team
    # Its own name in other letters is its own; another team's is taken.
    same = await client.patch(url, json={"name": "data engineering"}, headers=world.admin.auth)
    assert same.status == 200
    other = await body_of(
        await client.post(V1 + "/teams", json={"name": "ml"}, headers=world.admin.auth)
    )
    taken = await client.patch(url, json={"name": "ML"}, headers=world.admin.auth)
    assert taken.status == 409 and (await body_of(taken))["code"] == "team_name_taken"
    bad = await client.patch(url, json={"name": ""}, headers=world.admin.auth)
    assert bad.status == 400 and (await body_of(bad))["field"] == "name"
    foreign = f"{V1}/teams/{world.team}"
    assert (await client.patch(foreign, json=name, headers=world.stranger.auth)).status == 404

    # The editor sees the notebook through the team; the team goes, so does that.
    nb = f"{V1}/workloads/notebooks/{world.notebook}"
    assert (await client.get(nb, headers=world.editor.auth)).status == 200
    assert (await client.delete(url, headers=world.team_admin.auth)).status == 403
    assert (await client.delete(url, headers=world.stranger.auth)).status == 404
    assert (await client.delete(url, headers=world.admin.auth)).status == 204
    assert (await client.get(nb, headers=world.editor.auth)).status == 404
    links = "select count(*) from notebook_teams where team_id = %s"
    memberships = "select count(*) from team_memberships where team_id = %s"
    assert factory.value(links, world.team) == 0 and factory.value(memberships, world.team) == 0
    # The notebook's history says who took the team's access, once (not the
    # stranger's refused delete, nor the repeated one below).
    events = factory.conn.execute(
        "select from_status, to_status, reason, actor from notebook_events where notebook_id = %s",
        (world.notebook,),
    ).fetchall()
    gone = "No longer shared with data engineering: the team was deleted"
    assert events == [("stopped", "stopped", gone, world.admin.id)]
    assert (await client.delete(url, headers=world.admin.auth)).status == 404
    count = "select count(*) from notebook_events where notebook_id = %s"
    assert factory.value(count, world.notebook) == 1
    listed = await body_of(await client.get(V1 + "/teams", headers=world.admin.auth))
    assert [t["id"] for t in listed["items"]] == [other["id"]]


async def test_reading_a_notebooks_teams_does_not_wait_for_a_start_or_stop(
    client: TestClient, world: World, settings: Settings
) -> None:
    """A read takes no row lock: while a write holds the notebook's row (as a
    start or stop does), listing its teams answers at once."""
    url = f"{V1}/workloads/notebooks/{world.notebook}/teams"
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute("select id from notebooks where id = %s for update", (world.notebook,))
        resp = await asyncio.wait_for(client.get(url, headers=world.viewer.auth), 5)
        assert resp.status == 200
        assert [t["id"] for t in (await body_of(resp))["items"]] == [world.team]
        hidden = await asyncio.wait_for(client.get(url, headers=world.outsider.auth), 5)
        assert hidden.status == 404


async def test_notebook_team_links(client: TestClient, world: World, factory: Factory) -> None:
    other = factory.team(world.org)
    url = f"{V1}/workloads/notebooks/{world.notebook}/teams"
    for _ in range(2):  # idempotent
        resp = await client.post(url, json={"teamIds": [other, other]}, headers=world.owner.auth)
        assert resp.status == 200
        assert sorted(t["id"] for t in (await body_of(resp))["items"]) == sorted(
            [world.team, other]
        )
    assert (await client.delete(f"{url}/{other}", headers=world.owner.auth)).status == 204
    assert (await client.delete(f"{url}/{other}", headers=world.owner.auth)).status == 404
    listed = await body_of(await client.get(url, headers=world.viewer.auth))
    assert [t["id"] for t in listed["items"]] == [world.team]
    # Unsharing the viewer's team hides the notebook from the viewer at once.
    assert (await client.delete(f"{url}/{world.team}", headers=world.owner.auth)).status == 204
    assert (
        await client.get(f"{V1}/workloads/notebooks/{world.notebook}", headers=world.viewer.auth)
    ).status == 404


async def test_token_and_team_member_listings(client: TestClient, world: World) -> None:
    url = f"{V1}/members/{world.editor.id}/tokens"
    made = await body_of(await client.post(url, json={"name": "ci"}, headers=world.editor.auth))
    listed = await body_of(await client.get(url, headers=world.editor.auth))
    assert listed["total"] == 2 and all("token" not in t for t in listed["items"])
    (mine,) = [t for t in listed["items"] if t["id"] == made["id"]]
    assert mine["prefix"] == made["prefix"] and mine["lastUsedAt"] is None
    assert (await client.get(url, headers=world.admin.auth)).status == 200
    assert (await client.get(url, headers=world.viewer.auth)).status == 403
    assert (await client.get(url, headers=world.stranger.auth)).status == 404
    await client.delete(f"{url}/{made['id']}", headers=world.editor.auth)
    assert (await body_of(await client.get(url, headers=world.editor.auth)))["total"] == 1
    members = await body_of(
        await client.get(f"{V1}/teams/{world.team}/members", headers=world.outsider.auth)
    )
    assert sorted((m["memberId"], m["role"]) for m in members["items"]) == sorted(
        [(world.team_admin.id, "admin"), (world.editor.id, "editor"), (world.viewer.id, "viewer")]
    )
    # Named to the team's own members (who may not list the organization's
    # members), and to org admins; not to others in the organization.
    assert members["included"]["members"] == []
    expected = {m.id: f"Member {m.id}" for m in (world.team_admin, world.editor, world.viewer)}
    for who in (world.viewer, world.admin):
        seen = await body_of(await client.get(f"{V1}/teams/{world.team}/members", headers=who.auth))
        assert {m["id"]: m["name"] for m in seen["included"]["members"]} == expected
    assert (
        await client.get(f"{V1}/teams/{world.team}/members", headers=world.stranger.auth)
    ).status == 404


async def test_a_token_says_who_made_it_and_the_database_who_revoked_it(
    client: TestClient, world: World, factory: Factory
) -> None:
    """An org admin may make a colleague's token (and see its secret once):
    the colleague's list says so; a revocation records its author too."""
    url = f"{V1}/members/{world.editor.id}/tokens"
    by_admin = await body_of(await client.post(url, json={"name": "a"}, headers=world.admin.auth))
    own = await body_of(await client.post(url, json={"name": "o"}, headers=world.editor.auth))
    assert (by_admin["createdBy"], own["createdBy"]) == (world.admin.id, world.editor.id)
    listed = await body_of(await client.get(url, headers=world.editor.auth))
    made_by = {t["id"]: t["createdBy"] for t in listed["items"]}
    assert made_by[by_admin["id"]] == world.admin.id and made_by[own["id"]] == world.editor.id
    assert (await client.delete(f"{url}/{own['id']}", headers=world.admin.auth)).status == 204
    assert factory.value("select revoked_by from api_tokens where id = %s", own["id"]) == (
        world.admin.id
    )


async def console_token(client: TestClient, world: World) -> tuple[dict, dict[str, str]]:
    """A 1 h token of the editor's (as the console makes), and its auth header."""
    made = await body_of(
        await client.post(
            f"{V1}/members/{world.editor.id}/tokens",
            json={"name": "console", "expiresInSeconds": 3600},
            headers=world.editor.auth,
        )
    )
    return made, {"Authorization": f"Bearer {made['token']}"}


async def test_a_token_with_an_expiry_stops_working_and_leaves_the_list_then(
    client: TestClient, world: World, clock: FakeClock
) -> None:
    url = f"{V1}/members/{world.editor.id}/tokens"
    made, auth = await console_token(client, world)
    assert made["expiresAt"] == "2026-11-01T13:00:00+00:00"  # as createdAt renders
    assert (await client.get(V1 + "/me", headers=auth)).status == 200
    listed = await body_of(await client.get(url, headers=world.editor.auth))
    assert {t["id"]: t["expiresAt"] for t in listed["items"]}[made["id"]] == made["expiresAt"]
    forever = await body_of(await client.post(url, json={"name": "ci"}, headers=world.editor.auth))
    assert forever["expiresAt"] is None
    clock.advance(3600)
    resp = await client.get(V1 + "/me", headers=auth)
    assert resp.status == 401 and (await body_of(resp))["code"] == "invalid_token"
    listed = await body_of(await client.get(url, headers=world.editor.auth))
    assert made["id"] not in [t["id"] for t in listed["items"]]
    assert forever["id"] in [t["id"] for t in listed["items"]]


async def test_a_token_with_an_expiry_cannot_mint_one_that_outlives_it(
    client: TestClient, world: World, clock: FakeClock
) -> None:
    """A leaked short-lived token (the console's) must not buy a lasting one."""
    url = f"{V1}/members/{world.editor.id}/tokens"
    short, auth = await console_token(client, world)
    forever = await body_of(await client.post(url, json={"name": "ci"}, headers=auth))
    longer = await body_of(
        await client.post(url, json={"name": "l", "expiresInSeconds": 7200}, headers=auth)
    )
    shorter = await body_of(
        await client.post(url, json={"name": "s", "expiresInSeconds": 600}, headers=auth)
    )
    assert forever["expiresAt"] == longer["expiresAt"] == short["expiresAt"]
    assert shorter["expiresAt"] == "2026-11-01T12:10:00+00:00"
    by_admin = await body_of(await client.post(url, json={"name": "a"}, headers=world.admin.auth))
    assert by_admin["expiresAt"] is None  # a token without an end makes any
    clock.advance(3600)
    for made in (forever, longer):
        resp = await client.get(V1 + "/me", headers={"Authorization": f"Bearer {made['token']}"})
        assert resp.status == 401


async def test_revoking_a_token_revokes_what_was_made_with_it_while_it_had_an_end(
    client: TestClient, world: World
) -> None:
    """Signing out of a console (revoking its token) ends every token made in
    that console, and those made with them; a lasting token's are its peers."""
    own = f"{V1}/members/{world.editor.id}/tokens"
    console, auth = await console_token(client, world)
    child = await body_of(await client.post(own, json={"name": "child"}, headers=auth))
    grandchild = await body_of(
        await client.post(
            f"{V1}/members/{world.editor.id}/tokens",
            json={"name": "grandchild"},
            headers={"Authorization": f"Bearer {child['token']}"},
        )
    )
    peer = await body_of(await client.post(own, json={"name": "peer"}, headers=world.editor.auth))

    async def me(token: str) -> int:
        return (await client.get(V1 + "/me", headers={"Authorization": f"Bearer {token}"})).status

    assert [await me(t["token"]) for t in (console, child, grandchild, peer)] == [200] * 4
    assert (await client.delete(f"{own}/{console['id']}", headers=world.editor.auth)).status == 204
    assert [await me(t["token"]) for t in (console, child, grandchild)] == [401] * 3
    assert await me(peer["token"]) == 200  # made with a lasting token: not bound to the console
    listed = await body_of(await client.get(own, headers=world.editor.auth))
    assert peer["id"] in {t["id"] for t in listed["items"]}
    assert not {console["id"], child["id"], grandchild["id"]} & {t["id"] for t in listed["items"]}


async def test_a_token_made_while_its_maker_is_revoked_is_revoked_with_it(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """The child's insert is in flight (uncommitted) when the sign-out comes:
    the revocation waits for it and then finds it in the lineage."""
    console, _ = await console_token(client, world)
    secret = new_token()
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder:
        async with holder.transaction():
            await holder.execute(
                query("api_insert_token"),
                {
                    "id": new_id(),
                    "member_id": world.editor.id,
                    "name": "in flight",
                    "prefix": token_prefix(secret),
                    "secret_hash": hash_token(secret),
                    "now": factory.clock.now(),
                    "expires_at": None,
                    "made_by": console["id"],
                    "caller_id": world.editor.id,
                    "read_only": False,
                },
            )
            url = f"{V1}/members/{world.editor.id}/tokens/{console['id']}"
            racing = asyncio.ensure_future(client.delete(url, headers=world.editor.auth))
            await until_waiting_on_locks(factory, 1, racing, "the revoke did not wait")
        assert (await racing).status == 204
    me = await client.get(V1 + "/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status == 401


async def test_no_token_is_made_with_a_maker_being_revoked(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    console, auth = await console_token(client, world)
    params = {
        "token_id": console["id"],
        "member_id": world.editor.id,
        "now": factory.clock.now(),
        "caller_id": world.editor.id,
    }
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder:
        async with holder.transaction():
            await holder.execute(query("api_lock_token"), params)
            await holder.execute(query("api_revoke_token"), params)
            url = f"{V1}/members/{world.editor.id}/tokens"
            racing = asyncio.ensure_future(client.post(url, json={"name": "late"}, headers=auth))
            await until_waiting_on_locks(factory, 1, racing, "the insert did not wait")
        resp = await racing
    assert resp.status == 401 and (await body_of(resp))["code"] == "invalid_token"
    assert factory.value("select count(*) from api_tokens where name = 'late'") == 0


async def test_a_token_an_admin_made_for_a_colleague_outlives_the_admins_sign_out(
    client: TestClient, world: World
) -> None:
    """Handed over from the admin's console, it keeps the console's end (the
    cap) but is not revoked when the admin signs out right after."""
    admin_tokens = f"{V1}/members/{world.admin.id}/tokens"
    console = await body_of(
        await client.post(
            admin_tokens,
            json={"name": "console", "expiresInSeconds": 3600},
            headers=world.admin.auth,
        )
    )
    auth = {"Authorization": f"Bearer {console['token']}"}
    handed = await body_of(
        await client.post(
            f"{V1}/members/{world.viewer.id}/tokens", json={"name": "first"}, headers=auth
        )
    )
    assert handed["expiresAt"] == console["expiresAt"]  # never outlives its maker
    resp = await client.delete(f"{admin_tokens}/{console['id']}", headers=world.admin.auth)
    assert resp.status == 204
    me = await client.get(V1 + "/me", headers={"Authorization": f"Bearer {handed['token']}"})
    assert me.status == 200 and (await body_of(me))["id"] == world.viewer.id


@pytest.mark.parametrize("lifetime", [299, 366 * 86400 + 1, "3600", 3600.5, True, None])
async def test_a_token_lifetime_out_of_range_is_400(
    client: TestClient, world: World, lifetime: object
) -> None:
    url = f"{V1}/members/{world.editor.id}/tokens"
    body = {"name": "t", "expiresInSeconds": lifetime}
    resp = await client.post(url, json=body, headers=world.editor.auth)
    assert resp.status == 400 and (await body_of(resp))["field"] == "expiresInSeconds"


async def test_two_admins_disabling_each_other_at_once_leave_one_admin(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """B's disable of A is in flight (uncommitted) when A's disable of B
    arrives: A's waits for it, then finds A disabled and disables nobody."""
    second = factory.member(world.org, admin=True)
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder:
        async with holder.transaction():
            await holder.execute(
                query("api_disable_member"),
                {
                    "org_id": world.org,
                    "member_id": world.admin.id,
                    "caller_id": second.id,
                    "now": factory.clock.now(),
                },
            )
            racing = asyncio.ensure_future(
                client.delete(f"{V1}/members/{second.id}", headers=world.admin.auth)
            )
            await until_waiting_on_locks(factory, 1, racing, "A's disable did not wait for B's")
        resp = await racing
    assert resp.status == 401 and (await body_of(resp))["code"] == "invalid_token"
    assert factory.value("select disabled_at is null from members where id = %s", second.id)
    assert not factory.value(
        "select disabled_at is null from members where id = %s", world.admin.id
    )


async def test_a_disabled_member_leaves_team_listings(client: TestClient, world: World) -> None:
    url = f"{V1}/teams/{world.team}/members"
    resp = await client.delete(f"{V1}/members/{world.viewer.id}", headers=world.admin.auth)
    assert resp.status == 204
    members = await body_of(await client.get(url, headers=world.editor.auth))
    assert members["total"] == 2
    assert world.viewer.id not in [m["memberId"] for m in members["items"]]


async def test_notebooks_are_listed_by_owner_as_far_as_the_caller_sees_them(
    client: TestClient, world: World, factory: Factory
) -> None:
    """`?owner=`: whose notebooks (an admin after someone left; "mine")."""
    private = factory.notebook(world.owner, world.config, status="running")
    factory.notebook(world.editor, world.config)  # someone else's

    async def owned(who, query: str = "") -> list[str]:  # type: ignore[no-untyped-def]
        resp = await client.get(
            f"{V1}/workloads/notebooks?owner={world.owner.id}{query}", headers=who.auth
        )
        assert resp.status == 200, await resp.text()
        body = await body_of(resp)
        assert body["total"] == len(body["items"])
        return sorted(i["notebookId"] for i in body["items"])

    both = sorted([world.notebook, private])
    assert await owned(world.owner) == both
    assert await owned(world.admin) == both
    assert await owned(world.viewer) == [world.notebook]  # the one shared with their team
    assert await owned(world.outsider) == []
    assert await owned(world.admin, "&status=running") == [private]
    bad = await client.get(f"{V1}/workloads/notebooks?owner=ann@x", headers=world.admin.auth)
    assert bad.status == 400 and (await body_of(bad))["field"] == "owner"
    page = await body_of(
        await client.get(f"{V1}/workloads/notebooks?limit=1", headers=world.admin.auth)
    )
    other = await client.get(
        f"{V1}/workloads/notebooks?owner={world.owner.id}&marker={page['marker']}",
        headers=world.admin.auth,
    )
    assert other.status == 400 and (await body_of(other))["code"] == "invalid_marker"


async def test_a_team_deleted_while_a_notebook_is_unshared_from_it_is_recorded_once(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """An unshare that commits while the deletion waits for the notebook is
    that notebook's one entry about the team (a review: both were recorded)."""
    async with await psycopg.AsyncConnection.connect(settings.database_url) as unsharing:
        await unsharing.execute(
            "select id from notebooks where id = %s for update", (world.notebook,)
        )
        await unsharing.execute(
            "delete from notebook_teams where notebook_id = %s and team_id = %s",
            (world.notebook, world.team),
        )
        deleting = asyncio.ensure_future(
            client.delete(f"{V1}/teams/{world.team}", headers=world.admin.auth)
        )
        await until_waiting_on_locks(factory, 1, deleting, "the deletion did not wait")
        await unsharing.commit()
    assert (await deleting).status == 204
    count = "select count(*) from notebook_events where notebook_id = %s"
    assert factory.value(count, world.notebook) == 0
