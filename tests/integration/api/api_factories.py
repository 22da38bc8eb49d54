"""Factories for API tests: organizations, members, tokens, teams, configs and
notebooks written directly to the test's database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from common.clock import FakeClock
from common.ids import new_id
from common.settings import Settings
from common.tokens import hash_token, new_token, token_prefix
from sql import query


@dataclass(frozen=True)
class Member:
    id: str
    org: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    """Rows straight into PostgreSQL (trivial SQL, fixtures only)."""

    def __init__(self, conn: psycopg.Connection[Any], clock: FakeClock) -> None:
        self.conn = conn
        self.clock = clock

    def org(self) -> str:
        org_id = new_id()
        self.conn.execute(
            "insert into organizations (id, name) values (%s, %s)", (org_id, f"org {org_id}")
        )
        return org_id

    def member(self, org: str, *, admin: bool = False) -> Member:
        member_id = new_id()
        self.conn.execute(
            "insert into members (id, organization_id, email, name, organization_admin,"
            " created_at) values (%s, %s, %s, %s, %s, %s)",
            (
                member_id,
                org,
                f"{member_id.lower()}@example.com",
                f"Member {member_id}",
                admin,
                self.clock.now(),
            ),
        )
        return Member(member_id, org, self.token(member_id))

    def token(self, member_id: str) -> str:
        secret = new_token()
        self.conn.execute(
            "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
            " values (%s, %s, 'test', %s, %s)",
            (new_id(), member_id, token_prefix(secret), hash_token(secret)),
        )
        return secret

    def team(self, org: str, name: str | None = None) -> str:
        team_id = new_id()
        self.conn.execute(
            "insert into teams (id, organization_id, name, created_at) values (%s, %s, %s, %s)",
            (team_id, org, name or f"team {team_id}", self.clock.now()),
        )
        return team_id

    def join(self, team: str, member: Member, role: str) -> None:
        self.conn.execute(
            "insert into team_memberships (team_id, member_id, role) values (%s, %s, %s)",
            (team, member.id, role),
        )

    def config(self, org: str) -> str:
        config_id = new_id()
        self.conn.execute(
            "insert into workload_configs (id, organization_id, name, created_at, updated_at)"
            " values (%s, %s, %s, %s, %s)",
            (config_id, org, f"config {config_id}", self.clock.now(), self.clock.now()),
        )
        return config_id

    def notebook(
        self,
        owner: Member,
        config: str,
        *,
        status: str = "stopped",
        teams: tuple[str, ...] = (),
        created_at: datetime | None = None,
    ) -> str:
        nb_id = new_id()
        at = created_at or self.clock.now()
        session = new_id() if status not in ("stopped", "failed") else None
        self.conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " status, desired_state, session_id, created_at, created_by, updated_at, updated_by)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                nb_id,
                owner.org,
                owner.id,
                config,
                f"nb {nb_id}",
                status,
                "stopped" if status in ("stopped", "failed") else "running",
                session,
                at,
                owner.id,
                at,
                owner.id,
            ),
        )
        for team in teams:
            self.conn.execute(
                "insert into notebook_teams (notebook_id, team_id) values (%s, %s)", (nb_id, team)
            )
        return nb_id

    def event(
        self,
        notebook: str,
        org: str,
        to: str,
        *,
        at: datetime | None = None,
        reason: str = "",
        times: int = 1,
    ) -> None:
        """`times` events straight into the history, by the platform, at `at`
        (default now): the notebook's row stays as it is."""
        self.conn.execute(
            "insert into notebook_events (notebook_id, organization_id, to_status, reason,"
            " actor, created_at) select %s, %s, %s, %s, 'reconciler', %s"
            " from generate_series(1, %s)",
            (notebook, org, to, reason, at or self.clock.now(), times),
        )

    def reconciler_sets(self, notebook: str, status: str, reason: str) -> None:
        """A status change by the workers, through the statement they use."""
        self.conn.execute(
            query("set_status"),
            {
                "id": notebook,
                "status": status,
                "status_message": reason,
                "reason": None,
                "actor": "reconciler",
                "now": self.clock.now(),
                "record_unchanged": False,
            },
        )

    def value(self, sql: str, *params: object) -> Any:
        row = self.conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        return None if row is None else row[0]

    def jobs(self, notebook_id: str) -> int:
        return int(
            self.value(
                "select count(*) from pgqueuer where entrypoint = 'reconcile' and payload = %s",
                notebook_id.encode(),
            )
        )


