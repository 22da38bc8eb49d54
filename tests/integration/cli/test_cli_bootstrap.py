"""First-run set-up of `notebooks up`, called directly on a test database."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import psycopg
import pytest

from cli.bootstrap import ensure_first_admin, ensure_keys, write_credentials
from cli.database import CliError
from common.settings import parse_signing_keys
from common.tokens import hash_token


def works(url: str, token: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute(
                "select 1 from api_tokens where secret_hash = %s and revoked_at is null",
                (hash_token(token),),
            ).fetchone()
            is not None
        )


def test_first_run_creates_then_later_runs_reuse(database_url_for_test: str) -> None:
    url = database_url_for_test
    first = ensure_first_admin(url, None)
    assert works(url, first.token)
    creds = {"token": first.token}
    assert ensure_first_admin(url, creds) == first  # same org, member and token

    # credentials file lost: the same admin gets a new token
    again = ensure_first_admin(url, None)
    assert (again.organization_id, again.member_id) == (first.organization_id, first.member_id)
    assert again.token != first.token and works(url, again.token)

    # the file's token revoked: a new one, still the same admin
    with psycopg.connect(url) as conn:
        conn.execute("update api_tokens set revoked_at = now()")
    fresh = ensure_first_admin(url, {"token": again.token})
    assert fresh.member_id == first.member_id and fresh.token != again.token
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from organizations").fetchone() == (1,)
        assert conn.execute("select count(*) from members").fetchone() == (1,)
        assert conn.execute("select name, mode, workers from workload_configs").fetchall() == [
            ("default", "standalone", 1)
        ]


def test_two_first_runs_at_once_make_one_organization(database_url_for_test: str) -> None:
    url = database_url_for_test
    start = threading.Barrier(6)
    made: list[object] = []

    def first_run() -> None:
        start.wait()
        made.append(ensure_first_admin(url, None))

    runs = [threading.Thread(target=first_run) for _ in range(6)]
    for t in runs:
        t.start()
    for t in runs:
        t.join(60)
    assert len(made) == 6
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from organizations").fetchone() == (1,)
        assert conn.execute("select count(*) from members").fetchone() == (1,)


def test_an_install_whose_admins_were_disabled_gets_no_second_organization(
    database_url_for_test: str,
) -> None:
    """A new organization would take over credentials.json (and `notebooks
    admin`'s default) and make every notebook seem gone."""
    url = database_url_for_test
    first = ensure_first_admin(url, None)
    with psycopg.connect(url) as conn:
        conn.execute("update members set disabled_at = now() where id = %s", (first.member_id,))
    with pytest.raises(CliError, match="no organization has an active organization admin"):
        ensure_first_admin(url, {"token": first.token})
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from organizations").fetchone() == (1,)


def test_keys_are_generated_once_and_the_environment_wins(tmp_path: Path) -> None:
    keys = ensure_keys(tmp_path, {})
    assert len(keys["NOTEBOOKS_SECRET_KEY"]) >= 32
    assert parse_signing_keys(keys["NOTEBOOKS_SIGNING_KEYS"])  # valid for Settings
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_keys(tmp_path, {}) == keys  # stable across runs
    mine = {"NOTEBOOKS_SECRET_KEY": "e" * 40}
    assert ensure_keys(tmp_path, mine)["NOTEBOOKS_SECRET_KEY"] == "e" * 40
    assert json.loads(path.read_text()) == keys  # the file is left alone


def test_credentials_file_has_exactly_the_documented_fields(
    tmp_path: Path, database_url_for_test: str
) -> None:
    admin = ensure_first_admin(database_url_for_test, None)
    path = write_credentials(
        tmp_path,
        api_url="http://127.0.0.1:1",
        proxy_url="http://h:2",
        database_url=database_url_for_test,
        admin=admin,
    )
    assert json.loads(path.read_text()) == {
        "apiUrl": "http://127.0.0.1:1",
        "proxyUrl": "http://h:2",
        "databaseUrl": database_url_for_test,
        "organizationId": admin.organization_id,
        "memberId": admin.member_id,
        "token": admin.token,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
