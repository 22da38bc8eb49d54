"""An organization at the scale the queries are built for, and what the scale
tests read of query plans (tests/integration/api/test_api_list_scale.py,
tests/integration/reconciler/test_sweep_scale.py).

`seed_scale` writes, with `insert ... select ... from generate_series` (a few
seconds), then ANALYZEs:

- organization ORG: 4,900 members (M00001..M04900; M00001 an org admin),
  490 teams (T0001..T0490), 8 workload configs; organization ORG2: 100
  members (M04901..M05000; M04901 an org admin), 10 teams, 2 configs;
- every member in two teams of its org (admin, editor or viewer);
- 50,000 notebooks (`notebook_id(1..50000)`: random-looking ids, as real
  ones are), about 49,000 in ORG, owned round-robin
  (10 per member), created three to a second (ties in the keyset order); one
  in 50 deleted (desired state `deleted`, `deleted_at` set); one in 50 running
  or idle, a few starting or failed (half of those with leftovers);
- four in five shared with one team of their org, one in seven with a second:
  a member sees about 210 notebooks, a team lists about 100;
- 1,000,000 history rows in `notebook_events`, 20 per notebook, half of them
  by the platform (`reconciler`), half by ORG's members (about 100 each), and
  20,000 more for LONG_HISTORY;
- 10,000 API tokens, one in three with an expiry.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import ClientCursor

from common.embedded_db import database_url
from sql import query

ORG, ORG2 = "ORG", "ORG2"
ADMIN, ADMIN2 = "M00001", "M04901"
MEMBER = "M00002"  # sees 211 notebooks: 10 own, the rest through two teams
TEAM = "T0064"  # lists 202 notebooks


def notebook_id(i: int) -> str:
    """The seed's notebook number i (1..50,000)."""
    return "N" + hashlib.md5(f"n{i}".encode()).hexdigest()[:11].upper()


ID_SQL = "'N' || upper(substr(md5('n' || i), 1, 11))"
NOTEBOOK = notebook_id(123)
LONG_HISTORY = notebook_id(101)  # 20,000 more history rows than the others
NOTEBOOKS = 50_000
EVENTS = 1_000_000

SEED = f"""
insert into organizations (id, name) values ('{ORG}', 'big'), ('{ORG2}', 'other');
insert into members (id, organization_id, email, name, organization_admin, created_at)
select 'M' || lpad(i::text, 5, '0'), case when i <= 4900 then '{ORG}' else '{ORG2}' end,
       'm' || i || '@example.com', 'member ' || i, i in (1, 4901),
       timestamptz '2025-01-01' + make_interval(secs => i / 2)
  from generate_series(1, 5000) i;
insert into workload_configs (id, organization_id, name)
select 'C' || i, case when i <= 8 then '{ORG}' else '{ORG2}' end, 'config ' || i
  from generate_series(1, 10) i;
insert into teams (id, organization_id, name, created_at)
select 'T' || lpad(i::text, 4, '0'), case when i <= 490 then '{ORG}' else '{ORG2}' end,
       'team ' || i, timestamptz '2025-01-01' + make_interval(secs => i)
  from generate_series(1, 500) i;
insert into team_memberships (team_id, member_id, role, created_at)
select distinct on (t, m) t, m, (array['admin', 'editor', 'viewer'])[1 + i % 3],
       timestamptz '2025-02-01' + make_interval(secs => i / 3)
  from (select i, 'M' || lpad(i::text, 5, '0') as m,
               'T' || lpad((case when i <= 4900 then 1 + i % 490
                                 else 491 + i % 10 end)::text, 4, '0') as t
          from generate_series(1, 5000) i
        union all
        select i, 'M' || lpad(i::text, 5, '0'),
               'T' || lpad((case when i <= 4900 then 1 + (i * 7 + 3) % 490
                                 else 491 + (i * 3) % 10 end)::text, 4, '0')
          from generate_series(1, 5000) i) x;
-- Notebook ids look random, as real ones do (common/ids.py): no order of
-- theirs follows the order rows were written in.
create temporary table seed_ids on commit drop as
select i, {ID_SQL} as id from generate_series(1, {NOTEBOOKS}) i;
insert into notebooks (id, organization_id, member_id, workload_config_id, name, status,
                       desired_state, runtime_state, status_changed_at, created_at,
                       created_by, updated_at, updated_by, deleted_at, deleted_by)
select g.id, o.org, o.m,
       case when o.org = '{ORG}' then 'C' || (1 + i % 8) else 'C' || (9 + i % 2) end,
       'notebook ' || i, s.status, s.desired,
       case when s.status = 'failed' and i % 1000 = 4 then '{{"pid": 1}}'::jsonb
            else '{{}}'::jsonb end,
       timestamptz '2025-03-01' + make_interval(secs => (i * 7919) % 50000),
       timestamptz '2025-03-01' + make_interval(secs => i / 3), o.m,
       timestamptz '2025-03-01' + make_interval(secs => i / 3), o.m,
       case when i % 50 = 0 then timestamptz '2025-06-01' end,
       case when i % 50 = 0 then o.m end
  from seed_ids g
  cross join lateral (select 1 + (i * 31) % 5000 as mi) k
  cross join lateral (select 'M' || lpad(k.mi::text, 5, '0') as m,
                             case when k.mi <= 4900 then '{ORG}' else '{ORG2}' end as org) o
  cross join lateral (
      select case when i % 100 = 1 then 'running' when i % 100 = 2 then 'idle'
                  when i % 500 = 3 then 'starting' when i % 500 = 4 then 'failed'
                  else 'stopped' end as status,
             case when i % 100 in (1, 2) or i % 500 = 3 then 'running'
                  when i % 50 = 0 then 'deleted' else 'stopped' end as desired) s;
insert into notebook_teams (notebook_id, team_id)
select n.id, 'T' || lpad((case when n.organization_id = '{ORG}' then 1 + (n.i * 13) % 490
                                else 491 + n.i % 10 end)::text, 4, '0')
  from (select n.id, n.organization_id, s.i from notebooks n join seed_ids s using (id)) n
 where n.i % 5 <> 0
union
select n.id, 'T' || lpad((case when n.organization_id = '{ORG}' then 1 + (n.i * 17) % 490
                                else 491 + (n.i + 1) % 10 end)::text, 4, '0')
  from (select n.id, n.organization_id, s.i from notebooks n join seed_ids s using (id)) n
 where n.i % 7 = 0;
insert into notebook_events (notebook_id, organization_id, from_status, to_status, reason,
                             actor, created_at)
select s.id,
       case when (1 + ((s.i * 31) % 5000)) <= 4900 then '{ORG}' else '{ORG2}' end,
       'stopped', (array['starting', 'running', 'stopping', 'stopped'])[1 + (g.i / 50000) % 4],
       'seed',
       -- Half by the platform, half by the org's members (ORG2's events name
       -- ORG's members: the activity filters by organization first).
       case when g.i % 2 = 0 then 'reconciler'
            else 'M' || lpad((1 + (g.i / 2) % 4900)::text, 5, '0') end,
       timestamptz '2025-03-01' + make_interval(secs => g.i)
  from generate_series(0, {EVENTS - 1}) g(i)
  join seed_ids s on s.i = 1 + g.i % {NOTEBOOKS};
insert into notebook_events (notebook_id, organization_id, from_status, to_status, reason,
                             actor, created_at)
select '{LONG_HISTORY}', '{ORG}', 'running', 'stopped', 'seed',
       case when i % 2 = 0 then 'reconciler' else '{ADMIN}' end,
       timestamptz '2025-01-01' + make_interval(secs => i)
  from generate_series(1, 20000) i;
insert into api_tokens (id, member_id, name, prefix, secret_hash, expires_at)
select 'K' || i, 'M' || lpad((1 + i % 5000)::text, 5, '0'), 't', 'p', sha256(i::text::bytea),
       case when i % 3 = 0 then timestamptz '2026-01-01' + make_interval(secs => i) end
  from generate_series(1, 10000) i;
"""


