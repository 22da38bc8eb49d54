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


async def test_names_differing_only_in_case_are_kept_apart_by_0011(
    empty_database_url: str,
) -> None:
    """Teams and configs whose names differed only in case before 0011 keep
    the oldest as written; the later ones get their id appended."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "create table schema_migrations (version integer primary key, name text not null,"
            " applied_at timestamptz not null default now())"
        )
        for version, name, path in migration_files():
            if version < 11:
                conn.execute(path.read_text())
                conn.execute(
                    "insert into schema_migrations (version, name) values (%s, %s)",
                    (version, name),
                )
        conn.execute("insert into organizations (id, name) values ('ORG1', 'o')")
        for i, name in enumerate(("Data", "data", "DATA", "other")):
            at = f"2026-01-0{i + 1}T00:00:00Z"
            conn.execute(
                "insert into teams (id, organization_id, name, created_at)"
                " values (%s, 'ORG1', %s, %s)",
                (f"T{i}", name, at),
            )
            conn.execute(
                "insert into workload_configs (id, organization_id, name, created_at, updated_at)"
                " values (%s, 'ORG1', %s, %s, %s)",
                (f"C{i}", name, at, at),
            )
    assert await migrate(empty_database_url) == [v for v, _, _ in migration_files() if v >= 11]
    with psycopg.connect(empty_database_url) as conn:
        for table, prefix in (("teams", "T"), ("workload_configs", "C")):
            names = [r[0] for r in conn.execute(f"select name from {table} order by created_at")]
            assert names == ["Data", f"data ({prefix}1)", f"DATA ({prefix}2)", "other"]
            try:
                conn.execute(
                    f"insert into {table} (id, organization_id, name) values ('X', 'ORG1', 'OTHER')"
                )
            except psycopg.errors.UniqueViolation:
                conn.rollback()
            else:
                raise AssertionError(f"{table}: 'OTHER' beside 'other'")
