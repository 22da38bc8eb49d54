"""What migration 0029's trigger costs a status change: `set_status` (the one
statement that changes a notebook's status and records its event) with the
trigger off (the baseline: no webhooks before stop 29), on with no webhook
in the organization (every organization that sets none), and on with three
webhooks that each take the change (three deliveries written), alternated
in one run against one embedded PostgreSQL.

Usage: python bench/webhook_trigger.py [--changes 2000] [--rounds 5]
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
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from common.embedded_db import database_url, start_embedded
from sql import query
from sql.migrate import migrate

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def seed(conn: psycopg.Connection) -> None:
    conn.execute("insert into organizations (id, name) values ('ORG', 'org')")
    conn.execute(
        "insert into members (id, organization_id, email, name) values ('M', 'ORG', 'm@x', 'M')"
    )
    conn.execute(
        "insert into workload_configs (id, organization_id, name) values ('C', 'ORG', 'c')"
    )
    conn.execute(
        "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
        " created_by, updated_by) values ('NB', 'ORG', 'M', 'C', 'nb', 'M', 'M')"
    )


def changes(conn: psycopg.Connection, n: int) -> float:
    """Seconds for `n` status changes, each its own transaction (as a
    reconcile pass writes one)."""
    began = time.perf_counter()
    for i in range(n):
        conn.execute(
            query("set_status"),
            {
                "id": "NB",
                "status": "running" if i % 2 else "idle",
                "status_message": "",
                "reason": None,
                "actor": "reconciler",
                "now": NOW,
                "record_unchanged": False,
            },
        )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-webhook-trigger-"))
    server = start_embedded(root / "pg", cleanup="stop")
    try:
        dsn = database_url(server)
        asyncio.run(migrate(dsn))
        with psycopg.connect(dsn, autocommit=True) as conn:
            seed(conn)
            changes(conn, 200)  # warm: plans, buffers

            def off() -> float:
                conn.execute("alter table notebook_events disable trigger notebook_events_webhooks")
                try:
                    return changes(conn, args.changes)
                finally:
                    conn.execute(
                        "alter table notebook_events enable trigger notebook_events_webhooks"
                    )

            def none() -> float:
                return changes(conn, args.changes)

            def three() -> float:
                for i in range(3):
                    conn.execute(
                        "insert into webhooks (id, organization_id, url, statuses, secret,"
                        " created_at, created_by) values (%s, 'ORG', 'https://x.example/', '{}',"
                        " 'whsec_eA==', now(), 'M')",
                        (f"W{i}",),
                    )
                try:
                    return changes(conn, args.changes)
                finally:
                    conn.execute("delete from webhooks")  # deliveries go with them

            timed: dict[str, list[float]] = {"off": [], "none": [], "three": []}
            for _ in range(args.rounds):
                for name, run in (("off", off), ("none", none), ("three", three)):
                    timed[name].append(run())
        base = statistics.median(timed["off"])
        print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        print(
            f"{args.changes} status changes (set_status, autocommit) per round; medians of"
            f" {args.rounds} alternated rounds"
        )
        print(f"{'trigger':<40} {'µs per change':>14} {'x off':>7}")
        for name, label in (
            ("off", "off (before stop 29)"),
            ("none", "on, no webhook in the organization"),
            ("three", "on, three webhooks taking the change"),
        ):
            m = statistics.median(timed[name])
            print(f"{label:<40} {m / args.changes * 1e6:>14.1f} {m / base:>6.2f}x")
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
