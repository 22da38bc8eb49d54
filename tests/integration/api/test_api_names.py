"""Names and emails as the API stores them: nothing blank or invisible at
either end, one Unicode form, no control characters in an email, and the
same conflict code however two requests for one name interleave."""

from __future__ import annotations

import asyncio
import unicodedata

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, until_waiting_on_locks

from common.settings import Settings

V1 = "/api/v1"


@pytest.mark.parametrize(
    "name",
    [
        "data ",  # a trailing space makes it look like "data"
        " data",
        "data\u200b",  # zero-width space
        "\u200fdata",  # right-to-left mark
        "data\u2066",  # a bidi isolate
        "\u180e",  # Mongolian vowel separator: blank on its own
        "\u034f",  # combining grapheme joiner
        "\u3164",  # Hangul filler
        "\u2800",  # Braille blank
        "da\nta",
        "da\u2028ta",  # a line separator breaks the line inside too
    ],
)
async def test_names_blank_or_invisible_at_an_end_are_refused(
    client: TestClient, world: World, name: str
) -> None:
    resp = await client.post(V1 + "/teams", json={"name": name}, headers=world.admin.auth)
    problem = await body_of(resp)
    assert resp.status == 400, problem
    assert problem["code"] == "invalid_value" and problem["field"] == "name"


@pytest.mark.parametrize("name", ["da ta", "a\u200db", "\u2764\ufe0f", "Ünïcödé", "x"])
async def test_names_with_joiners_and_marks_inside_are_kept(
    client: TestClient, world: World, name: str
) -> None:
    resp = await client.post(V1 + "/teams", json={"name": name}, headers=world.admin.auth)
    assert resp.status == 201 and (await body_of(resp))["name"] == name


async def test_a_name_is_one_name_in_either_unicode_form(client: TestClient, world: World) -> None:
    decomposed = "e\u0301quipe"
    resp = await client.post(V1 + "/teams", json={"name": decomposed}, headers=world.admin.auth)
    assert resp.status == 201
    assert (await body_of(resp))["name"] == "\u00e9quipe"  # stored composed (NFC)
    composed = await client.post(
        V1 + "/teams",
        json={"name": unicodedata.normalize("NFC", decomposed)},
        headers=world.admin.auth,
    )
    assert composed.status == 409 and (await body_of(composed))["code"] == "team_name_taken"


@pytest.mark.parametrize(
    "email", ["a\x1b[31m@x.io", "a\x07@x.io", "a\u202e@x.io", "a\ufeff@x.io", "a\u200b@x.io"]
)
async def test_emails_with_control_or_invisible_characters_are_refused(
    client: TestClient, world: World, email: str
) -> None:
    body = {"email": email, "name": "Eve"}
    resp = await client.post(V1 + "/members", json=body, headers=world.admin.auth)
    problem = await body_of(resp)
    assert resp.status == 400 and problem["field"] == "email", problem


async def test_a_config_renamed_to_a_name_being_taken_gets_the_names_code(
    client: TestClient, world: World, factory: Factory, settings: Settings
) -> None:
    """Another rename to "X" is in flight (uncommitted) when this one checks
    the name: the check sees it free, the write waits on the unique index and
    then fails; the answer is the check's own code, not a generic one."""
    first, second = factory.config(world.org), factory.config(world.org)
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction():
        await holder.execute("update workload_configs set name = 'X' where id = %s", (first,))
        racing = asyncio.ensure_future(
            client.patch(
                f"{V1}/workloads/configs/{second}",
                json={"name": "X"},
                headers=world.admin.auth,
            )
        )
        await until_waiting_on_locks(factory, 1, racing, "the rename did not wait")
    resp = await racing
    problem = await body_of(resp)
    assert resp.status == 409 and problem["code"] == "config_name_taken", problem
    assert problem["field"] == "name"


async def test_a_name_is_taken_however_it_is_capitalised(
    client: TestClient, world: World, factory: Factory
) -> None:
    assert (
        await client.post(V1 + "/teams", json={"name": "Quants"}, headers=world.admin.auth)
    ).status == 201
    again = await client.post(V1 + "/teams", json={"name": "qUANTS"}, headers=world.admin.auth)
    assert again.status == 409 and (await body_of(again))["code"] == "team_name_taken"
    configs = V1 + "/workloads/configs"
    first = await body_of(
        await client.post(configs, json={"name": "Huge"}, headers=world.admin.auth)
    )
    second = await body_of(
        await client.post(configs, json={"name": "Tiny"}, headers=world.admin.auth)
    )
    taken = await client.post(configs, json={"name": "HUGE"}, headers=world.admin.auth)
    assert taken.status == 409 and (await body_of(taken))["code"] == "config_name_taken"
    renamed = await client.patch(
        f"{configs}/{second['id']}", json={"name": "huge"}, headers=world.admin.auth
    )
    assert renamed.status == 409 and (await body_of(renamed))["code"] == "config_name_taken"
    own = await client.patch(
        f"{configs}/{first['id']}", json={"name": "HUGE"}, headers=world.admin.auth
    )
    assert own.status == 200 and (await body_of(own))["name"] == "HUGE"  # its own name, recased


async def test_a_name_is_measured_in_the_form_it_is_stored_in(
    client: TestClient, world: World
) -> None:
    """NFC lengthens some text: U+0958 (a composition exclusion) is stored as
    two code points, so 128 of them would store 256 past the limit."""
    long = await client.post(V1 + "/teams", json={"name": "\u0958" * 128}, headers=world.admin.auth)
    problem = await body_of(long)
    assert long.status == 400, problem
    assert (problem["code"], problem["field"]) == ("invalid_length", "name")
    fits = await client.post(V1 + "/teams", json={"name": "\u0958" * 64}, headers=world.admin.auth)
    assert fits.status == 201
    assert len((await body_of(fits))["name"]) == 128
