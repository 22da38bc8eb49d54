"""The notebook lists, describe and history at the scale they are built for
(tests/scale_seed.py: 50k notebooks, 5k members, 500 teams, 1M history rows):
the plans PostgreSQL makes of the real named queries, custom and generic
(psycopg prepares a statement after five uses), read from an index instead of
every notebook of the org, and the API still answers exactly what a plain
reference query says it should."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg.rows import dict_row
from scale_seed import (
    ADMIN,
    ADMIN2,
    LONG_HISTORY,
    MEMBER,
    NOTEBOOK,
    ORG,
    ORG2,
    TEAM,
    explain,
    index_names,
    largest_sort,
    rows_removed,
    scans,
    subplan,
)

from api.app import create_app
from api.usage import HELD
from common.clock import FakeClock
from common.db import open_pool
from common.settings import Settings
from common.tokens import hash_token, new_token, token_prefix
from sql import QUERIES_DIR, fragment, parse_blocks, query

NB = "/api/v1/workloads/notebooks"
LIMIT = 100
PAGE = {"limit": LIMIT, "fetch": LIMIT + 1, "after_at": None, "after_id": None}
PLANS = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])


def page_params(member: str, *, see_all: bool, team: str | None = None, **more: Any) -> dict:
    return {
        "org_id": ORG,
        "member_id": member,
        "see_all": see_all,
        "team_id": team,
        "notebook_id": None,
        "st": None,
        "q": None,
        **PAGE,
        **more,
    }


def assert_no_jit(scale_conn: psycopg.Connection[Any], plan: dict[str, Any]) -> None:
    """Not compiled, nor costed where PostgreSQL's defaults would compile it
    (the old member list, about 950,000, cost 0.6 s of JIT per request)."""
    assert "JIT" not in plan
    above = scale_conn.execute("select current_setting('jit_above_cost')::float8").fetchone()
    assert above is not None
    assert plan["Plan"]["Total Cost"] < min(above[0], 100_000)


@PLANS
def test_member_list_is_built_from_the_members_side(scale_conn, generic: bool) -> None:
    params = page_params(MEMBER, see_all=False)
    plan = explain(scale_conn, "api_notebook_page_member", params, generic=generic)
    used = index_names(plan["Plan"])
    assert {"notebooks_member_order", "team_memberships_member", "notebook_teams_team"} <= used
    assert "notebooks_org_order" not in used
    assert not [n for n in scans(plan["Plan"], "notebooks") if n["Node Type"] == "Seq Scan"]
    # The member sees 211 of 49,000: nothing near the org is read, filtered or sorted.
    assert rows_removed(plan["Plan"]) < 100
    assert largest_sort(plan["Plan"]) < 500
    assert_no_jit(scale_conn, plan)


@PLANS
def test_admin_list_pages_straight_off_the_org_index(scale_conn, generic: bool) -> None:
    first = scale_conn.execute(
        "select created_at, id from notebooks where organization_id = %s and deleted_at is null"
        " order by created_at desc, id desc offset 20000 limit 1",
        (ORG,),
    ).fetchone()
    assert first is not None
    for after in ({}, {"after_at": first[0], "after_id": first[1]}):
        params = page_params(ADMIN, see_all=True, **after)
        plan = explain(scale_conn, "api_notebook_page_org", params, generic=generic)
        keys = subplan(plan["Plan"], "CTE keys")
        read = scans(keys, "notebooks")
        assert {n.get("Index Name") for n in read if n["Actual Rows"]} == {"notebooks_org_order"}
        assert sum(n["Actual Rows"] for n in read) <= LIMIT + 1
        assert rows_removed(keys) == 0
        # No sort of the org's notebooks anywhere; `total` is a count (one
        # pass over the org, nothing kept).
        assert largest_sort(plan["Plan"]) <= LIMIT + 1
        assert_no_jit(scale_conn, plan)


@PLANS
def test_team_list_reads_the_teams_index(scale_conn, generic: bool) -> None:
    params = page_params(ADMIN, see_all=True, team=TEAM)
    plan = explain(scale_conn, "api_notebook_page_team", params, generic=generic)
    used = index_names(plan["Plan"])
    assert "notebook_teams_team" in used and "notebooks_org_order" not in used
    assert not [n for n in scans(plan["Plan"], "notebooks") if n["Node Type"] == "Seq Scan"]
    assert rows_removed(plan["Plan"]) < 100
    assert largest_sort(plan["Plan"]) < 500  # the team's 202, not the org's 49,000
    assert_no_jit(scale_conn, plan)


@PLANS
@pytest.mark.parametrize("see_all", [True, False], ids=["org-admin", "member"])
def test_owner_list_reads_the_owners_index(scale_conn, generic: bool, see_all: bool) -> None:
    """`?owner=`: one member's notebooks off notebooks_member_order, never the org's."""
    params = page_params(ADMIN if see_all else MEMBER, see_all=see_all, owner_id=MEMBER)
    plan = explain(scale_conn, "api_notebook_page_owner", params, generic=generic)
    used = index_names(plan["Plan"])
    assert "notebooks_member_order" in used and "notebooks_org_order" not in used
    assert not [n for n in scans(plan["Plan"], "notebooks") if n["Node Type"] == "Seq Scan"]
    assert rows_removed(plan["Plan"]) < 100
    assert largest_sort(plan["Plan"]) < 500
    assert_no_jit(scale_conn, plan)


@PLANS
def test_history_page_reads_backwards_from_the_marker(scale_conn, generic: bool) -> None:
    """A notebook with 20,020 history rows: the page reads its 101 rows off
    an index, backwards from the marker; only `total` counts them all."""
    newest = scale_conn.execute(
        "select id from notebook_events where notebook_id = %s"
        " order by id desc offset 5000 limit 1",
        (LONG_HISTORY,),
    ).fetchone()
    assert newest is not None
    for after_id in (None, newest[0]):
        params = event_params(after_id, notebook_id=LONG_HISTORY)
        plan = explain(scale_conn, "api_notebook_events", params, generic=generic)
        read = scans(subplan(plan["Plan"], "CTE keys"), "notebook_events")
        assert read and all(n.get("Scan Direction") == "Backward" for n in read)
        assert sum(n["Actual Rows"] for n in read) <= LIMIT + 1
        assert_no_jit(scale_conn, plan)


def event_params(after_id: int | None, **more: Any) -> dict[str, Any]:
    return {
        "org_id": ORG,
        "notebook_id": None,
        "actor": None,
        "with_notebooks": True,
        "count_up_to": 10_001,
        "after_id": after_id,
        "limit": LIMIT,
        "fetch": LIMIT + 1,
        **more,
    }


@PLANS
@pytest.mark.parametrize(
    ("statement", "actor"),
    [
        ("api_org_events", None),
        ("api_org_events_by_actor", "reconciler"),
        ("api_org_events_by_actor", MEMBER),
        ("api_org_events_by_actor", "M09999"),
    ],
    ids=["everyone", "platform", "member", "idle-member"],
)
def test_the_activity_reads_a_page_not_the_organizations_history(
    scale_conn, generic: bool, statement: str, actor: str | None
) -> None:
    """The organization's 980,000 events: a page of the activity reads its
    101 off an index, backwards from the marker, whoever the actor: the
    platform (half of them), a member (about 100), or one who did nothing
    (which an id-ordered scan filtering on the actor would look for through
    every event)."""
    middle = scale_conn.execute(
        "select id from notebook_events where organization_id = %s"
        " order by id desc offset 500000 limit 1",
        (ORG,),
    ).fetchone()
    assert middle is not None
    for after_id in (None, middle[0]):
        plan = explain(scale_conn, statement, event_params(after_id, actor=actor), generic=generic)
        keys = subplan(plan["Plan"], "CTE keys")
        read = scans(keys, "notebook_events")
        assert read and all(n.get("Scan Direction") == "Backward" for n in read)
        assert sum(n["Actual Rows"] for n in read) <= LIMIT + 1
        # What it reads and drops: ORG2's events among ORG's, or other
        # actors' among the platform's; never the history at large.
        assert rows_removed(keys) <= 2 * LIMIT
        # `total`: a count apart, of 10,001 at most (api/history.py TOTAL_CAP),
        # not of the organization's history.
        counted = [n for n in scans(plan["Plan"], "notebook_events") if n not in read]
        assert counted and sum(n["Actual Rows"] for n in counted) <= 10_001
        assert largest_sort(plan["Plan"]) <= LIMIT + 1
        assert_no_jit(scale_conn, plan)


@PLANS
@pytest.mark.parametrize(
    ("begins", "ends", "probes"),
    [
        # A day of the history (about 84,000 events, one a second): every
        # notebook's status unchanged since before it (the seed's changes
        # are all on March 1st), so none is looked up.
        (datetime(2025, 3, 5, tzinfo=UTC), datetime(2025, 3, 6, tzinfo=UTC), False),
        # An hour of March 1st: 3,600 events, and the 60 % of the notebooks
        # whose status changed since 6 o'clock are looked up, one probe each.
        (datetime(2025, 3, 1, 6, tzinfo=UTC), datetime(2025, 3, 1, 7, tzinfo=UTC), True),
    ],
    ids=["day", "hour"],
)
def test_usage_reads_the_windows_events_and_one_event_per_changed_notebook(
    scale_conn, generic: bool, begins: datetime, ends: datetime, probes: bool
) -> None:
    """The window's events come off notebook_events_org_time; a notebook's
    status as the window opens is its status now when unchanged since, else
    one probe of notebook_events_notebook_time; nothing reads the whole
    history."""
    params = {"org_id": ORG, "from": begins, "until": ends, "top": 100, "held": HELD, "owner": None}
    plan = explain(scale_conn, "api_org_usage", params, generic=generic)
    read = scans(plan["Plan"], "notebook_events")
    assert read and not [n for n in read if n["Node Type"] == "Seq Scan"], read
    assert "notebook_events_org_time" in index_names(plan["Plan"])
    window = scale_conn.execute(
        "select count(*) from notebook_events where organization_id = %s"
        " and created_at >= %s and created_at < %s",
        (ORG, begins, ends),
    ).fetchone()
    changed = scale_conn.execute(
        "select count(*) from notebooks where organization_id = %s and status_changed_at >= %s",
        (ORG, begins),
    ).fetchone()
    assert window is not None and changed is not None
    assert (changed[0] > 20_000) == probes
    probed = [n for n in read if n.get("Index Name") == "notebook_events_notebook_time"]
    assert sum(n["Actual Loops"] for n in probed) == (changed[0] if probes else 0)
    # The window's events once, and a row or two per probe; never the history.
    rows = sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in read)
    assert rows <= window[0] + 2 * changed[0] + 1000
    # Not assert_no_jit: 29,000 probes cost past jit_above_cost, and the
    # services' connections run without JIT (the test below).


@PLANS
def test_a_members_usage_reads_their_notebooks_events_not_the_organizations(
    scale_conn, generic: bool
) -> None:
    """GET /me/usage: the member's notebooks and tombstones by owner, then
    each one's window of events off notebook_events_notebook_time; nothing
    of the organization's is read."""
    begins, ends = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
    params = {
        "org_id": ORG,
        "from": begins,
        "until": ends,
        "top": 100,
        "held": HELD,
        "owner": MEMBER,
    }
    plan = explain(scale_conn, "api_member_usage", params, generic=generic)
    read = scans(plan["Plan"], "notebook_events")
    assert read and not [n for n in read if n["Node Type"] == "Seq Scan"], read
    assert "notebook_events_org_time" not in index_names(plan["Plan"])
    assert "notebook_events_notebook_time" in index_names(plan["Plan"])
    # Their notebooks and tombstones by owner, never the organization's.
    # (The seed deletes none for good: its tombstones' table is empty.)
    assert "notebooks_member_order" in index_names(plan["Plan"])
    found = scans(plan["Plan"], "notebooks")
    assert not [n for n in found if n["Node Type"] == "Seq Scan"], found
    assert sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in found) <= 1000, found
    owned = scale_conn.execute(
        "select count(*) from notebooks where member_id = %s", (MEMBER,)
    ).fetchone()
    theirs = scale_conn.execute(
        "select count(*) from notebook_events e join notebooks n on n.id = e.notebook_id"
        " where n.member_id = %s",
        (MEMBER,),
    ).fetchone()
    assert owned is not None and theirs is not None and owned[0] > 0
    rows = sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in read)
    assert rows <= theirs[0] + 2 * owned[0] + 10, (rows, theirs, owned)


