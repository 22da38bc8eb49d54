"""A workload config's secret environment (`secretEnv`, docs/api.md "Secret
environment"): org admins write it, nobody reads a value back (every
answer names the variables only), an edit sets or removes one variable
at a time, and the whole environment keeps the env rules. That the values
reach Sail and Marimo is tests/integration/reconciler/test_reconciler_through_api.py;
on Kubernetes, tests/unit/kubernetes/test_k8s_env.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused

V1 = "/api/v1"
CONFIGS = V1 + "/workloads/configs"
SECRET = "s3cr3t-value-nobody-reads"


async def create(client: TestClient, world: World, **fields: Any) -> Any:
    return await client.post(
        CONFIGS, json={"name": "warehouse", **fields}, headers=world.admin.auth
    )


def stored(factory: Factory, config_id: str) -> Any:
    return factory.value("select secret_env from workload_configs where id = %s", config_id)


async def test_the_values_are_written_and_never_read_back(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await create(
        client, world, env={"TZ": "UTC"}, secretEnv={"WAREHOUSE_PASSWORD": SECRET, "A_KEY": "k"}
    )
    assert resp.status == 201, await resp.text()
    text = await resp.text()
    assert SECRET not in text
    config = json.loads(text)
    assert config["secretEnvNames"] == ["A_KEY", "WAREHOUSE_PASSWORD"]
    assert config["env"] == {"TZ": "UTC"}
    assert stored(factory, config["id"]) == {"WAREHOUSE_PASSWORD": SECRET, "A_KEY": "k"}

    # Nor through any read: the config, the list, a notebook's included config,
    # for its admins or any member.
    nb = factory.notebook(world.owner, config["id"])
    for who in (world.admin, world.owner):
        for url in (
            f"{CONFIGS}/{config['id']}",
            CONFIGS,
            f"{V1}/workloads/notebooks/{nb}",
            f"{V1}/workloads/notebooks",
        ):
            resp = await client.get(url, headers=who.auth)
            assert resp.status == 200, url
            text = await resp.text()
            assert SECRET not in text and "WAREHOUSE_PASSWORD" in text, url
    # A config without one says so with an empty list.
    listed = await body_of(await client.get(CONFIGS, headers=world.owner.auth))
    plain = next(c for c in listed["items"] if c["id"] == world.config)
    assert plain["secretEnvNames"] == []


async def test_an_edit_sets_and_removes_one_variable_at_a_time(
    client: TestClient, world: World, factory: Factory
) -> None:
    config = await body_of(await create(client, world, secretEnv={"OLD": "1", "KEEP": "2"}))
    url = f"{CONFIGS}/{config['id']}"
    resp = await client.patch(
        url,
        json={"secretEnv": {"OLD": None, "NEW": "3", "ABSENT": None}},
        headers=world.admin.auth,
    )
    assert resp.status == 200, await resp.text()
    assert (await body_of(resp))["secretEnvNames"] == ["KEEP", "NEW"]
    assert stored(factory, config["id"]) == {"KEEP": "2", "NEW": "3"}
    # An edit without it keeps it; a value replaces one.
    await client.patch(url, json={"description": "d"}, headers=world.admin.auth)
    await client.patch(url, json={"secretEnv": {"KEEP": "4"}}, headers=world.admin.auth)
    assert stored(factory, config["id"]) == {"KEEP": "4", "NEW": "3"}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"secretEnv": {"SAIL_MODE": "local"}}, "reserved_name", "secretEnv.SAIL_MODE"),
        ({"secretEnv": {"spark_remote": "sc://x"}}, "reserved_name", "secretEnv.spark_remote"),
        ({"secretEnv": {"1X": "y"}}, "invalid_value", "secretEnv.1X"),
        ({"secretEnv": {"X": 1}}, "wrong_type", "secretEnv.X"),
        ({"secretEnv": {"X": None}}, "wrong_type", "secretEnv.X"),  # null only removes, in an edit
        ({"secretEnv": {"X": "a\u0000b"}}, "invalid_value", "secretEnv.X"),
        ({"secretEnv": {"X": "x" * 4097}}, "invalid_length", "secretEnv.X"),
        ({"secretEnv": ["X"]}, "wrong_type", "secretEnv"),
        ({"env": {"X": "a"}, "secretEnv": {"X": "b"}}, "invalid_value", "secretEnv.X"),
        (
            {"env": {"A": "x" * 4000}, "secretEnv": {f"S{i}": "x" * 4000 for i in range(8)}},
            "out_of_range",
            "secretEnv",
        ),
    ],
)
async def test_a_bad_secret_environment_is_refused_at_create(
    client: TestClient,
    world: World,
    factory: Factory,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    before = factory.value("select count(*) from workload_configs")
    await refused(await create(client, world, **body), 400, code, field)
    assert factory.value("select count(*) from workload_configs") == before


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        # the env now names a secret variable: one or the other
        ({"env": {"TOKEN": "plain"}}, "invalid_value", "secretEnv.TOKEN"),
        ({"secretEnv": {"TZ": "UTC"}}, "invalid_value", "secretEnv.TZ"),
        ({"secretEnv": {"X": 5}}, "wrong_type", "secretEnv.X"),
        ({"secretEnv": {"HOME": "/root"}}, "reserved_name", "secretEnv.HOME"),
        # together past 32 KiB, though each alone fits
        ({"secretEnv": {f"S{i}": "x" * 4000 for i in range(8)}}, "out_of_range", "secretEnv"),
    ],
)
async def test_a_bad_edit_is_refused_and_changes_nothing(
    client: TestClient,
    world: World,
    factory: Factory,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    config = await body_of(
        await create(client, world, env={"TZ": "UTC", "BIG": "x" * 4000}, secretEnv={"TOKEN": "t"})
    )
    url = f"{CONFIGS}/{config['id']}"
    await refused(await client.patch(url, json=body, headers=world.admin.auth), 400, code, field)
    assert stored(factory, config["id"]) == {"TOKEN": "t"}
    after = await body_of(await client.get(url, headers=world.admin.auth))
    assert after["env"] == {"TZ": "UTC", "BIG": "x" * 4000}


async def test_only_org_admins_write_it(client: TestClient, world: World, factory: Factory) -> None:
    resp = await client.patch(
        f"{CONFIGS}/{world.config}", json={"secretEnv": {"X": "y"}}, headers=world.owner.auth
    )
    await refused(resp, 403, "forbidden")
    assert stored(factory, world.config) == {}


async def test_an_older_config_with_a_platform_name_can_still_be_edited(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A row from before the reserved-name rule (the runtimes drop the name)
    is not refused for what the edit does not set."""
    factory.value(
        'update workload_configs set env = \'{"HOME": "/root", "TZ": "UTC"}\''
        " where id = %s returning id",
        world.config,
    )
    url = f"{CONFIGS}/{world.config}"
    for body in ({"description": "kept"}, {"secretEnv": {"DB_PASSWORD": "p"}}):
        resp = await client.patch(url, json=body, headers=world.admin.auth)
        assert resp.status == 200, await resp.text()
    # what an edit sets is checked still
    resp = await client.patch(url, json={"env": {"HOME": "/x"}}, headers=world.admin.auth)
    await refused(resp, 400, "reserved_name", "env.HOME")


async def test_merge_patches_cannot_add_up_past_64_secret_variables(
    client: TestClient, world: World, factory: Factory
) -> None:
    config = await body_of(await create(client, world, secretEnv={f"A{i}": "v" for i in range(60)}))
    url = f"{CONFIGS}/{config['id']}"
    resp = await client.patch(
        url, json={"secretEnv": {f"B{i}": "v" for i in range(4)}}, headers=world.admin.auth
    )
    assert resp.status == 200, await resp.text()
    resp = await client.patch(url, json={"secretEnv": {"ONE_MORE": "v"}}, headers=world.admin.auth)
    await refused(resp, 400, "out_of_range", "secretEnv")
    assert len(stored(factory, config["id"])) == 64
