"""Images a workload config may name: a well-formed reference, and, when the
operator set NOTEBOOKS_ALLOWED_IMAGES, one of theirs (a tenant's config must
not pull what the platform's pull secrets reach)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_factories import World, body_of

from api.app import create_app
from common.clock import FakeClock
from common.settings import Settings

CONFIGS = "/api/v1/workloads/configs"
ALLOWED = ("registry.example.com/notebooks/", "lakehq/sail")


@pytest.fixture
async def allowing(settings: Settings, clock: FakeClock) -> AsyncIterator[TestClient]:
    only = dataclasses.replace(settings, allowed_images=ALLOWED)
    async with TestClient(TestServer(create_app(only, clock=clock))) as client:
        yield client


@pytest.mark.parametrize(
    "image", ["a\x01b", "x y", "repo/UPPER", "repo:", "-repo", "repo@sha256:zz"]
)
async def test_a_malformed_image_is_refused(client: TestClient, world: World, image: str) -> None:
    body = {"name": "bad image", "sail": {"image": image}}
    resp = await client.post(CONFIGS, json=body, headers=world.admin.auth)
    problem = await body_of(resp)
    assert resp.status == 400 and problem["field"] == "sail.image", problem
    assert problem["code"] == "invalid_value"


@pytest.mark.parametrize(
    "image",
    [
        "registry.example.com/notebooks/sail:0.7.2",
        "registry.example.com/notebooks/team/marimo@sha256:" + "a" * 64,
        "lakehq/sail:0.7.2",
        "lakehq/sail",
    ],
)
async def test_an_allowed_image_is_taken(allowing: TestClient, world: World, image: str) -> None:
    body = {"name": "ok", "marimo": {"image": image}}
    resp = await allowing.post(CONFIGS, json=body, headers=world.admin.auth)
    assert resp.status == 201, await body_of(resp)


@pytest.mark.parametrize(
    "image",
    [
        "registry.example.com/platform/api:1",  # the platform's own, beside the allowed prefix
        "registry.example.com/notebooksx/sail:1",  # a prefix is a whole path segment
        "lakehq/sailor:1",
        "docker.io/lakehq/sail:1",  # compared as written
        "evil.example.com/miner",
    ],
)
async def test_an_image_the_operator_did_not_allow_is_refused(
    allowing: TestClient, world: World, image: str
) -> None:
    created = await allowing.post(CONFIGS, json={"name": "c"}, headers=world.admin.auth)
    assert created.status == 201
    config_id = (await body_of(created))["id"]
    for resp in (
        await allowing.post(
            CONFIGS, json={"name": "d", "sail": {"image": image}}, headers=world.admin.auth
        ),
        await allowing.patch(
            f"{CONFIGS}/{config_id}", json={"sail": {"image": image}}, headers=world.admin.auth
        ),
    ):
        problem = await body_of(resp)
        assert resp.status == 400 and problem["code"] == "image_not_allowed", problem
        assert (
            problem["field"] == "sail.image"
            and "registry.example.com/notebooks/" in problem["detail"]
        )


async def test_the_allowed_images_are_told_to_admins_only(
    allowing: TestClient, world: World
) -> None:
    body = {"name": "d", "sail": {"image": "evil.example.com/miner"}}
    for resp in (
        await allowing.post(CONFIGS, json=body, headers=world.editor.auth),
        await allowing.patch(f"{CONFIGS}/{world.config}", json=body, headers=world.editor.auth),
    ):
        problem = await body_of(resp)
        assert resp.status == 403 and problem["code"] == "forbidden", problem
        assert "registry.example.com" not in problem["detail"]
