"""Searching notebooks' code (`GET /workloads/code-search?q=`, docs/api.md
"Searching notebooks' code"): the newest kept copy of each notebook the
caller may see, case-insensitively, as written (not a pattern), with the
first matching line and how many lines match; nobody finds what they may
not see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused

from api import code_search

V1 = "/api/v1"
SEARCH = V1 + "/workloads/code-search"

CODE = """import marimo

app = marimo.App()


@app.cell
def _(spark):
    orders = spark.table("sales.Orders_2026")
    return (orders,)


@app.cell
def _(orders):
    orders.groupBy("region").count()  # from SALES.orders_2026
    return
"""


def keep(factory: Factory, notebook: str, content: str, minutes_ago: int = 5) -> None:
    """A version of its file, as the reconciler keeps it."""
    factory.conn.execute(
        "insert into notebook_files (notebook_id, content, kept_at, session_id)"
        " values (%s, %s, %s, 'S1')",
        (notebook, content, factory.clock.now() - timedelta(minutes=minutes_ago)),
    )


async def search(client: TestClient, who: object, q: str) -> dict:
    resp = await client.get(SEARCH, params={"q": q}, headers=who.auth)  # type: ignore[attr-defined]
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    return dict(await body_of(resp))


async def test_whoever_sees_a_notebook_finds_text_in_its_code(
    client: TestClient, world: World, factory: Factory
) -> None:
    keep(factory, world.notebook, "old = 'sales.orders_2026'\n", minutes_ago=60)
    keep(factory, world.notebook, CODE)  # the newest: the one searched
    found = await search(client, world.viewer, "sales.orders_2026")
    assert found == {
        "q": "sales.orders_2026",
        "more": False,
        "partial": False,
        "searched": 1,
        "items": [
            {
                "notebookId": world.notebook,
                "name": f"nb {world.notebook}",
                "keptAt": "2026-11-01T11:55:00+00:00",
                "line": 8,
                "text": '    orders = spark.table("sales.Orders_2026")',
                "lines": 2,
            }
        ],
    }
    # Every role that sees it; nobody else, in this organization or another.
    for who in (world.owner, world.admin, world.team_admin, world.editor):
        assert [i["notebookId"] for i in (await search(client, who, "ORDERS_2026"))["items"]] == [
            world.notebook
        ]
    for who in (world.outsider, world.stranger):
        assert (await search(client, who, "orders_2026"))["items"] == []
    # As written: `%`, `_` and regular expressions mean themselves.
    assert (await search(client, world.owner, "sales%orders"))["items"] == []
    assert (await search(client, world.owner, "sales.orders.2026"))["items"] == []
    assert (await search(client, world.owner, 'groupBy("region")'))["items"][0]["line"] == 14
    # An older version's text is not the notebook's now.
    assert (await search(client, world.owner, "old = "))["items"] == []


async def test_many_matches_say_there_are_more_and_bad_asks_are_refused(
    client: TestClient, world: World, factory: Factory
) -> None:
    for i in range(52):
        nb = factory.notebook(world.owner, world.config)
        keep(factory, nb, f"x = {i}\nneedle = {i}\n", minutes_ago=i)
    deleted = factory.notebook(world.owner, world.config)
    keep(factory, deleted, "needle\n")
    factory.conn.execute("update notebooks set deleted_at = now() where id = %s", (deleted,))
    found = await search(client, world.owner, "needle")
    assert found["more"] is True and len(found["items"]) == 50
    assert [i["text"] for i in found["items"][:2]] == ["needle = 0", "needle = 1"]  # newest first
    assert deleted not in {i["notebookId"] for i in found["items"]}
    long_line = "y" * 500 + "needle2"
    nb = factory.notebook(world.owner, world.config)
    keep(factory, nb, long_line)
    [hit] = (await search(client, world.owner, "needle2"))["items"]
    assert hit["text"] == "y" * 60 + "needle2" and hit["line"] == 1  # from a little before
    for params, code in (
        ({}, "validation_failed"),
        ({"q": "x"}, "validation_failed"),
        ({"q": "  "}, "validation_failed"),
        ({"q": "a" * 201}, "validation_failed"),
        ({"q": "two\nlines"}, "validation_failed"),
        ({"q": "ok", "limit": "5"}, "unknown_parameter"),
    ):
        resp = await client.get(SEARCH, params=params, headers=world.owner.auth)
        await refused(resp, 400, code)
    await refused(await client.get(SEARCH, params={"q": "needle"}), 401, "unauthorized")


async def test_a_notebook_brought_as_a_file_is_found_before_its_first_run(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.post(
        V1 + "/workloads/notebooks",
        json={
            "name": "brought",
            "workloadConfigId": world.config,
            "source": {"format": "py", "content": CODE},
        },
        headers=world.owner.auth,
    )
    assert resp.status == 201, await resp.text()
    notebook = (await body_of(resp))["item"]["notebookId"]
    [hit] = (await search(client, world.owner, "groupBy"))["items"]
    assert (hit["notebookId"], hit["keptAt"]) == (notebook, "2026-11-01T12:00:00+00:00")


async def test_lines_are_found_as_written_whatever_their_ends(
    client: TestClient, world: World, factory: Factory
) -> None:
    keep(factory, world.notebook, "needle first\r\nx = 1\r\nneedle, needle again\r\n")
    [hit] = (await search(client, world.owner, "NEEDLE"))["items"]
    # At the very start, a CRLF file's line without its CR; two on one line: one line.
    assert (hit["line"], hit["text"], hit["lines"]) == (1, "needle first", 2)
    # A share removed: no longer found by that team's members.
    factory.conn.execute("delete from notebook_teams where notebook_id = %s", (world.notebook,))
    assert (await search(client, world.viewer, "needle"))["items"] == []


async def test_a_search_is_bounded_in_bytes_and_in_searches_at_once(
    client: TestClient, world: World, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        nb = factory.notebook(world.owner, world.config)
        keep(factory, nb, "needle\n" + "x" * 1000, minutes_ago=i)
    monkeypatch.setattr(code_search, "MAX_BYTES", 2500)
    found = await search(client, world.owner, "needle")
    # The two most recently kept (2,014 bytes); the third would pass the budget.
    assert (found["partial"], found["searched"], len(found["items"])) == (True, 2, 2)
    monkeypatch.setattr(code_search, "_running", code_search.at_once(10))  # the test pool's
    resp = await client.get(SEARCH, params={"q": "needle"}, headers=world.owner.auth)
    problem = await refused(resp, 503, "search_busy")
    assert resp.headers["Retry-After"] == "1"
    assert "in a moment" in problem["detail"]
