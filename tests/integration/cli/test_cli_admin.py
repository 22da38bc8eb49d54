"""`notebooks admin ...` against a real, migrated database, output parsed from --json."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli.main import main


class Admin:
    def __init__(self, url: str, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.env = {"DATABASE_URL": url, "NOTEBOOKS_DATA_DIR": str(data_dir)}
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["admin", *argv], environ=self.env)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> Any:
        code, out, err = self.run(*argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def fails(self, *argv: str) -> str:
        code, out, err = self.run(*argv, "--json")
        assert code == 1, (out, err)
        assert out == ""
        return err


@pytest.fixture
def admin(database_url_for_test: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Admin:
    return Admin(database_url_for_test, tmp_path / "data", capsys)


@pytest.fixture
def org(admin: Admin) -> str:
    return str(admin.ok("org", "create", "--name", "Acme")["id"])


def test_without_an_organization_commands_say_what_to_do(admin: Admin) -> None:
    assert "no organization yet" in admin.fails("member", "list")


def test_members_are_created_and_listed(admin: Admin, org: str) -> None:
    ann = admin.ok("member", "create", "--email", "ann@acme.test", "--name", "Ann", "--org-admin")
    bob = admin.ok("member", "create", "--email", "bob@acme.test", "--name", "Bob")
    assert ann["organizationId"] == org and ann["organizationAdmin"] is True
    assert bob["organizationAdmin"] is False and bob["disabledAt"] is None
    assert len(ann["id"]) == 12 and ann["id"].isalnum() and ann["id"].isupper()
    listed = admin.ok("member", "list")
    assert [(m["id"], m["email"]) for m in listed] == [
        (ann["id"], "ann@acme.test"),
        (bob["id"], "bob@acme.test"),
    ]


def test_teams_and_memberships_with_roles(admin: Admin, org: str) -> None:
    member = admin.ok("member", "create", "--email", "c@acme.test", "--name", "C")["id"]
    team = admin.ok("team", "create", "--name", "data")
    assert team["name"] == "data" and team["organizationId"] == org
    assert admin.ok("team", "list") == [team]
    first = admin.ok("membership", "set", team["id"], member, "--role", "editor")
    assert (first["teamId"], first["memberId"], first["role"]) == (team["id"], member, "editor")
    # setting again changes the role instead of failing
    admin.ok("membership", "set", team["id"], member, "--role", "viewer")
    listed = admin.ok("membership", "list", "--team", team["id"])
    assert [(m["memberId"], m["role"]) for m in listed] == [(member, "viewer")]
    # and out of the team again, as the API's DELETE /teams/{team}/members/{member}
    removed = admin.ok("membership", "remove", team["id"], member)
    assert (removed["teamId"], removed["memberId"]) == (team["id"], member)
    assert admin.ok("membership", "list", "--team", team["id"]) == []
    assert f"member {member} is not in team" in admin.fails(
        "membership", "remove", team["id"], member
    )


def test_tokens_are_shown_once_and_stored_hashed(
    admin: Admin, org: str, database_url_for_test: str
) -> None:
    member = admin.ok("member", "create", "--email", "d@acme.test", "--name", "D")["id"]
    created = admin.ok("token", "create", member, "--name", "laptop")
    token = created["token"]
    assert token.startswith("nbk_") and created["prefix"] == token[:12]
    assert created["memberId"] == member and created["name"] == "laptop"
    with psycopg.connect(database_url_for_test) as conn:
        row = conn.execute(
            "select secret_hash from api_tokens where id = %s", (created["id"],)
        ).fetchone()
    assert row is not None and bytes(row[0]) == hashlib.sha256(token.encode()).digest()
    listed = admin.ok("token", "list", "--member", member)
    assert [t["id"] for t in listed] == [created["id"]]
    assert token not in json.dumps(listed)  # the secret is never listed
    assert listed[0]["expiresAt"] is None


def test_a_token_may_be_given_a_life(admin: Admin, org: str, database_url_for_test: str) -> None:
    member = admin.ok("member", "create", "--email", "d@acme.test", "--name", "D")["id"]
    created = admin.ok("token", "create", member, "--expires-in", "3600")
    with psycopg.connect(database_url_for_test) as conn:
        row = conn.execute(
            "select expires_at - created_at from api_tokens where id = %s", (created["id"],)
        ).fetchone()
    assert row is not None and row[0].total_seconds() == pytest.approx(3600, abs=5)
    (listed,) = admin.ok("token", "list", "--member", member)
    assert listed["expiresAt"] == created["expiresAt"] is not None
    for bad in ("299", "31622401"):
        assert "--expires-in must be" in admin.fails("token", "create", member, "--expires-in", bad)


def test_a_token_may_be_read_only(admin: Admin, org: str) -> None:
    """For a script (docs/api.md "Read-only tokens"): the API refuses it
    anything but reads (tests/integration/api/test_api_read_only_tokens.py)."""
    member = admin.ok("member", "create", "--email", "d@acme.test", "--name", "D")["id"]
    script = admin.ok("token", "create", member, "--name", "backup", "--read-only")
    laptop = admin.ok("token", "create", member, "--name", "laptop")
    assert (script["readOnly"], laptop["readOnly"]) == (True, False)
    listed = {t["name"]: t["readOnly"] for t in admin.ok("token", "list", "--member", member)}
    assert listed == {"backup": True, "laptop": False}


def test_plain_output_shows_nested_values_as_json(admin: Admin, org: str) -> None:
    """Without --json, one row prints as `key: value`, nested values as JSON
    (as the table of a list does), never as Python's repr."""
    code, out, err = admin.run("config", "create", "--name", "big", "--env", "K=V")
    assert code == 0, err
    assert 'env: {"K": "V"}' in out.splitlines()


