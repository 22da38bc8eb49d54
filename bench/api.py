"""API throughput and latency: describe and list (100 visible notebooks) at a
fixed concurrency against one running API process.

It starts its own embedded PostgreSQL, migrates and seeds it (one org, one
config, a member with a token who sees N notebooks: nine in ten its own, the
rest another member's shared through a team; plus N of the other member's it
cannot see), starts the API (`api.app.main`) as a separate process on a free
port, and drives it from this process with aiohttp at the given concurrency.
Prints the command line and a table of req/s, p50, p99 and CPU used.

`--scale`: an organization of 50,000 notebooks instead (5,000 members, 500
teams, each member in two; ten notebooks per member, four in five shared with
a team), and the list as its org admin (pages of all 50,000) and as a member
who sees about 210, each with its p50 as a multiple of the describe's.

Usage: python bench/api.py [--seconds 10] [--concurrency 16] [--notebooks 100] [--scale]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
import psycopg

from common.embedded_db import database_url, start_embedded
from common.ids import new_id
from common.tokens import hash_token, new_token, token_prefix
from sql.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def seed(dsn: str, notebooks: int) -> tuple[str, str]:
    """Rows for the bench; returns (token, one notebook id)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        org, member, other, config, team = (new_id() for _ in range(5))
        conn.execute("insert into organizations (id, name) values (%s, 'bench')", (org,))
        for m in (member, other):
            conn.execute(
                "insert into members (id, organization_id, email, name)"
                " values (%s, %s, %s, 'bench')",
                (m, org, f"{m}@example.com"),
            )
        token = new_token()
        conn.execute(
            "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
            " values (%s, %s, 'bench', %s, %s)",
            (new_id(), member, token_prefix(token), hash_token(token)),
        )
        conn.execute(
            "insert into workload_configs (id, organization_id, name) values (%s, %s, 'default')",
            (config, org),
        )
        conn.execute(
            "insert into teams (id, organization_id, name) values (%s, %s, 't')", (team, org)
        )
        conn.execute(
            "insert into team_memberships (team_id, member_id, role) values (%s, %s, 'editor')",
            (team, member),
        )
        ids = []
        for i in range(notebooks):
            # Most owned by the caller, every tenth shared with it through the team.
            owner = other if i % 10 == 0 else member
            nb = new_id()
            ids.append(nb)
            conn.execute(
                "insert into notebooks (id, organization_id, member_id, workload_config_id,"
                " name, created_by, updated_by) values (%s, %s, %s, %s, %s, %s, %s)",
                (nb, org, owner, config, f"notebook {i}", owner, owner),
            )
            if owner == other:
                conn.execute(
                    "insert into notebook_teams (notebook_id, team_id) values (%s, %s)", (nb, team)
                )
        # Noise the query must skip: another member's unshared notebooks.
        for i in range(notebooks):
            conn.execute(
                "insert into notebooks (id, organization_id, member_id, workload_config_id,"
                " name, created_by, updated_by) values (%s, %s, %s, %s, %s, %s, %s)",
                (new_id(), org, other, config, f"hidden {i}", other, other),
            )
        conn.execute("analyze")
        return token, ids[0]


# Names are "notebook <i>": this one is in 1,111 of 50,000 (49, 490-499, ...).
EVENTS = 1_000_000  # --scale: history rows
SEARCH = "Notebook%2049"


