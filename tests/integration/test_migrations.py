"""The migrations build the whole schema on an empty database, and re-running
them changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import structlog
from structlog.testing import capture_logs

import sql.migrate
from cli.main import main
from common.db import add_options
from sql import latest_version, migration_files
from sql.migrate import MigrationError, is_current, migrate

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


@contextlib.contextmanager
def _schema_before(dsn: str, version: int) -> Iterator[psycopg.Connection]:
    """A database as a release before `version` left it (the files below it)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "create table schema_migrations (version integer primary key, name text not null,"
            " applied_at timestamptz not null default now())"
        )
        for number, name, path in migration_files():
            if number < version:
                conn.execute(path.read_text())
                conn.execute(
                    "insert into schema_migrations (version, name) values (%s, %s)",
                    (number, name),
                )
        yield conn


def _versions(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("select version from schema_migrations order by 1")]


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
    with _schema_before(empty_database_url, 11) as conn:
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


async def test_a_migration_waiting_behind_a_long_transaction_gives_up_and_changes_nothing(
    empty_database_url: str,
) -> None:
    """0009 alters `notebooks`; a backup's or a session's open read of it
    would hold 0009, and every later query on `notebooks` behind it."""
    with _schema_before(empty_database_url, 9):
        pass
    with psycopg.connect(empty_database_url) as reader:
        reader.execute("select count(*) from notebooks")  # its transaction stays open
        with pytest.raises(MigrationError) as caught:
            await migrate(empty_database_url, lock_timeout_seconds=0.2)
        assert str(caught.value).startswith(
            "migration 0009_start_deadline_session.sql waited over 0.2 s for a lock"
        )
        assert _versions(empty_database_url) == [v for v, _, _ in migration_files() if v < 9]
    assert await migrate(empty_database_url) == [v for v, _, _ in migration_files() if v >= 9]


async def test_a_migrator_waiting_for_another_says_so_and_who_holds_the_lock(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second migrator (a release Job beside an init container) used to wait
    without a word; it says once that it waits, and for which session."""
    monkeypatch.setattr(sql.migrate, "log", structlog.get_logger("migrate"))
    with psycopg.connect(empty_database_url, autocommit=True) as other:
        other.execute("set application_name = 'release-job'")
        other.execute("select pg_advisory_lock(%s)", (sql.migrate._LOCK_KEY,))
        holder = other.info.backend_pid
        with capture_logs() as logs:
            second = asyncio.create_task(migrate(empty_database_url))
            while not [e for e in logs if e["event"] == "migration_waiting"]:
                assert not second.done(), second.result()
                await asyncio.sleep(0.01)
            other.execute("select pg_advisory_unlock(%s)", (sql.migrate._LOCK_KEY,))
            assert await second == [v for v, _, _ in migration_files()]
    waiting = [e for e in logs if e["event"] == "migration_waiting"]
    assert len(waiting) == 1
    assert waiting[0]["holder_pid"] == holder
    assert waiting[0]["holder_application"] == "release-job"
    assert waiting[0]["detail"].startswith(
        f"another migration is running (PostgreSQL backend {holder}): waiting for it"
    )
    assert "migration_lock_taken" in [e["event"] for e in logs]
    # Nobody holding it: no word.
    with capture_logs() as quiet:
        assert await migrate(empty_database_url) == []
    assert [e for e in quiet if e["event"].startswith("migration_")] == []


def test_a_failing_migration_names_its_file_and_changes_nothing(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented case (docs/operations.md): two members whose emails
    differ only in case stop 0005; the operator is told which file, and
    why, in one line."""
    with _schema_before(empty_database_url, 5) as conn:
        conn.execute("insert into organizations (id, name) values ('ORG1', 'o')")
        for member, email in (("M1", "Ann@example.com"), ("M2", "ann@example.com")):
            conn.execute(
                "insert into members (id, organization_id, email, name)"
                " values (%s, 'ORG1', %s, 'Ann')",
                (member, email),
            )
    assert main(["migrate"], {"DATABASE_URL": empty_database_url}) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "notebooks migrate: error: migration 0005_member_email_case.sql failed and changed "
        "nothing, nor did the upgrade (the database stays at version 4): "
    )
    assert "members_org_email_ci" in line
    assert _versions(empty_database_url) == [v for v, _, _ in migration_files() if v < 5]


async def test_a_file_that_fails_leaves_the_whole_upgrade_unapplied(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files 0007 on applied, then one fails: none of them stays, so the
    database is still at 6, where the release before runs. Committed file
    by file, it stopped at 12, which that release refuses (an upgrade
    audit): neither back nor on without a backup."""
    with _schema_before(empty_database_url, 7):
        pass
    bad = tmp_path / "0099_bad.sql"
    bad.write_text("alter table no_such_table add column x int;")
    files = [*migration_files(), (99, "bad", bad)]
    monkeypatch.setattr("sql.migrate.migration_files", lambda: files)
    with pytest.raises(MigrationError) as caught:
        await migrate(empty_database_url)
    assert str(caught.value).startswith(
        "migration 0099_bad.sql failed and changed nothing, nor did the upgrade"
        " (the database stays at version 6): "
    )
    assert _versions(empty_database_url) == [v for v, _, _ in migration_files() if v < 7]
    with psycopg.connect(empty_database_url) as conn:  # 0007's column is not there either
        columns = conn.execute(
            "select column_name from information_schema.columns where table_name = 'api_tokens'"
        )
        assert "made_by" not in {r[0] for r in columns}
    monkeypatch.setattr("sql.migrate.migration_files", lambda: files[:-1])
    assert await migrate(empty_database_url) == [v for v, _, _ in migration_files() if v >= 7]


def test_a_schema_newer_than_this_release_is_refused(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rollback across a migration: older statements may not fit the
    newer schema (0011 dropped constraints older inserts name)."""
    asyncio.run(migrate(empty_database_url))
    newer = latest_version() + 1
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "insert into schema_migrations (version, name) values (%s, 'from_a_later_release')",
            (newer,),
        )
    assert main(["migrate"], {"DATABASE_URL": empty_database_url}) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"notebooks migrate: error: the database's schema is at version {newer}, newer than "
        f"this release's {latest_version()}: run the release that migrated it, or restore the "
        "backup taken before that upgrade (rolling back across a migration is not supported)"
    ]