def test_config_in_use_and_its_foreign_key_use_the_index(scale_conn, scale_url: str) -> None:
    """api_config_in_use asks about deleted notebooks too, and so does the
    foreign-key check of a config's delete: neither reads every notebook."""
    scale_conn.execute(
        "insert into workload_configs (id, organization_id, name) values ('C99', %s, 'unused')",
        (ORG,),
    )
    plan = explain(scale_conn, "api_config_in_use", {"config_id": "C99"})
    assert index_names(plan["Plan"]) == {"notebooks_config"}
    assert not [n for n in scans(plan["Plan"], "notebooks") if n["Node Type"] == "Seq Scan"]

    # Statistics land in shared memory when a backend flushes them: this
    # one's pending counts first, then a session of its own for the delete.
    scale_conn.execute("select pg_stat_force_next_flush()")
    scale_conn.execute("select 1")
    with psycopg.connect(scale_url, autocommit=True) as own:

        def seq_scans() -> int:
            own.execute("select pg_stat_clear_snapshot()")
            row = own.execute(
                "select seq_scan from pg_stat_user_tables where relname = 'notebooks'"
            ).fetchone()
            assert row is not None
            return int(row[0])

        before = seq_scans()
        own.execute("delete from workload_configs where id = 'C99'")
        own.execute("select pg_stat_force_next_flush()")
        own.execute("select 1")  # flushed as this statement ends
        assert seq_scans() == before


