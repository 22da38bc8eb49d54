"""Shared fixtures: one embedded PostgreSQL per test run, a migrated template
database, and a fresh database per test cloned from that template (fast)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from common.embedded_db import database_url, start_embedded
from sql.migrate import migrate

TEMPLATE = "notebooks_template"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """The test run's PostgreSQL: an embedded server in a temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="nbpg-"))
    server = start_embedded(root / "pg", cleanup="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_dsn(pg_server: object) -> str:
    return database_url(pg_server)


@pytest.fixture(scope="session")
def template_db(admin_dsn: str, pg_server: object) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"drop database if exists {TEMPLATE}")
        conn.execute(f"create database {TEMPLATE}")
    asyncio.run(migrate(database_url(pg_server, TEMPLATE)))
    return TEMPLATE


_counter = iter(range(1, 1_000_000))


@contextlib.contextmanager
def _scratch_database(
    admin_dsn: str, server: object, prefix: str, template: str | None
) -> Iterator[str]:
    """Create a database (cloned from `template`, if given), yield its URL, drop it."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    clone = f" template {template}" if template else ""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"create database {name}{clone}")
    try:
        yield database_url(server, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")


@pytest.fixture
def database_url_for_test(admin_dsn: str, template_db: str, pg_server: object) -> Iterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    with _scratch_database(admin_dsn, pg_server, "t", template_db) as url:
        yield url


@pytest.fixture
def empty_database_url(admin_dsn: str, pg_server: object) -> Iterator[str]:
    """A fresh database with no schema (for the migration tests)."""
    with _scratch_database(admin_dsn, pg_server, "e", None) as url:
        yield url


@pytest.fixture
def settings(database_url_for_test: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings for one test: its own database and data directory, fixed keys."""
    from common.settings import Settings

    return Settings(
        database_url=database_url_for_test,
        data_dir=tmp_path / "data",
        signing_keys=(("k2", "s" * 40), ("k1", "r" * 40)),
        secret_key="m" * 40,
        cookie_secure=False,
        log_format="console",
    )