@dataclass
class World:
    """One organization with every kind of caller around one shared notebook."""

    org: str
    config: str
    team: str
    owner: Member
    admin: Member
    team_admin: Member
    editor: Member
    viewer: Member
    outsider: Member  # same org, no access
    stranger: Member  # another organization (an org admin there)
    notebook: str


def make_world(factory: Factory) -> World:
    org = factory.org()
    config = factory.config(org)
    team = factory.team(org, "data")
    owner = factory.member(org)
    team_admin, editor, viewer = factory.member(org), factory.member(org), factory.member(org)
    for m, role in ((team_admin, "admin"), (editor, "editor"), (viewer, "viewer")):
        factory.join(team, m, role)
    other_org = factory.org()
    return World(
        org=org,
        config=config,
        team=team,
        owner=owner,
        admin=factory.member(org, admin=True),
        team_admin=team_admin,
        editor=editor,
        viewer=viewer,
        outsider=factory.member(org),
        stranger=factory.member(other_org, admin=True),
        notebook=factory.notebook(owner, config, teams=(team,)),
    )


async def until_waiting_on_locks(factory: Factory, n: int, pending: Any, what: str) -> None:
    """Poll (no fixed sleep) until `n` sessions wait on a lock; fails if
    `pending` (the requests expected to wait) finished first."""
    while (
        factory.value(
            "select count(*) from pg_stat_activity"
            " where wait_event_type = 'Lock' and datname = current_database()"
        )
        < n
    ):
        assert not pending.done(), what
        await asyncio.sleep(0.01)


async def body_of(resp: Any) -> Any:
    text = await resp.text()
    return json.loads(text) if text else None


async def refused(resp: Any, status: int, code: str, field: str | None = None) -> dict:
    """A problem+json answer of `status` and `code` (and `field`), its body."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await body_of(resp)
    assert body["code"] == code, body
    if field is not None:
        assert body["field"] == field, body
    return body  # type: ignore[no-any-return]


@asynccontextmanager
async def held(settings: Settings, statement: str, *params: object) -> AsyncIterator[None]:
    connect = psycopg.AsyncConnection.connect(settings.database_url)
    async with await connect as holder, holder.transaction(force_rollback=True):
        await holder.execute(statement, params)
        yield


async def write_then_removal(
    factory: Factory,
    settings: Settings,
    hold: tuple[str, object],
    write: Callable[[], Awaitable[Any]],
    removal: Callable[[], Awaitable[Any]],
) -> tuple[Any, Any]:
    """`write` waits mid-transaction on what `hold` (a statement and its
    parameter, run in another transaction) holds, its access already
    checked; `removal` (a revocation, a disabling, a member taken off a
    team), sent then, must wait for it too, and answer only after the write
    has committed. Both answers."""
    async with held(settings, *hold):
        writing = asyncio.ensure_future(write())
        await until_waiting_on_locks(factory, 1, writing, "the write did not wait")
        removing = asyncio.ensure_future(removal())
        await until_waiting_on_locks(factory, 2, removing, "the revocation did not wait")
        assert not writing.done()
        # What is promised is the order of commits, not of answers (two
        # responses race to the client): the removal waits on a lock the
        # write holds, so it commits after the write, whatever answers first.
        assert waits_on_a_waiter(factory), "the revocation waits on something else"
    return await writing, await removing


def waits_on_a_waiter(factory: Factory) -> bool:
    """Some session waits on a lock held by a session that itself waits on
    one: a chain (here: the removal behind the write behind the hold)."""
    return bool(
        factory.value(
            "select exists (select 1 from pg_stat_activity a, pg_stat_activity b"
            " where a.datname = current_database() and a.wait_event_type = 'Lock'"
            " and b.wait_event_type = 'Lock' and b.pid = any(pg_blocking_pids(a.pid)))"
        )
    )