def seed_scale(dsn: str, notebooks: int = 50_000) -> tuple[str, str, str]:
    """An org at scale, written set-wise; returns (admin token, member token,
    one notebook id the member sees)."""
    members, teams = 5_000, 500
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("insert into organizations (id, name) values ('ORG', 'bench')")
        conn.execute(
            "insert into members (id, organization_id, email, name, organization_admin)"
            " select 'M' || i, 'ORG', 'm' || i || '@example.com', 'bench', i = 1"
            " from generate_series(1, %s) i",
            (members,),
        )
        conn.execute(
            "insert into workload_configs (id, organization_id, name) values ('C', 'ORG', 'c')"
        )
        conn.execute(
            "insert into teams (id, organization_id, name)"
            " select 'T' || i, 'ORG', 'team ' || i from generate_series(0, %s - 1) i",
            (teams,),
        )
        conn.execute(
            "insert into team_memberships (team_id, member_id, role)"
            " select distinct 'T' || t, 'M' || i, 'editor' from generate_series(1, %s) i,"
            " lateral (values (i %% %s), ((i * 7 + 3) %% %s)) v(t)",
            (members, teams, teams),
        )
        # Random-looking ids (as real ones), written oldest first.
        conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " created_at, created_by, updated_by)"
            " select 'N' || upper(substr(md5(i::text), 1, 11)), 'ORG', 'M' || (1 + i %% %s),"
            " 'C', 'notebook ' || i, timestamptz '2025-01-01' + make_interval(secs => i),"
            " 'M' || (1 + i %% %s), 'M' || (1 + i %% %s) from generate_series(1, %s) i",
            (members, members, members, notebooks),
        )
        conn.execute(
            "insert into notebook_teams (notebook_id, team_id)"
            " select 'N' || upper(substr(md5(i::text), 1, 11)), 'T' || ((i * 13) %% %s)"
            " from generate_series(1, %s) i where i %% 5 <> 0",
            (teams, notebooks),
        )
        # A million history rows, 20 a notebook, half by the platform, half
        # by the notebooks' owners: the activity's pages read a page of them.
        conn.execute(
            "insert into notebook_events (notebook_id, organization_id, notebook_name,"
            " from_status, to_status, reason, actor, created_at)"
            " select 'N' || upper(substr(md5(n::text), 1, 11)), 'ORG', 'notebook ' || n,"
            " 'stopped', 'starting', 'bench',"
            " case when i %% 2 = 0 then 'reconciler' else 'M' || (1 + n %% %s) end,"
            " timestamptz '2025-06-01' + make_interval(secs => i)"
            " from generate_series(1, %s) i, lateral (select 1 + i %% %s as n) k",
            (members, EVENTS, notebooks),
        )
        tokens = []
        for member in ("M1", "M2"):  # the org admin; a member
            token = new_token()
            conn.execute(
                "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
                " values (%s, %s, 'bench', %s, %s)",
                (new_id(), member, token_prefix(token), hash_token(token)),
            )
            tokens.append(token)
        row = conn.execute("select id from notebooks where member_id = 'M2' limit 1").fetchone()
        assert row is not None
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze")
        index_build_seconds(conn)
    return tokens[0], tokens[1], row[0]


