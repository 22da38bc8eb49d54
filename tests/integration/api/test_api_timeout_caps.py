"""An organization's caps on its notebooks' timeouts (PATCH /organization
`maxIdleTimeoutSeconds`, `maxDetachedTimeoutSeconds`; docs/api.md "Timeout
caps"): org admins set them; a create or an edit may not set a timeout
beyond them ("never" included); a new notebook's default is capped; a
notebook set before the cap keeps its own (the reconciler caps it:
tests/integration/reconciler/test_reconciler_presence.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, body_of, refused

from common.durations import capped

V1 = "/api/v1"
NB = V1 + "/workloads/notebooks"


def notebook_of(body: Any) -> Any:
    """The notebook a describe answer describes."""
    return body["included"]["notebooks"][0]


async def set_caps(client: TestClient, who: Member, **caps: int) -> Any:
    return await client.patch(V1 + "/organization", json=caps, headers=who.auth)


async def create(client: TestClient, world: World, **fields: Any) -> Any:
    body = {"name": "capped", "workloadConfigId": world.config, **fields}
    return await client.post(NB, json=body, headers=world.owner.auth)


@pytest.mark.parametrize(
    ("timeout", "cap", "applies"),
    [(3600, 0, 3600), (0, 0, 0), (0, 1800, 1800), (3600, 1800, 1800), (900, 1800, 900)],
)
def test_the_tighter_timeout_applies_and_never_is_the_longest(
    timeout: int, cap: int, applies: int
) -> None:
    assert capped(timeout, cap) == applies


async def test_org_admins_set_the_caps_and_every_member_reads_them(
    client: TestClient, world: World
) -> None:
    body = await body_of(await client.get(V1 + "/organization", headers=world.viewer.auth))
    assert (body["maxIdleTimeoutSeconds"], body["maxDetachedTimeoutSeconds"]) == (0, 0)
    await refused(await set_caps(client, world.owner, maxIdleTimeoutSeconds=600), 403, "forbidden")
    resp = await set_caps(client, world.admin, maxIdleTimeoutSeconds=1800)
    assert resp.status == 200, await resp.text()
    resp = await set_caps(client, world.admin, maxDetachedTimeoutSeconds=7200)
    body = await body_of(resp)
    # One at a time: the other stays.
    assert (body["maxIdleTimeoutSeconds"], body["maxDetachedTimeoutSeconds"]) == (1800, 7200)
    body = await body_of(await client.get(V1 + "/organization", headers=world.viewer.auth))
    assert body["maxIdleTimeoutSeconds"] == 1800
    other = await body_of(await client.get(V1 + "/organization", headers=world.stranger.auth))
    assert other["maxIdleTimeoutSeconds"] == 0


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"maxIdleTimeoutSeconds": 299}, "out_of_range", "maxIdleTimeoutSeconds"),
        # whole minutes, as the console shows a cap
        ({"maxIdleTimeoutSeconds": 450}, "out_of_range", "maxIdleTimeoutSeconds"),
        ({"maxIdleTimeoutSeconds": 604801}, "out_of_range", "maxIdleTimeoutSeconds"),
        ({"maxDetachedTimeoutSeconds": -1}, "out_of_range", "maxDetachedTimeoutSeconds"),
        ({"maxDetachedTimeoutSeconds": "3600"}, "wrong_type", "maxDetachedTimeoutSeconds"),
        ({"maxIdleTimeoutSeconds": None}, "wrong_type", "maxIdleTimeoutSeconds"),
    ],
)
async def test_bad_caps_are_refused_and_nothing_changes(
    client: TestClient, world: World, body: dict[str, Any], code: str, field: str
) -> None:
    await refused(await set_caps(client, world.admin, **body), 400, code, field)
    after = await body_of(await client.get(V1 + "/organization", headers=world.admin.auth))
    assert (after["maxIdleTimeoutSeconds"], after["maxDetachedTimeoutSeconds"]) == (0, 0)
    assert after["updatedAt"] is None


async def test_a_new_notebooks_defaults_are_capped(client: TestClient, world: World) -> None:
    await set_caps(client, world.admin, maxIdleTimeoutSeconds=1800, maxDetachedTimeoutSeconds=28800)
    resp = await create(client, world)
    assert resp.status == 201, await resp.text()
    item = notebook_of(await body_of(resp))
    # idle: the default 1 h under a 30 min cap; detached: the default 4 h is within 8 h
    assert (item["idleTimeoutSeconds"], item["detachedTimeoutSeconds"]) == (1800, 14400)
    resp = await create(client, world, idleTimeoutSeconds=600, detachedTimeoutSeconds=28800)
    item = notebook_of(await body_of(resp))
    assert (item["idleTimeoutSeconds"], item["detachedTimeoutSeconds"]) == (600, 28800)


@pytest.mark.parametrize(
    ("fields", "field", "detail"),
    [
        (
            {"idleTimeoutSeconds": 0},
            "idleTimeoutSeconds",
            "Your organization allows an idle timeout of at most 30 min: set 5 min to 30 min.",
        ),
        (
            {"idleTimeoutSeconds": 1860},
            "idleTimeoutSeconds",
            "Your organization allows an idle timeout of at most 30 min: set 5 min to 30 min.",
        ),
        (
            {"detachedTimeoutSeconds": 0},
            "detachedTimeoutSeconds",
            "Your organization allows a detached timeout of at most 2 h: set 5 min to 2 h.",
        ),
    ],
)
async def test_a_create_beyond_a_cap_is_refused_and_nothing_is_created(
    client: TestClient,
    world: World,
    factory: Factory,
    fields: dict[str, int],
    field: str,
    detail: str,
) -> None:
    await set_caps(client, world.admin, maxIdleTimeoutSeconds=1800, maxDetachedTimeoutSeconds=7200)
    before = factory.value("select count(*) from notebooks")
    problem = await refused(
        await create(client, world, **fields), 400, "timeout_not_allowed", field
    )
    assert problem["detail"] == detail
    assert factory.value("select count(*) from notebooks") == before


async def test_an_edit_may_not_lengthen_past_the_cap_but_keeps_what_was_set_before(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.patch(
        f"{NB}/{world.notebook}", json={"idleTimeoutSeconds": 0}, headers=world.owner.auth
    )
    assert resp.status == 200, await resp.text()
    await set_caps(client, world.admin, maxIdleTimeoutSeconds=1800)
    url = f"{NB}/{world.notebook}"

    # What it was set to before the cap stays, and saving it unchanged is no error.
    resp = await client.patch(
        url, json={"name": "renamed", "idleTimeoutSeconds": 0}, headers=world.owner.auth
    )
    assert resp.status == 200, await resp.text()
    assert notebook_of(await body_of(resp))["idleTimeoutSeconds"] == 0

    # Any other timeout past the cap is refused, and nothing of the edit is done.
    for too_long in (3600, 1801):
        resp = await client.patch(
            url, json={"name": "again", "idleTimeoutSeconds": too_long}, headers=world.owner.auth
        )
        await refused(resp, 400, "timeout_not_allowed", "idleTimeoutSeconds")
    row = factory.value(
        "select row(name, idle_timeout_seconds)::text from notebooks where id = %s", world.notebook
    )
    assert row == "(renamed,0)"

    # The cap itself is allowed.
    resp = await client.patch(url, json={"idleTimeoutSeconds": 1800}, headers=world.owner.auth)
    assert notebook_of(await body_of(resp))["idleTimeoutSeconds"] == 1800
    # The detached timeout has no cap here: "never" is still allowed.
    resp = await client.patch(url, json={"detachedTimeoutSeconds": 0}, headers=world.owner.auth)
    assert resp.status == 200, await resp.text()


async def test_org_admins_set_their_new_notebooks_default_timeouts(
    client: TestClient, world: World
) -> None:
    """`defaultIdleTimeoutSeconds` / `defaultDetachedTimeoutSeconds`
    (migration 0028): what a notebook created without a timeout gets, under
    the caps; null goes back to the platform's (1 h, 4 h); a timeout sent
    with the create is the member's own, as before."""
    body = await body_of(await client.get(V1 + "/organization", headers=world.viewer.auth))
    assert (body["defaultIdleTimeoutSeconds"], body["defaultDetachedTimeoutSeconds"]) == (
        None,
        None,
    )
    await refused(
        await set_caps(client, world.owner, defaultIdleTimeoutSeconds=900), 403, "forbidden"
    )
    resp = await set_caps(client, world.admin, defaultIdleTimeoutSeconds=900)
    assert resp.status == 200, await resp.text()
    body = await body_of(resp)
    assert (body["defaultIdleTimeoutSeconds"], body["defaultDetachedTimeoutSeconds"]) == (
        900,
        None,
    )
    item = notebook_of(await body_of(await create(client, world)))
    assert (item["idleTimeoutSeconds"], item["detachedTimeoutSeconds"]) == (900, 14400)
    item = notebook_of(await body_of(await create(client, world, idleTimeoutSeconds=7200)))
    assert item["idleTimeoutSeconds"] == 7200  # the member's own choice, within no cap

    # "Never" as a default, under a cap: the cap.
    await set_caps(client, world.admin, defaultDetachedTimeoutSeconds=0)
    await set_caps(client, world.admin, maxDetachedTimeoutSeconds=28800)
    item = notebook_of(await body_of(await create(client, world)))
    assert (item["idleTimeoutSeconds"], item["detachedTimeoutSeconds"]) == (900, 28800)
    # A cap set after a longer default: the default capped.
    await set_caps(client, world.admin, maxIdleTimeoutSeconds=600)
    item = notebook_of(await body_of(await create(client, world)))
    assert item["idleTimeoutSeconds"] == 600
    # Changing a limit leaves the defaults; null, the platform's again.
    body = await body_of(await set_caps(client, world.admin, maxRunning=5))
    assert (body["defaultIdleTimeoutSeconds"], body["defaultDetachedTimeoutSeconds"]) == (900, 0)
    body = await body_of(
        await client.patch(
            V1 + "/organization",
            json={"defaultIdleTimeoutSeconds": None, "defaultDetachedTimeoutSeconds": None},
            headers=world.admin.auth,
        )
    )
    assert (body["defaultIdleTimeoutSeconds"], body["defaultDetachedTimeoutSeconds"]) == (
        None,
        None,
    )
    item = notebook_of(await body_of(await create(client, world)))
    assert (item["idleTimeoutSeconds"], item["detachedTimeoutSeconds"]) == (600, 14400)
    other = await body_of(await client.get(V1 + "/organization", headers=world.stranger.auth))
    assert other["defaultIdleTimeoutSeconds"] is None


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"defaultIdleTimeoutSeconds": 299}, "out_of_range", "defaultIdleTimeoutSeconds"),
        ({"defaultIdleTimeoutSeconds": 450}, "out_of_range", "defaultIdleTimeoutSeconds"),
        (
            {"defaultDetachedTimeoutSeconds": 604860},
            "out_of_range",
            "defaultDetachedTimeoutSeconds",
        ),
        ({"defaultDetachedTimeoutSeconds": "3600"}, "wrong_type", "defaultDetachedTimeoutSeconds"),
        ({"defaultIdleTimeoutSeconds": True}, "wrong_type", "defaultIdleTimeoutSeconds"),
    ],
)
async def test_bad_defaults_are_refused_and_nothing_changes(
    client: TestClient, world: World, body: dict[str, Any], code: str, field: str
) -> None:
    await refused(await set_caps(client, world.admin, **body), 400, code, field)
    after = await body_of(await client.get(V1 + "/organization", headers=world.admin.auth))
    assert (after["defaultIdleTimeoutSeconds"], after["defaultDetachedTimeoutSeconds"]) == (
        None,
        None,
    )
    assert after["updatedAt"] is None
