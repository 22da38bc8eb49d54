"""The migrations build the whole schema on an empty database, and re-running
them changes nothing."""

from __future__ import annotations

import psycopg

from sql import latest_version, migration_files
from sql.migrate import migrate

EXPECTED_TABLES = {
    "organizations",
    "members",
    "teams",
    "team_memberships",
    "api_tokens",
    "workload_configs",
    "notebooks",
    "notebook_teams",
    "notebook_presence",
    "notebook_events",
    "sweep_state",
    "used_proxy_tokens",
    "schema_migrations",
    # pgqueuer's own, through its installer
    "pgqueuer",
    "pgqueuer_log",
    "pgqueuer_statistics",
    "pgqueuer_schedules",
}


def _schema_snapshot(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select table_name, column_name, data_type, is_nullable, column_default"
            " from information_schema.columns where table_schema = 'public'"
            " order by table_name, column_name"
        ).fetchall()


async def test_migrations_build_schema_on_empty_database(empty_database_url: str) -> None:
    applied = await migrate(empty_database_url)
    assert applied == [v for v, _, _ in migration_files()]
    with psycopg.connect(empty_database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema='public'"
            )
        }
        versions = [r[0] for r in conn.execute("select version from schema_migrations")]
    assert tables >= EXPECTED_TABLES
    assert max(versions) == latest_version()


async def test_rerunning_migrations_is_a_no_op(empty_database_url: str) -> None:
    await migrate(empty_database_url)
    before = _schema_snapshot(empty_database_url)
    assert await migrate(empty_database_url) == []
    assert _schema_snapshot(empty_database_url) == before