def test_member_pages_have_indexes_in_their_order(scale_conn) -> None:
    """api_member_page and api_team_member_page filter and order by these."""
    defs = dict(
        scale_conn.execute(
            "select indexname, indexdef from pg_indexes"
            " where indexname in ('members_org_order', 'team_memberships_team_order')"
        ).fetchall()
    )
    assert defs == {
        "members_org_order": "CREATE INDEX members_org_order ON public.members USING btree"
        " (organization_id, created_at DESC, id DESC) WHERE (disabled_at IS NULL)",
        "team_memberships_team_order": "CREATE INDEX team_memberships_team_order"
        " ON public.team_memberships USING btree (team_id, created_at DESC, member_id DESC)",
    }


@PLANS
def test_a_filtered_admin_page_still_reads_the_org_index_in_order(
    scale_conn, generic: bool
) -> None:
    """`?status=` (docs/api.md): no plan walks or sorts the organization. The
    generic plan reads the org index in order, skipping what it does not
    keep; a custom one may fetch just the kept rows by the status index and
    sort those (here 590 of 49,000)."""
    statuses = ["failed", "running"]
    params = page_params(ADMIN, see_all=True, st=statuses)
    plan = explain(scale_conn, "api_notebook_page_org", params, generic=generic)
    kept = scale_conn.execute(
        "select count(*) from notebooks where organization_id = %s and deleted_at is null"
        " and status = any(%s)",
        (ORG, statuses),
    ).fetchone()[0]
    assert 0 < kept < 1000
    read = scans(subplan(plan["Plan"], "CTE keys"), "notebooks")
    assert read and all(n.get("Index Name") for n in read), read  # no sequential scan
    assert sum(n["Actual Rows"] for n in read) <= kept
    assert largest_sort(plan["Plan"]) <= max(kept, LIMIT + 1)