def index_build_seconds(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """What migrations 0014's and 0015's index builds take over a million events (the
    time every status change waits on an upgrade): each dropped and built
    again as the migration builds it."""
    took = []
    for name, columns in (
        ("notebook_events_org", "organization_id, id"),
        ("notebook_events_org_actor", "organization_id, actor, id"),
        ("notebook_events_org_time", "organization_id, created_at"),  # 0015
    ):
        conn.execute(f"drop index {name}")
        began = time.perf_counter()
        conn.execute(f"create index {name} on notebook_events ({columns})")
        took.append(time.perf_counter() - began)
    print(
        f"migrations 0014 and 0015's index builds over {EVENTS:,} events: "
        + " + ".join(f"{t:.2f}" for t in took)
        + f" = {sum(took):.2f} s"
    )
    # 0018's partial index reads every notebook to hold those marked deleted
    # (none in the seed, as none of its tombstones: that one is built empty).
    conn.execute("drop index notebooks_member_deleting")
    began = time.perf_counter()
    conn.execute(
        "create index notebooks_member_deleting on notebooks (member_id)"
        " where deleted_at is not null"
    )
    print(f"migration 0018's index build over the notebooks: {time.perf_counter() - began:.2f} s")


async def wait_ready(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("API did not become ready")


async def drive(
    url: str, headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies, errors


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-api-"))
    server = start_embedded(root / "pg", cleanup="stop")
    api = None
    try:
        dsn = database_url(server)
        await migrate(dsn)
        if args.scale:
            token, member_token, notebook = seed_scale(dsn)
        else:
            token, notebook = seed(dsn, args.notebooks)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "NOTEBOOKS_API_PORT": str(port),
            "NOTEBOOKS_API_METRICS_PORT": "off",  # not scraped; 8083 may be taken
            "NOTEBOOKS_SECRET_KEY": "b" * 40,
            "NOTEBOOKS_SIGNING_KEYS": "k1:" + "s" * 40,
            "NOTEBOOKS_DATA_DIR": str(root / "data"),
            "NOTEBOOKS_LOG_FORMAT": "json",
            "NOTEBOOKS_DB_POOL_MAX": str(args.pool),
        }
        api = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from common.settings import Settings; from api.app import main;"
            " main(Settings.from_env())",
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base, time.monotonic() + 30)
        headers = {"Authorization": f"Bearer {token}"}
        targets = [
            ("describe", f"{base}/api/v1/workloads/notebooks/{notebook}", headers),
            ("list (100 visible)", f"{base}/api/v1/workloads/notebooks?limit=100", headers),
        ]
        if args.scale:
            member = {"Authorization": f"Bearer {member_token}"}
            targets = [
                ("describe", f"{base}/api/v1/workloads/notebooks/{notebook}", member),
                ("list, org admin", f"{base}/api/v1/workloads/notebooks?limit=100", headers),
                ("list, member", f"{base}/api/v1/workloads/notebooks?limit=100", member),
                # A name search (`?q=`) matching about 2 % of the names.
                (
                    "search, org admin",
                    f"{base}/api/v1/workloads/notebooks?limit=100&q={SEARCH}",
                    headers,
                ),
                (
                    "search, member",
                    f"{base}/api/v1/workloads/notebooks?limit=100&q={SEARCH}",
                    member,
                ),
                # The costliest: nothing matches, so the page reads the whole
                # org index and `total` counts the whole org.
                (
                    "no match, org admin",
                    f"{base}/api/v1/workloads/notebooks?limit=100&q=nothing%20like%20it",
                    headers,
                ),
                # The organization's activity (GET /events) over the million
                # events: everyone's (its `total` counts them all), and one
                # member's (about 100).
                ("activity", f"{base}/api/v1/events?limit=100", headers),
                ("activity, a member", f"{base}/api/v1/events?limit=100&actor=M2", headers),
                # Usage over a day of that history (86,400 events, one a second)
                # and the 50,000 notebooks' status as it opens.
                (
                    "usage, a day",
                    f"{base}/api/v1/usage?from=2025-06-05T00:00:00Z&to=2025-06-06T00:00:00Z",
                    headers,
                ),
                # A member's own (GET /me/usage) over the whole month of the
                # history: their 10 notebooks' events, read notebook by notebook.
                (
                    "my usage, a month",
                    f"{base}/api/v1/me/usage?from=2025-06-01T00:00:00Z&to=2025-07-01T00:00:00Z",
                    member,
                ),
            ]
        rows = []
        pg_root = psutil.Process(server.get_pid())
        me, api_proc = psutil.Process(), psutil.Process(api.pid)
        for name, url, auth in targets:
            await drive(url, auth, args.concurrency, 1.0)  # warm-up
            groups = [[api_proc], [pg_root, *pg_root.children(recursive=True)], [me]]
            before = [cpu_seconds(g) for g in groups]
            count, lat, errors = await drive(url, auth, args.concurrency, args.seconds)
            used = [
                (cpu_seconds(g) - b) / args.seconds for g, b in zip(groups, before, strict=True)
            ]
            rows.append(
                (name, count / args.seconds, pct(lat, 50) * 1000, pct(lat, 99) * 1000, errors, used)
            )
        print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        print(
            f"concurrency {args.concurrency}, {args.seconds:g} s per endpoint, one API "
            f"process, pool max {args.pool}, {os.cpu_count()} CPUs"
        )
        print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        print(
            f"{'endpoint':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
            f"  CPU cores used: api / postgres / load generator"
        )
        for name, rps, p50, p99, errors, used in rows:
            cpu = " / ".join(f"{u:.2f}" for u in used)
            per = " / ".join(f"{u / rps * 1000:.2f}" for u in used)
            print(
                f"{name:<20} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {errors:>7}  {cpu}"
                f"  (CPU ms per request: {per})"
            )
        if args.scale:
            describe_p50 = rows[0][2]
            print("median latency against describe's, same run (50,000 notebooks):")
            for name, _, p50, *_ in rows[1:]:
                print(f"  {name:<18} p50 {p50:.2f} ms = {p50 / describe_p50:.2f}x describe")
    finally:
        if api is not None and api.returncode is None:
            api.terminate()
            try:
                await asyncio.wait_for(api.wait(), timeout=10)
            except TimeoutError:
                api.kill()
                await api.wait()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--notebooks", type=int, default=100)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--scale", action="store_true", help="an org of 50,000 notebooks")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