def seed_scale(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(SEED)
        conn.execute("vacuum analyze")


@contextlib.contextmanager
def scale_database(admin_dsn: str, server: object, template: str) -> Iterator[str]:
    """A database cloned from the migrated template, seeded; dropped after."""
    name = f"scale_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)")
        conn.execute(f"create database {name} template {template}")
    url = database_url(server, name)
    try:
        seed_scale(url)
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")


def explain(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any], *, generic: bool = False
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, FORMAT JSON) of the named query: its custom plan (the
    parameters' values known, as for a statement's first executions) or,
    `generic`, the plan PostgreSQL caches for a prepared statement (psycopg
    prepares a statement after five uses), forced. Run with `jit` on, as
    PostgreSQL's default. Returns the top object (Plan, Planning, JIT...)."""
    sql = query(name)
    conn.execute("set jit = on")
    if not generic:
        cur = ClientCursor(conn)
        cur.execute("explain (analyze, format json) " + sql, params)
        row = cur.fetchone()
        assert row is not None
        return row[0][0]  # type: ignore[no-any-return]
    names: list[str] = []

    def placeholder(key: str) -> str:
        if key not in names:
            names.append(key)
        return f"${names.index(key) + 1}"

    numbered = re.sub(r"%\((\w+)\)s", lambda m: placeholder(m.group(1)), sql)
    cur = ClientCursor(conn)
    values = ", ".join(cur.mogrify("%s", (params[k],)) for k in names)
    conn.execute("prepare scale_q as " + numbered)
    try:
        conn.execute("set plan_cache_mode = force_generic_plan")
        row = conn.execute(f"explain (analyze, format json) execute scale_q({values})").fetchone()
    finally:
        conn.execute("reset plan_cache_mode")
        conn.execute("deallocate scale_q")
    assert row is not None
    return row[0][0]  # type: ignore[no-any-return]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan that ran, depth first: not those of a branch a
    one-time filter turned off (a generic plan holds every branch)."""
    if plan.get("Actual Loops", 1) == 0:
        return
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def subplan(plan: dict[str, Any], name: str) -> dict[str, Any]:
    """The node heading a CTE or InitPlan, e.g. 'CTE keys'."""
    for node in nodes(plan):
        if node.get("Subplan Name") == name:
            return node
    raise AssertionError(f"no {name} in the plan")


def scans(plan: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    """The nodes that read `relation` (scans of it or of its indexes) and ran."""
    return [n for n in nodes(plan) if n.get("Relation Name") == relation]


def index_names(plan: dict[str, Any]) -> set[str]:
    return {n["Index Name"] for n in nodes(plan) if "Index Name" in n}


def rows_removed(plan: dict[str, Any]) -> int:
    """Rows read and thrown away by a filter, over the whole plan."""
    return sum(
        int(n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0))
        * int(n.get("Actual Loops", 1))
        for n in nodes(plan)
    )


def largest_sort(plan: dict[str, Any]) -> int:
    """The most rows any Sort node took in (0: none)."""
    return max(
        (
            int(n["Plans"][0]["Actual Rows"]) * int(n["Plans"][0].get("Actual Loops", 1))
            for n in nodes(plan)
            if n["Node Type"] == "Sort"
        ),
        default=0,
    )
