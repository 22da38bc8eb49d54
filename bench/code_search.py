"""What a search of notebooks' code costs (`GET /workloads/code-search`: its
two statements, api_code_search_candidates then api_code_search, as the
handler runs them): for an org admin (every notebook of the
organization searched) and for a member who sees a tenth of them, a text
one notebook holds and one every notebook holds (50 listed, each line
counted), against the floor of reading each notebook's newest file once
(`sum(length(content))` over the same lateral), alternated in one run
against one embedded PostgreSQL.

Usage: python bench/code_search.py [--notebooks 1000] [--kib 20] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# `python bench/code_search.py` puts bench/ first on sys.path, where
# bench/api.py would shadow the API package.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from api.code_search import BEFORE_MATCH, LINE_CHARS, SHOWN, within_budget  # noqa: E402
from common.db import session_options  # noqa: E402
from common.embedded_db import database_url, start_embedded  # noqa: E402
from sql import query  # noqa: E402
from sql.migrate import migrate  # noqa: E402

NOW = datetime(2026, 11, 28, tzinfo=UTC)
FLOOR = """
select sum(length(f.content)) from notebooks n
 cross join lateral (select v.content from notebook_files v where v.notebook_id = n.id
                      order by v.id desc limit 1) f
 where n.organization_id = 'ORG' and n.deleted_at is null
"""


def cell(i: int, j: int) -> str:
    table = f"warehouse.events_{(i * 7 + j) % 97}"
    return (
        f"@app.cell\ndef _(spark):\n    df_{j} = spark.table('{table}')\n"
        f"    df_{j}.filter(df_{j}.day > '2026-11-{j % 28 + 1:02}').groupBy('kind').count()\n"
        f"    return (df_{j},)\n\n\n"
    )


def notebook_file(i: int, kib: int) -> str:
    text, j = "import marimo\n\napp = marimo.App()\n\n\n", 0
    while len(text) < kib * 1024:
        text += cell(i, j)
        j += 1
    if i == 17:
        text += "# the one notebook that reads legacy.ledger_v1\n"
    return text


def seed(conn: psycopg.Connection, notebooks: int, kib: int) -> None:
    conn.execute("insert into organizations (id, name) values ('ORG', 'org')")
    for m in ("ADMIN", "MEMBER"):
        conn.execute(
            "insert into members (id, organization_id, email, name, organization_admin)"
            " values (%s, 'ORG', %s, %s, %s)",
            (m, f"{m}@x", m, m == "ADMIN"),
        )
    conn.execute(
        "insert into workload_configs (id, organization_id, name) values ('C', 'ORG', 'c')"
    )
    conn.execute("insert into teams (id, organization_id, name) values ('T', 'ORG', 't')")
    conn.execute(
        "insert into team_memberships (team_id, member_id, role) values ('T', 'MEMBER', 'editor')"
    )
    with conn.transaction():
        for i in range(notebooks):
            nid = f"NB{i:08}"
            conn.execute(
                "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
                " created_by, updated_by) values (%s, 'ORG', 'ADMIN', 'C', %s, 'ADMIN', 'ADMIN')",
                (nid, f"nb {i}"),
            )
            if i % 10 == 0:
                conn.execute(
                    "insert into notebook_teams (notebook_id, team_id) values (%s, 'T')", (nid,)
                )
            base = notebook_file(i, kib)
            for v in range(5):  # older versions, as a running notebook's copies make them
                conn.execute(
                    "insert into notebook_files (notebook_id, content, kept_at, session_id)"
                    " values (%s, %s, %s, 'S')",
                    (nid, base + f"# v{v}\n", NOW - timedelta(minutes=i * 10 + 5 - v)),
                )
    conn.execute("vacuum analyze")


def timed(run: Callable[[], None]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", type=int, default=1000)
    parser.add_argument("--kib", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-code-search-"))
    server = start_embedded(root / "pg", cleanup="stop")
    try:
        dsn = database_url(server)
        asyncio.run(migrate(dsn))
        # As the API's connections are (no JIT: common/db.py session_options).
        with psycopg.connect(
            dsn, autocommit=True, row_factory=dict_row, options=session_options()
        ) as conn:
            seed(conn, args.notebooks, args.kib)

            def search(member: str, q: str) -> Callable[[], None]:
                """The handler's two statements (api/code_search.py), timed together."""

                def run() -> None:
                    mine = {"org_id": "ORG", "member_id": member, "now": NOW}
                    candidates = conn.execute(
                        query("api_code_search_candidates"),
                        {**mine, "see_all": member == "ADMIN"},
                    ).fetchall()
                    chosen, _ = within_budget(candidates)
                    files = [(i, c) for i, c in enumerate(chosen) if c["version"] is not None]
                    conn.execute(
                        query("api_code_search"),
                        {
                            "q": q,
                            "versions": [c["version"] for _, c in files],
                            "version_ordinals": [i for i, _ in files],
                            "seeds": [],
                            "seed_ordinals": [],
                            "limit": SHOWN,
                            "before": BEFORE_MATCH,
                            "line_chars": LINE_CHARS,
                        },
                    ).fetchall()

                return run

            def floor() -> None:
                conn.execute(FLOOR).fetchall()

            cases: dict[str, Callable[[], None]] = {
                "floor": floor,
                "admin, one notebook holds it": search("ADMIN", "legacy.ledger_v1"),
                "admin, every notebook holds it": search("ADMIN", "groupby('kind')"),
                "member (a tenth), one holds it": search("MEMBER", "legacy.ledger_v1"),
            }
            for run in cases.values():
                timed(run)  # warm: plans, buffers
            runs: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.rounds):
                for name, run in cases.items():
                    runs[name].append(timed(run))
        base = statistics.median(runs["floor"])
        print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        print(
            f"{args.notebooks} notebooks, newest files of {args.kib} KiB (5 versions each);"
            f" medians of {args.rounds} alternated rounds"
        )
        print(f"{'statement':<34} {'ms':>8} {'x floor':>8}")
        for name in cases:
            m = statistics.median(runs[name])
            print(f"{name:<34} {m * 1000:>8.1f} {m / base:>7.2f}x")
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