def test_workload_configs_with_env(admin: Admin, org: str) -> None:
    config = admin.ok(
        "config",
        "create",
        "--name",
        "big",
        "--mode",
        "cluster",
        "--workers",
        "4",
        "--env",
        "SPARK_CONF=a=b",
        "--env",
        "TZ=UTC",
        "--description",
        "four workers",
    )
    assert config["mode"] == "cluster" and config["workers"] == 4
    assert config["env"] == {"SPARK_CONF": "a=b", "TZ": "UTC"}
    assert config["description"] == "four workers"
    assert (config["sail"], config["marimo"]) == ({}, {})
    sized = admin.ok(
        "config",
        "create",
        "--name",
        "sized",
        "--sail-cpu",
        "2",
        "--sail-memory",
        "4Gi",
        "--marimo-image",
        "registry.test/kernel:1",
        "--marimo-cpu",
        "500m",
    )
    assert sized["sail"] == {"cpu": "2", "memory": "4Gi"}
    assert sized["marimo"] == {"image": "registry.test/kernel:1", "cpu": "500m"}
    plain = admin.ok("config", "create", "--name", "small")
    assert (plain["mode"], plain["workers"], plain["env"]) == ("standalone", 1, {})
    assert [c["name"] for c in admin.ok("config", "list")] == ["big", "sized", "small"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("membership", "set", "bad-id", "ABC", "--role", "editor"), "is not an id"),
        (("membership", "set", "ABC", "DEF", "--role", "owner"), "must be one of admin, editor"),
        (("membership", "set", "ABC", "DEF", "--role", "editor"), "team ABC not found"),
        (("token", "create", "x" * 21), "is not an id"),
        (("token", "create", "NOSUCHMEMBER"), "member NOSUCHMEMBER not found"),
        (("member", "create", "--email", "nope", "--name", "N"), "not an email address"),
        (("member", "create", "--email", "a@b.c", "--name", "  "), "name must not be empty"),
        (("team", "create", "--name", "t" * 129), "longer than 128"),
        (("team", "create", "--name", "\u0958" * 128), "longer than 128"),  # 256 once NFC
        (("config", "create", "--name", "c", "--workers", "0"), "workers must be between 1"),
        (("config", "create", "--name", "c", "--mode", "huge"), "mode 'huge' must be one of"),
        (("config", "create", "--name", "c", "--env", "1BAD=x"), "expected KEY=VALUE"),
        (("config", "create", "--name", "c", "--env", "NOEQUALS"), "expected KEY=VALUE"),
        # the API's env rules, as for a config made through it
        (("config", "create", "--name", "c", "--env", "SAIL_MODE=local"), "set by the platform"),
        (("member", "list", "--org", "NOSUCHORG"), "organization NOSUCHORG does not exist"),
        (("config", "create", "--name", "c", "--sail-cpu", "lots"), "sail.cpu"),
        (("config", "create", "--name", "c", "--marimo-memory", "2 GB"), "marimo.memory"),
        (("config", "create", "--name", "c", "--sail-image", "a b"), "sail.image"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    admin: Admin, org: str, argv: tuple[str, ...], message: str
) -> None:
    assert message in admin.fails(*argv)


