"""First-run set-up for `notebooks up`: keys, the first organization and its
admin, and `.data/credentials.json`. Every step is idempotent, so a second run
reuses what the first made."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from cli.database import CliError
from common import tokens
from common.ids import new_id
from common.private_files import write_private_json
from sql import query

SECRETS_FILE = "secrets.json"
CREDENTIALS_FILE = "credentials.json"


def read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_keys(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """NOTEBOOKS_SECRET_KEY and NOTEBOOKS_SIGNING_KEYS: the environment's when
    set, else generated once and kept in `<data>/secrets.json` (mode 600)."""
    path = data_dir / SECRETS_FILE
    stored = read_json(path) or {}
    generated = {
        "NOTEBOOKS_SECRET_KEY": secrets.token_urlsafe(48),
        "NOTEBOOKS_SIGNING_KEYS": f"{new_id().lower()[:8]}:{secrets.token_urlsafe(48)}",
    }
    keys: dict[str, str] = {}
    changed = False
    for name, fresh in generated.items():
        if env.get(name):
            keys[name] = env[name]
        elif isinstance(stored.get(name), str) and stored[name]:
            keys[name] = str(stored[name])
        else:
            keys[name] = stored[name] = fresh
            changed = True
    if changed:
        write_private_json(path, stored, indent=2)
    return keys


@dataclass(frozen=True)
class FirstAdmin:
    organization_id: str
    member_id: str
    token: str


def _token_owner(conn: psycopg.Connection, token: str) -> dict[str, str] | None:
    cur = conn.cursor(row_factory=dict_row)
    params = {"secret_hash": tokens.hash_token(token)}
    return cur.execute(query("admin_token_owner"), params).fetchone()


def mint_token(
    conn: psycopg.Connection[Any],
    member_id: str,
    name: str,
    expires_in: int | None = None,
    *,
    read_only: bool = False,
) -> tuple[str, Any]:
    """A new API token for the member: its secret (only the hash is stored, so
    this is the one chance to show it) and the stored row. `expires_in`:
    seconds it works for (None: until revoked); `read_only`: it reads only."""
    token = tokens.new_token()
    row = conn.execute(
        query("admin_create_token"),
        {
            "id": new_id(),
            "member_id": member_id,
            "name": name,
            "prefix": tokens.token_prefix(token),
            "secret_hash": tokens.hash_token(token),
            "expires_in": expires_in,
            "read_only": read_only,
        },
    ).fetchone()
    return token, row


# pg_advisory_xact_lock key of the first-run set-up ("nbfirst" as digits).
FIRST_RUN_LOCK = 7_362_667_263


def ensure_first_admin(database_url: str, credentials: dict[str, object] | None) -> FirstAdmin:
    """Reuse the credentials file's token while it still works; else give the
    first org admin a new token; else create the organization and its admin."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        # Two `notebooks up` on one database take turns: the second finds the
        # first's admin instead of making a second organization.
        conn.execute("select pg_advisory_xact_lock(%s)", (FIRST_RUN_LOCK,))
        token = credentials.get("token") if credentials else None
        if isinstance(token, str):
            owner = _token_owner(conn, token)
            if owner:
                return FirstAdmin(owner["organization_id"], owner["member_id"], token)
        cur = conn.cursor(row_factory=dict_row)
        admin = cur.execute(query("admin_first_admin")).fetchone()
        if admin is None and conn.execute("select 1 from organizations limit 1").fetchone():
            # Not a first run: its admins were disabled. A new organization
            # would take over credentials.json and hide every notebook.
            raise CliError(
                "no organization has an active organization admin; make one with"
                " `notebooks admin member create --org ORG --email EMAIL --name NAME"
                " --org-admin`, then run again"
            )
        if admin is None:
            org_id, member_id = new_id(), new_id()
            conn.execute(query("admin_create_organization"), {"id": org_id, "name": "Default"})
            conn.execute(
                query("admin_create_member"),
                {
                    "id": member_id,
                    "organization_id": org_id,
                    "email": "admin@localhost",
                    "name": "Admin",
                    "organization_admin": True,
                },
            )
            # A usable default so a new user can create a notebook at once.
            conn.execute(
                query("admin_create_workload_config"),
                {
                    "id": new_id(),
                    "organization_id": org_id,
                    "name": "default",
                    "description": "Sail standalone, created by `notebooks up`",
                    "mode": "standalone",
                    "sail": Jsonb({}),
                    "marimo": Jsonb({}),
                    "workers": 1,
                    "env": Jsonb({}),
                },
            )
            admin = {"id": member_id, "organization_id": org_id}
        token, _ = mint_token(conn, admin["id"], "notebooks up")
        return FirstAdmin(admin["organization_id"], admin["id"], token)


def write_credentials(
    data_dir: Path, *, api_url: str, proxy_url: str, database_url: str, admin: FirstAdmin
) -> Path:
    path = data_dir / CREDENTIALS_FILE
    write_private_json(
        path,
        {
            "apiUrl": api_url,
            "proxyUrl": proxy_url,
            "databaseUrl": database_url,
            "organizationId": admin.organization_id,
            "memberId": admin.member_id,
            "token": admin.token,
        },
        indent=2,
    )
    return path