@PLANS
@pytest.mark.parametrize("page", ["api_notebook_page_org", "api_notebook_page_member"])
def test_a_name_search_reads_the_same_index_and_sorts_no_more_than_a_page(
    scale_conn, generic: bool, page: str
) -> None:
    """`?q=` (docs/api.md): a filter in the same statements, off the same
    indexes; nothing sorts the organization's notebooks."""
    org = page.endswith("org")
    params = page_params(ADMIN if org else MEMBER, see_all=org, q="7")
    plan = explain(scale_conn, page, params, generic=generic)
    # The page's keys (an org admin's `total` counts the org's, searched or not).
    read = scans(subplan(plan["Plan"], "CTE keys") if org else plan["Plan"], "notebooks")
    assert read and not [n for n in read if n["Node Type"] == "Seq Scan"], read
    assert ("notebooks_org_order" in index_names(plan["Plan"])) == org
    # The member's search reads what the member sees (211), not the org.
    assert org or rows_removed(plan["Plan"]) < 500
    assert largest_sort(plan["Plan"]) <= 1000
    assert_no_jit(scale_conn, plan)


@PLANS
def test_the_members_page_comes_off_its_index(scale_conn, generic: bool) -> None:
    """4,900 members: the page reads its 101 off members_org_order in order;
    only `total` counts them all, and nothing sorts them."""
    params = {"org_id": ORG, "member_id": None, "q": None, **PAGE}
    plan = explain(scale_conn, "api_member_page", params, generic=generic)
    assert "members_org_order" in index_names(plan["Plan"])
    assert largest_sort(plan["Plan"]) <= LIMIT + 1
    assert_no_jit(scale_conn, plan)