def test_duplicates_are_refused_and_nothing_is_half_written(admin: Admin, org: str) -> None:
    admin.ok("member", "create", "--email", "e@acme.test", "--name", "E")
    for email in ("e@acme.test", "E@Acme.Test"):  # one person however it is capitalised
        refused = admin.fails("member", "create", "--email", email, "--name", "E2")
        assert "a member with that email" in refused and "already exists" in refused
        assert "_ci" not in refused and "_key" not in refused  # no constraint's name
    admin.ok("team", "create", "--name", "Data")
    refused = admin.fails("team", "create", "--name", "data")
    assert "a team of that name (in any case) in this organization already exists" in refused
    assert len(admin.ok("member", "list")) == 1


def test_other_organizations_are_out_of_reach(admin: Admin, org: str) -> None:
    other = admin.ok("org", "create", "--name", "Other")["id"]
    # two organizations: which one must be said
    assert "2 organizations: pass --org" in admin.fails("team", "list")
    stranger = admin.ok("member", "create", "--org", other, "--email", "s@o.test", "--name", "S")
    team = admin.ok("team", "create", "--org", org, "--name", "mine")
    err = admin.fails(
        "membership", "set", "--org", org, team["id"], stranger["id"], "--role", "viewer"
    )
    assert f"member {stranger['id']} not found in organization {org}" in err
    assert admin.ok("membership", "list", "--org", org) == []


def test_the_credentials_file_chooses_the_default_organization(admin: Admin, org: str) -> None:
    other = admin.ok("org", "create", "--name", "Other")["id"]
    data_dir = Path(admin.env["NOTEBOOKS_DATA_DIR"])
    data_dir.mkdir(parents=True)
    (data_dir / "credentials.json").write_text(json.dumps({"organizationId": other}))
    assert admin.ok("team", "create", "--name", "t")["organizationId"] == other


