"""`notebooks admin ...`: members, teams, memberships, tokens and workload
configs from a shell, straight to the database (no API needed).

    notebooks admin member create --email a@b.c --name Ann [--org-admin]
    notebooks admin team create --name data
    notebooks admin membership set TEAM MEMBER --role editor
    notebooks admin membership remove TEAM MEMBER
    notebooks admin token create MEMBER [--name laptop] [--expires-in SECONDS] [--read-only]
        # the secret is shown once
    notebooks admin config create --name big --mode cluster --workers 4 --env K=V ...
        [--sail-image I --sail-cpu 2 --sail-memory 4Gi --marimo-cpu 500m ...]
    notebooks admin token revoke TOKEN / member disable MEMBER / member enable MEMBER
    notebooks admin {org,member,team,membership,token,config} list

`--json` prints JSON (an object for create, a list for list); errors go to
stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from cli.bootstrap import CREDENTIALS_FILE, mint_token, read_json
from cli.database import CliError, data_dir_from_env, database_for
from common.db import add_options
from common.ids import ID_PATTERN, is_valid_id, new_id
from common.settings import allowed_images
from common.text import CONTROL, EMAIL, INVISIBLE, NAME, normal_name
from common.tokens import MAX_LIFETIME_SECONDS, MIN_LIFETIME_SECONDS
from sql import query

ROLES = ("admin", "editor", "viewer")
MODES = ("standalone", "cluster")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- validation: clear messages, raised before touching the database --------


def _id(value: str, what: str) -> str:
    if not is_valid_id(value):
        raise CliError(f"{what} {value!r} is not an id ({ID_PATTERN.pattern})")
    return value


def _text(value: str, what: str, maximum: int, *, allow_empty: bool = False) -> str:
    value = value.strip()
    if not value and not allow_empty:
        raise CliError(f"{what} must not be empty")
    if len(value) > maximum:
        raise CliError(f"{what} is longer than {maximum} characters")
    return value


def _name(value: str) -> str:
    """As the API takes a name (common/text.py): judged in the form it is
    stored in (NFC can make a name longer)."""
    value = _text(normal_name(value), "name", 128)
    if not NAME.fullmatch(value):
        raise CliError(f"name {value!r} has control or invisible characters")
    return value


def _email(value: str) -> str:
    value = _text(value, "email", 254)
    if not EMAIL.fullmatch(value):
        raise CliError(f"email {value!r} is not an email address")
    return value


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not ENV_KEY.fullmatch(key):
            raise CliError(
                f"--env {pair!r}: expected KEY=VALUE, KEY matching [A-Za-z_][A-Za-z0-9_]*"
            )
        out[key] = value
    return out


# -- output -------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        out[_camel(key)] = value
    return out


def _emit(result: dict[str, Any] | list[dict[str, Any]], as_json: bool) -> None:
    if isinstance(result, dict):
        result = _jsonable(result)
        if as_json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key}: {_cell(value)}")
        return
    rows = [_jsonable(r) for r in result]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("(none)")
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        print("  ".join(_cell(r[c]).ljust(widths[c]) for c in cols).rstrip())


_UNPRINTABLE = re.compile(f"[{CONTROL}{INVISIBLE}]")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    # Rows written before today's checks may hold terminal escapes or bidi
    # overrides: shown as \uXXXX, never sent to the operator's terminal as is.
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# -- commands -----------------------------------------------------------------

Conn = psycopg.Connection[dict[str, Any]]


def _one(conn: Conn, name: str, params: dict[str, Any]) -> dict[str, Any]:
    row = conn.execute(query(name), params).fetchone()
    assert row is not None
    return row


def _found(conn: Conn, name: str, params: dict[str, Any], missing: str) -> dict[str, Any]:
    """The row `name` returns, else a CliError saying `missing`."""
    row = conn.execute(query(name), params).fetchone()
    if row is None:
        raise CliError(missing)
    return row


def _organization(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> str:
    """--org, else the credentials file's organization, else the only one."""
    if args.org:
        org = _id(args.org, "organization")
        _found(conn, "admin_get_organization", {"id": org}, f"organization {org} does not exist")
        return org
    creds = read_json(data_dir_from_env(env) / CREDENTIALS_FILE) or {}
    orgs = conn.execute(query("admin_list_organizations")).fetchall()
    ids = [o["id"] for o in orgs]
    if creds.get("organizationId") in ids:
        return str(creds["organizationId"])
    if len(ids) == 1:
        return str(ids[0])
    if not ids:
        raise CliError("no organization yet: run `notebooks up` or `notebooks admin org create`")
    raise CliError(f"{len(ids)} organizations: pass --org ({', '.join(ids)})")


