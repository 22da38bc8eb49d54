"""`notebooks migrate` (the Procfile's release step) on a real, empty database."""

from __future__ import annotations

import psycopg
import pytest

from cli.main import main
from sql import latest_version


def test_migrate_builds_the_schema_once(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"DATABASE_URL": empty_database_url}
    assert main(["migrate"], environ=env) == 0
    assert "migrations applied: [1" in capsys.readouterr().out
    with psycopg.connect(empty_database_url) as conn:
        versions = [r[0] for r in conn.execute("select version from schema_migrations")]
        assert max(versions) == latest_version()
        assert conn.execute("select to_regclass('pgqueuer') is not null").fetchone() == (True,)
    assert main(["migrate"], environ=env) == 0
    assert "none (up to date)" in capsys.readouterr().out