@PLANS
def test_a_teams_members_page_comes_off_its_index(scale_conn, generic: bool) -> None:
    """Its keyset page (the plain lists' fragment, keyed by member) reads the
    team's memberships off team_memberships_team_order, in order."""
    params = {"team_id": TEAM, **PAGE}
    plan = explain(scale_conn, "api_team_member_page", params, generic=generic)
    assert "team_memberships_team_order" in index_names(plan["Plan"])
    assert not [n for n in scans(plan["Plan"], "team_memberships") if n["Node Type"] == "Seq Scan"]
    assert_no_jit(scale_conn, plan)


async def test_the_services_connections_run_without_jit(scale_url: str) -> None:
    pool = await open_pool(
        scale_url + "&options=-c%20TimeZone%3DUTC", min_size=1, statement_timeout_seconds=7
    )
    try:
        async with pool.connection() as c:
            cur = await c.execute(
                "select current_setting('jit') as jit, current_setting('TimeZone') as tz,"
                " current_setting('statement_timeout') as timeout"
            )
            assert await cur.fetchone() == {"jit": "off", "tz": "UTC", "timeout": "7s"}
    finally:
        await pool.close()


PAGES = (
    "api_notebook_page_org",
    "api_notebook_page_member",
    "api_notebook_page_team",
    "api_notebook_page_owner",
    "api_notebook_describe",
)


def test_every_page_builds_its_answer_alike_in_one_parse() -> None:
    """The five statements of a notebook page (one plan each) build their
    answer from one fragment, so they cannot drift apart. And each stays
    short enough for psycopg to keep it parsed: past 4096 bytes it parses it
    again on every call (a tenth of a millisecond of the API's CPU per page)."""
    named, _ = parse_blocks((QUERIES_DIR / "api_notebooks.sql").read_text())
    assert all("-- include: notebook_page_answer" in named[name] for name in PAGES)
    assert all(fragment("notebook_page_answer") in query(name) for name in PAGES)
    longest = getattr(getattr(psycopg, "_queries", None), "MAX_CACHED_STATEMENT_LENGTH", 4096)
    assert all(len(query(name).encode()) <= longest for name in PAGES)


# The API's answers, against a plain reference query over the same rows.

REFERENCE = """
select n.id as "notebookId",
       array(select nt.team_id from notebook_teams nt
              where nt.notebook_id = n.id order by nt.team_id) as "teamIds",
       n.workload_config_id as "workloadConfigId"
  from notebooks n
 where n.organization_id = %(org)s and n.deleted_at is null
   and (%(see_all)s or n.member_id = %(me)s
        or n.id in (select nt.notebook_id from notebook_teams nt
                      join team_memberships tm on tm.team_id = nt.team_id
                     where tm.member_id = %(me)s))
   and (%(team)s::text is null
        or n.id in (select notebook_id from notebook_teams where team_id = %(team)s::text))
   and (%(statuses)s::text[] is null or n.status = any(%(statuses)s::text[]))
 order by n.created_at desc, n.id desc
"""


@pytest.fixture(scope="module")
def tokens(scale_url: str) -> dict[str, dict[str, str]]:
    """An API token for each member the views below are seen as."""
    out = {}
    with psycopg.connect(scale_url, autocommit=True) as c:
        for member in (ADMIN, ADMIN2, MEMBER):
            secret = new_token()
            c.execute(
                "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
                " values (%s, %s, 'scale', %s, %s)",
                (f"KS{member}", member, token_prefix(secret), hash_token(secret)),
            )
            out[member] = {"Authorization": f"Bearer {secret}"}
    return out