def _in_org(conn: Conn, name: str, what: str, row_id: str, org: str) -> dict[str, Any]:
    """The row `name` returns for the org's `what` `row_id`, else a CliError."""
    params = {"id": _id(row_id, what), "organization_id": org}
    return _found(conn, name, params, f"{what} {row_id} not found in organization {org}")


def _member(conn: Conn, org: str, member_id: str) -> dict[str, Any]:
    return _in_org(conn, "admin_get_member", "member", member_id, org)


def _active_member(conn: Conn, org: str, member_id: str) -> dict[str, Any]:
    member = _member(conn, org, member_id)
    if member["disabled_at"] is not None:
        raise CliError(f"member {member_id} is disabled")
    return member


def _team(conn: Conn, org: str, team_id: str) -> dict[str, Any]:
    return _in_org(conn, "admin_get_team", "team", team_id, org)


def org_create(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    name = _name(args.name)
    return _one(conn, "admin_create_organization", {"id": new_id(), "name": name})


def org_list(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    return conn.execute(query("admin_list_organizations")).fetchall()


def member_create(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    email, name = _email(args.email), _name(args.name)
    org = _organization(conn, args, env)
    return _one(
        conn,
        "admin_create_member",
        {
            "id": new_id(),
            "organization_id": org,
            "email": email,
            "name": name,
            "organization_admin": args.org_admin,
        },
    )


def member_disable(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    member_id = _id(args.member, "member")
    org = _organization(conn, args, env)
    return _in_org(conn, "admin_disable_member", "member", member_id, org)


def member_enable(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    """As the API's enable (the same statement): teams, role and notebooks
    back, every token they had revoked."""
    member_id = _id(args.member, "member")
    org = _organization(conn, args, env)
    params = {"member_id": member_id, "org_id": org, "caller_id": None, "now": datetime.now(UTC)}
    target = _found(
        conn,
        "api_lock_member_for_enable",
        params,
        f"member {member_id} not found in organization {org}",
    )
    if target["disabled_at"] is None:
        raise CliError(f"member {member_id} is not disabled")
    row = _one(conn, "api_enable_member", params)
    return {**_member(conn, org, member_id), "revoked_tokens": row["revoked"]}


def member_list(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    return conn.execute(
        query("admin_list_members"), {"organization_id": _organization(conn, args, env)}
    ).fetchall()


def team_create(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    name = _name(args.name)
    org = _organization(conn, args, env)
    return _one(conn, "admin_create_team", {"id": new_id(), "organization_id": org, "name": name})


def team_list(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    return conn.execute(
        query("admin_list_teams"), {"organization_id": _organization(conn, args, env)}
    ).fetchall()


def membership_set(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    team_id, member_id = _id(args.team, "team"), _id(args.member, "member")
    if args.role not in ROLES:
        raise CliError(f"role {args.role!r} must be one of {', '.join(ROLES)}")
    org = _organization(conn, args, env)
    _team(conn, org, team_id)
    _active_member(conn, org, member_id)  # as the API: a disabled member joins no team
    return _one(
        conn,
        "admin_set_membership",
        {"team_id": team_id, "member_id": member_id, "role": args.role},
    )


def membership_remove(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    team_id, member_id = _id(args.team, "team"), _id(args.member, "member")
    _team(conn, _organization(conn, args, env), team_id)
    params = {"team_id": team_id, "member_id": member_id}
    if conn.execute(query("api_delete_team_member"), params).fetchone() is None:
        raise CliError(f"member {member_id} is not in team {team_id}")
    return params


def membership_list(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    org = _organization(conn, args, env)
    team_id = _team(conn, org, args.team)["id"] if args.team else None
    return conn.execute(
        query("admin_list_memberships"), {"organization_id": org, "team_id": team_id}
    ).fetchall()


def token_create(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    member_id = _id(args.member, "member")
    name = _name(args.name)
    org = _organization(conn, args, env)
    _active_member(conn, org, member_id)
    expires_in = args.expires_in
    if expires_in is not None and not MIN_LIFETIME_SECONDS <= expires_in <= MAX_LIFETIME_SECONDS:
        raise CliError(
            f"--expires-in must be {MIN_LIFETIME_SECONDS}..{MAX_LIFETIME_SECONDS} seconds"
        )
    secret, row = mint_token(conn, member_id, name, expires_in, read_only=args.read_only)
    return {**row, "token": secret}  # shown this once; only its hash is stored


def token_revoke(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    token_id = _id(args.token, "token")
    org = _organization(conn, args, env)
    _in_org(conn, "admin_lock_token", "token", token_id, org)
    return _in_org(conn, "admin_revoke_token", "token", token_id, org)


def token_list(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    org = _organization(conn, args, env)
    member_id = _member(conn, org, args.member)["id"] if args.member else None
    return conn.execute(
        query("admin_list_tokens"), {"organization_id": org, "member_id": member_id}
    ).fetchall()


def _resources(args: argparse.Namespace, component: str) -> dict[str, str]:
    return {
        key: value
        for key in ("image", "cpu", "memory")
        if (value := getattr(args, f"{component}_{key}")) is not None
    }


def config_create(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    name = _name(args.name)
    description = _text(args.description, "description", 2000, allow_empty=True)
    if args.mode not in MODES:
        raise CliError(f"mode {args.mode!r} must be one of {', '.join(MODES)}")
    if not 1 <= args.workers <= 64:
        raise CliError(f"workers must be between 1 and 64, got {args.workers}")
    body: dict[str, Any] = {
        "name": name,
        "description": description,
        "mode": args.mode,
        "workers": args.workers,
        "env": _env_pairs(args.env),
        "sail": _resources(args, "sail"),
        "marimo": _resources(args, "marimo"),
    }
    # The API's own rules for a workload config (image, cpu and memory formats,
    # env limits): one definition of what a valid config is. Imported here so
    # the rest of the command line never depends on the api package.
    from api.configs import CREATE_SCHEMA, check_config, check_environment
    from api.errors import BadRequest
    from api.validation import check

    allowed = allowed_images(env)  # a malformed list is a SettingsError, as for the servers
    try:
        check(body, CREATE_SCHEMA, "")
        check_config(body, allowed)
        check_environment(body, body["env"], {})
    except BadRequest as e:
        raise CliError(e.detail) from None
    org = _organization(conn, args, env)
    params = {"id": new_id(), "organization_id": org, **body}
    for key in ("env", "sail", "marimo"):
        params[key] = Jsonb(body[key])
    return _one(conn, "admin_create_workload_config", params)


def config_list(conn: Conn, args: argparse.Namespace, env: dict[str, str]) -> Any:
    return conn.execute(
        query("admin_list_workload_configs"), {"organization_id": _organization(conn, args, env)}
    ).fetchall()


Handler = Callable[[Conn, argparse.Namespace, dict[str, str]], Any]


def add_parser(sub: Any) -> None:
    admin = sub.add_parser("admin", help="manage members, teams, tokens, configs")
    admin.set_defaults(func=run_admin)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument(
        "--org", help="organization id (default: the credentials file's, or the only one)"
    )
    nouns = admin.add_subparsers(dest="noun", required=True, metavar="NOUN")

    def verb(noun: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = noun.add_parser(name, parents=[common], help=help)
        p.set_defaults(handler=handler)
        return p

    org = nouns.add_parser("org", help="organizations").add_subparsers(dest="verb", required=True)
    verb(org, "create", org_create, "create an organization").add_argument("--name", required=True)
    verb(org, "list", org_list, "list organizations")

    member = nouns.add_parser("member", help="members").add_subparsers(dest="verb", required=True)
    p = verb(member, "create", member_create, "create a member")
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--org-admin", action="store_true", help="make an organization admin")
    verb(member, "list", member_list, "list members")
    p = verb(member, "disable", member_disable, "disable a member: their tokens stop working")
    p.add_argument("member")
    p = verb(member, "enable", member_enable, "enable a disabled member (their old tokens revoked)")
    p.add_argument("member")

    team = nouns.add_parser("team", help="teams").add_subparsers(dest="verb", required=True)
    verb(team, "create", team_create, "create a team").add_argument("--name", required=True)
    verb(team, "list", team_list, "list teams")

    ms = nouns.add_parser("membership", help="team memberships").add_subparsers(
        dest="verb", required=True
    )
    p = verb(ms, "set", membership_set, "add a member to a team, or change its role")
    p.add_argument("team")
    p.add_argument("member")
    p.add_argument("--role", required=True, help="admin, editor or viewer")
    p = verb(ms, "remove", membership_remove, "take a member out of a team")
    p.add_argument("team")
    p.add_argument("member")
    verb(ms, "list", membership_list, "list memberships").add_argument("--team")

    token = nouns.add_parser("token", help="API tokens").add_subparsers(dest="verb", required=True)
    p = verb(token, "create", token_create, "create a token (printed once)")
    p.add_argument("member")
    p.add_argument("--name", default="cli")
    p.add_argument(
        "--expires-in", type=int, metavar="SECONDS", help="the token stops working after this"
    )
    p.add_argument(
        "--read-only", action="store_true", help="it may read, never change, start or open"
    )
    verb(token, "list", token_list, "list tokens (never the secrets)").add_argument("--member")
    verb(token, "revoke", token_revoke, "revoke a token").add_argument("token")

    config = nouns.add_parser("config", help="workload configs").add_subparsers(
        dest="verb", required=True
    )
    p = verb(config, "create", config_create, "create a workload config")
    p.add_argument("--name", required=True)
    p.add_argument("--description", default="")
    p.add_argument("--mode", default="standalone", help="standalone or cluster")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    for component in ("sail", "marimo"):
        p.add_argument(f"--{component}-image", metavar="IMAGE", help="kubernetes runtime")
        p.add_argument(f"--{component}-cpu", metavar="CPU", help="e.g. 500m or 2")
        p.add_argument(f"--{component}-memory", metavar="MEMORY", help="e.g. 2Gi")
    verb(config, "list", config_list, "list workload configs")


# A unique constraint a create ran into (api/errors.py's UNIQUE_CONFLICTS), in words.
_TAKEN = {
    "members_org_email_ci": "a member with that email (in any case) in this organization",
    "teams_org_name_ci": "a team of that name (in any case) in this organization",
    "workload_configs_org_name_ci": "a workload config of that name (in any case) here",
}


def run_admin(args: argparse.Namespace, env: dict[str, str]) -> int:
    with (
        database_for(env) as url,
        psycopg.connect(
            add_options(url, "-c TimeZone=UTC"), autocommit=True, row_factory=dict_row
        ) as conn,
    ):
        try:
            with conn.transaction():
                result = args.handler(conn, args, env)
        except psycopg.errors.UniqueViolation as e:
            what = _TAKEN.get(e.diag.constraint_name or "", "it")
            raise CliError(f"{what} already exists") from None
    _emit(result, args.json)
    return 0