async def test_not_current_until_the_queue_schema_is_there(empty_database_url: str) -> None:
    """pgqueuer's tables come after the numbered files: /readyz waits for them."""
    await migrate(empty_database_url)
    async with await psycopg.AsyncConnection.connect(empty_database_url, autocommit=True) as conn:
        assert await is_current(conn)
        await conn.execute("alter table pgqueuer rename to pgqueuer_away")
        assert not await is_current(conn)
        await conn.execute("alter table pgqueuer_away rename to pgqueuer")


async def test_a_file_below_the_newest_applied_one_is_refused(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge brought in `0002_late.sql` after 0012 ran: it would run after
    files written to come after it. Refused, naming it; nothing applied."""
    await migrate(empty_database_url)
    late = tmp_path / "0002_late.sql"
    late.write_text("create table late (id int);")
    files = [*migration_files(), (2, "late", late)]
    monkeypatch.setattr("sql.migrate.migration_files", lambda: sorted(files))
    with pytest.raises(MigrationError) as caught:
        await migrate(empty_database_url)
    assert str(caught.value) == (
        f"migration 0002_late.sql was never applied, but the database is already at version "
        f"{latest_version()}: it would run out of order; renumber it after {latest_version()}"
    )
    assert 2 not in _versions(empty_database_url)


async def test_a_file_the_server_cancels_is_named_too(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement timeout (a DATABASE_URL's own options are kept), a
    deadlock: errors psycopg files as operational, yet the server's answer
    about this file, not a lost connection."""
    await migrate(empty_database_url)
    slow = tmp_path / "0099_slow.sql"
    slow.write_text("select pg_sleep(5);")
    files = [*migration_files(), (99, "slow", slow)]
    monkeypatch.setattr("sql.migrate.migration_files", lambda: files)
    impatient = add_options(empty_database_url, "-c statement_timeout=200")
    with pytest.raises(MigrationError) as caught:
        await migrate(impatient)
    assert str(caught.value) == (
        f"migration 0099_slow.sql failed and changed nothing, nor did the upgrade (the database"
        f" stays at version {latest_version()}): canceling statement due to statement timeout"
    )
    assert 99 not in _versions(empty_database_url)


async def test_an_applied_file_edited_afterwards_is_refused(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0005 edited after it ran: the database has what it said then, so a
    fresh install and an upgraded one would differ. Refused, naming it, and
    nothing of the run applied; CRLF line endings are the same file."""
    files = migration_files()
    await migrate(empty_database_url)
    version, name, path = next(f for f in files if f[0] == 5)
    same = tmp_path / path.name
    same.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    swapped = [(v, n, same if v == version else p) for v, n, p in files]
    monkeypatch.setattr("sql.migrate.migration_files", lambda: swapped)
    assert await migrate(empty_database_url) == []
    edited = tmp_path / "edited" / path.name
    edited.parent.mkdir()
    edited.write_text(path.read_text() + "\ncreate table sneaked_in (id int);\n")
    late = tmp_path / "0099_after.sql"
    late.write_text("create table after_edit (id int);")
    changed = [(v, n, edited if v == version else p) for v, n, p in files] + [(99, "after", late)]
    monkeypatch.setattr("sql.migrate.migration_files", lambda: changed)
    with pytest.raises(MigrationError) as caught:
        await migrate(empty_database_url)
    assert str(caught.value) == (
        f"migration {path.name} changed after it was applied (its checksum differs from the one"
        " recorded then): restore the file as it was released, and put the change in a new"
        " migration"
    )
    assert 99 not in _versions(empty_database_url)


async def test_files_applied_before_checksums_were_kept_get_theirs_then_count(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database upgraded by a release that kept no checksums: the files it
    has now are taken as what ran, and an edit from then on is refused."""
    await migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("update schema_migrations set checksum = null")
    assert await migrate(empty_database_url) == []
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        missing = conn.execute(
            "select count(*) from schema_migrations where checksum is null"
        ).fetchone()
    assert missing == (0,)
    version, _, path = migration_files()[0]
    edited = tmp_path / path.name
    edited.write_text(path.read_text() + "\n-- edited\n")
    changed = [(v, n, edited if v == version else p) for v, n, p in migration_files()]
    monkeypatch.setattr("sql.migrate.migration_files", lambda: changed)
    with pytest.raises(MigrationError):
        await migrate(empty_database_url)