@pytest.fixture
async def client(scale_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    settings = Settings(
        database_url=scale_url,
        data_dir=tmp_path / "data",
        signing_keys=(("k1", "r" * 40),),
        secret_key="m" * 40,
        cookie_secure=False,
        log_format="console",
    )
    app = create_app(settings, clock=FakeClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC)))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def reference(
    scale_conn, org: str, me: str, see_all: bool, team: str | None, statuses: list | None = None
) -> list[dict]:
    with scale_conn.cursor(row_factory=dict_row) as cur:
        params = {"org": org, "me": me, "see_all": see_all, "team": team, "statuses": statuses}
        cur.execute(REFERENCE, params)
        return cur.fetchall()


VIEWS = [
    # (who, organization, org admin, team, page size, pages at most)
    pytest.param(ADMIN, ORG, True, None, 100, 3, id="org-admin-49k"),
    pytest.param(ADMIN2, ORG2, True, None, 100, 20, id="org-admin-small-org"),
    pytest.param(MEMBER, ORG, False, None, 37, 20, id="member"),
    pytest.param(ADMIN, ORG, True, TEAM, 23, 20, id="team-as-org-admin"),
    pytest.param(MEMBER, ORG, False, "T0003", 50, 20, id="team-as-member"),
]


@pytest.mark.parametrize(("who", "org", "see_all", "team", "limit", "pages"), VIEWS)
@pytest.mark.parametrize("statuses", [None, ["failed", "running"]], ids=["all", "filtered"])
async def test_lists_answer_as_the_reference_query(
    client, scale_conn, tokens, who, org, see_all, team, limit, pages, statuses
) -> None:
    expected = reference(scale_conn, org, who, see_all, team, statuses)
    assert expected
    url = f"/api/v1/workloads/teams/{team}/notebooks" if team else NB
    seen: list[dict] = []
    marker = None
    wanted = f"&status={','.join(statuses)}" if statuses else ""
    for _ in range(pages):
        query = f"?limit={limit}{wanted}" + (f"&marker={marker}" if marker else "")
        resp = await client.get(url + query, headers=tokens[who])
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["total"] == len(expected)
        start = len(seen)
        seen += body["items"]
        assert body["items"] == expected[start : start + limit]
        page_ids = [i["notebookId"] for i in body["items"]]
        assert [n["id"] for n in body["included"]["notebooks"]] == page_ids
        assert sorted(t["id"] for t in body["included"]["teams"]) == sorted(
            {t for i in body["items"] for t in i["teamIds"]}
        )
        # A marker exactly while rows are left.
        assert ("marker" in body) == (len(seen) < len(expected))
        marker = body.get("marker")
        if marker is None:
            break
    assert seen == expected[: len(seen)]
    assert len(seen) == min(len(expected), pages * limit)


async def test_describe_and_history_answer_as_before(client, scale_conn, tokens) -> None:
    visible = reference(scale_conn, ORG, MEMBER, False, None)[5]["notebookId"]
    hidden = scale_conn.execute(
        "select id from notebooks where organization_id = %s and deleted_at is null"
        " and member_id <> %s and id not in (select notebook_id from notebook_teams)"
        " limit 1",
        (ORG, MEMBER),
    ).fetchone()
    deleted = scale_conn.execute(
        "select id from notebooks where deleted_at is not null limit 1"
    ).fetchone()
    assert hidden is not None and deleted is not None
    resp = await client.get(f"{NB}/{visible}", headers=tokens[MEMBER])
    assert resp.status == 200
    assert (await resp.json())["item"]["notebookId"] == visible
    for other in (hidden[0], deleted[0]):
        assert (await client.get(f"{NB}/{other}", headers=tokens[MEMBER])).status == 404
    assert (await client.get(f"{NB}/{hidden[0]}", headers=tokens[ADMIN])).status == 200
    assert (await client.get(f"{NB}/{NOTEBOOK}", headers=tokens[ADMIN2])).status == 404

    history = [
        r[0]
        for r in scale_conn.execute(
            "select e.id::text from notebook_events e where e.notebook_id = %s order by e.id desc",
            (LONG_HISTORY,),
        )
    ]
    seen: list[str] = []
    marker = None
    for _ in range(3):
        query = "?limit=100" + (f"&marker={marker}" if marker else "")
        resp = await client.get(f"{NB}/{LONG_HISTORY}/events{query}", headers=tokens[ADMIN])
        assert resp.status == 200
        body = await resp.json()
        assert body["total"] == len(history)
        seen += [e["id"] for e in body["items"]]
        marker = body["marker"]
    assert seen == history[:300]