def test_the_installed_command_prints_json(database_url_for_test: str, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": database_url_for_test,
        "NOTEBOOKS_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    notebooks = str(Path(sys.executable).parent / "notebooks")
    done = subprocess.run(
        [notebooks, "admin", "org", "create", "--name", "X", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    org = json.loads(done.stdout)
    done = subprocess.run(
        [notebooks, "admin", "org", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert org["id"] in done.stdout and "X" in done.stdout  # the human-readable table
    bad = subprocess.run(
        [notebooks, "admin", "token", "create", "lower"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "is not an id" in bad.stderr


def test_tokens_are_revoked_and_members_disabled(admin: Admin, org: str) -> None:
    member = admin.ok("member", "create", "--email", "f@acme.test", "--name", "F")["id"]
    token = admin.ok("token", "create", member)
    revoked = admin.ok("token", "revoke", token["id"])
    assert revoked["id"] == token["id"] and revoked["revokedAt"] is not None
    # revoking again keeps the first time
    assert admin.ok("token", "revoke", token["id"])["revokedAt"] == revoked["revokedAt"]
    assert admin.ok("token", "list")[0]["revokedAt"] == revoked["revokedAt"]
    assert "token NOSUCHTOKEN not found" in admin.fails("token", "revoke", "NOSUCHTOKEN")

    live = admin.ok("token", "create", member)["id"]
    disabled = admin.ok("member", "disable", member)
    assert disabled["disabledAt"] is not None
    assert "is disabled" in admin.fails("token", "create", member)
    # as the API (404 there): a disabled member joins no team
    team = admin.ok("team", "create", "--name", "disabled-test")["id"]
    refused = admin.fails("membership", "set", team, member, "--role", "viewer")
    assert f"member {member} is disabled" in refused
    assert admin.ok("membership", "list", "--team", team) == []
    other = admin.ok("org", "create", "--name", "Other")["id"]
    assert "not found in organization" in admin.fails("member", "disable", "--org", other, member)
    # Enabled again: a token of theirs is made again; the one before stays revoked.
    back = admin.ok("member", "enable", "--org", org, member)
    assert back["disabledAt"] is None and back["revokedTokens"] == 1
    tokens = admin.ok("token", "list", "--org", org, "--member", member)
    assert {t["id"]: t["revokedAt"] for t in tokens}[live] is not None
    assert f"member {member} is not disabled" in admin.fails(
        "member", "enable", "--org", org, member
    )
    assert admin.ok("token", "create", "--org", org, member)["memberId"] == member
    assert "not found in organization" in admin.fails("member", "enable", "--org", other, member)


def test_revoking_a_token_revokes_the_tokens_made_with_it(
    admin: Admin, org: str, database_url_for_test: str
) -> None:
    """As the API's revocation: a console session's sign-out ends what was made in it."""
    member = admin.ok("member", "create", "--email", "g@acme.test", "--name", "G")["id"]
    console, made, made_by_made, unrelated = (
        admin.ok("token", "create", member, "--name", name)["id"]
        for name in ("console", "made", "made-by-made", "unrelated")
    )
    with psycopg.connect(database_url_for_test, autocommit=True) as conn:
        conn.execute("update api_tokens set made_by = %s where id = %s", (console, made))
        conn.execute("update api_tokens set made_by = %s where id = %s", (made, made_by_made))
    revoked = admin.ok("token", "revoke", console)
    assert revoked["id"] == console and revoked["alsoRevoked"] == 2
    states = {t["id"]: t["revokedAt"] for t in admin.ok("token", "list", "--member", member)}
    assert states[made] is not None and states[made_by_made] is not None
    assert states[unrelated] is None
    assert admin.ok("token", "revoke", console)["alsoRevoked"] == 0


def test_names_and_emails_are_checked_as_the_api_does_and_shown_escaped(
    admin: Admin, org: str, database_url_for_test: str
) -> None:
    assert "invisible" in admin.fails("team", "create", "--name", "data\u200b")
    assert "invisible" in admin.fails("team", "create", "--name", "\u2800")
    assert "not an email" in admin.fails("member", "create", "--email", "a\x1b@x.io", "--name", "A")
    team = admin.ok("team", "create", "--name", "e\u0301quipe")
    assert team["name"] == "\u00e9quipe"  # stored composed (NFC), as the API stores it
    # a row from before these checks: its escapes never reach the terminal
    with psycopg.connect(database_url_for_test, autocommit=True) as conn:
        conn.execute(
            "insert into members (id, organization_id, email, name, created_at)"
            " values ('OLDROW1', %s, %s, 'Old', now())",
            (org, "a\x1b[2J\u202e@x.io"),
        )
    code, out, err = admin.run("member", "list")
    assert code == 0, err
    assert "\x1b" not in out and "\u202e" not in out
    assert "a\\u001b[2J\\u202e@x.io" in out


def test_times_are_utc_whatever_the_servers_time_zone(
    admin: Admin, database_url_for_test: str
) -> None:
    """An embedded PostgreSQL takes the host's zone at initdb; the CLI's
    times are UTC, as the API's are."""
    with psycopg.connect(database_url_for_test, autocommit=True) as conn:
        conn.execute("select set_config('x.db', current_database(), false)")
        conn.execute(
            "do $$ begin execute format('alter database %I set timezone = %L',"
            " current_setting('x.db'), 'Europe/Berlin'); end $$"
        )
    created = admin.ok("org", "create", "--name", "Acme")
    assert created["createdAt"].endswith("Z"), created
