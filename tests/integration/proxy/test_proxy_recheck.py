"""The periodic re-check against a real database, pass by pass: the test
registers connections with the proxy's registry and runs passes itself
(`app._recheck`), so nothing runs on a timer. One statement per pass however
many connections; its answers the same as the per-request lookup's; how
long a connection has gone unconfirmed measured on the monotonic clock."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from proxy_helpers import (
    ProxyUnderTest,
    api_token_of,
    eventually,
    free_port,
    proxy_in_front,
    refreshes,
    sql,
)

from common.clock import FakeClock
from common.settings import Settings
from proxy import app
from proxy.app import CACHE, PROXY, UNCONFIRMED_SECONDS
from proxy.cookie import ProxySession
from proxy.live import UNCONFIRMED, Live, read_at

NB = "NBRECHECK1"


class WallSteppedClock(FakeClock):
    """A FakeClock whose wall clock can also be stepped on its own, as NTP or
    an operator steps a host's; its monotonic clock never moves but forward."""

    def __init__(self) -> None:
        super().__init__(datetime.now(UTC))
        self.step = timedelta()

    def now(self) -> datetime:
        return super().now() + self.step


@contextlib.asynccontextmanager
async def recheck_proxy(
    settings: Settings, clock: FakeClock | None = None
) -> AsyncIterator[ProxyUnderTest]:
    """A proxy in front of nothing (no request is forwarded here) whose only
    passes are the test's: no NOTIFY listener, no timer."""
    async with proxy_in_front(
        settings,
        f"http://127.0.0.1:{free_port()}",
        "unused",
        NB,
        clock=clock,
        listen_for_changes=False,
    ) as p:
        yield p


@dataclasses.dataclass
class Connection:
    live: Live
    ended: list[str]  # the reasons it was stopped with


async def admit(p: ProxyUnderTest, member: str, token_id: str | None = None) -> Connection:
    """A connection of `member`'s, registered as forwarding registers one:
    confirmed when the access it was admitted with was read."""
    session = ProxySession(
        member_id=member,
        token_id=token_id or api_token_of(member),
        notebook_id=NB,
        session_id=p.world.session_id,
        mode="view",
        expires_at=int((p.clock.now() + timedelta(hours=12)).timestamp()),
    )
    target = await p.server.app[CACHE].lookup(session, NB)
    assert target is not None and target.can_view
    ended: list[str] = []
    live = Live(session, ended.append, read_at(target, p.clock))
    p.server.app[PROXY].registry.add(live)
    return Connection(live, ended)


class _Counted:
    """A pooled connection whose statements are written down."""

    def __init__(self, conn: Any, sent: list[str]) -> None:
        self._conn = conn
        self._sent = sent

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self._sent.append(str(statement))
        return await self._conn.execute(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@contextlib.contextmanager
def statements(p: ProxyUnderTest) -> Any:
    """Every statement sent through the proxy's pool meanwhile."""
    from proxy.app import POOL

    pool = p.server.app[POOL]
    original = pool.connection
    sent: list[str] = []

    @contextlib.asynccontextmanager
    async def connection(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with original(*args, **kwargs) as conn:
            yield _Counted(conn, sent)

    pool.connection = connection  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        pool.connection = original  # type: ignore[method-assign]


MANY = 400


async def test_a_pass_looks_every_connections_access_up_in_one_statement(
    settings: Settings,
) -> None:
    """Hundreds of (member, notebook, API token) keys and a pool of one
    connection: one statement, every connection judged from it (each
    revoked token's ended, the rest confirmed), and every key's cache entry
    what a request's own lookup would read."""
    tight = dataclasses.replace(settings, db_pool_max=1)
    async with recheck_proxy(tight) as p:
        members = [f"MANY{i}" for i in range(MANY)]
        with psycopg.connect(tight.database_url, autocommit=True) as conn, conn.transaction():
            conn.execute(
                "insert into members (id, organization_id, email, name)"
                " select m, %s, lower(m) || '@example.com', m from unnest(%s::text[]) m",
                (p.world.org, members),
            )
            conn.execute(
                "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
                " select 'T' || m, m, 't', 'p', convert_to('hash-' || m, 'UTF8')"
                " from unnest(%s::text[]) m",
                (members,),
            )
            conn.execute(
                "insert into team_memberships (team_id, member_id, role)"
                " select %s, m, 'viewer' from unnest(%s::text[]) m",
                (p.world.viewer_team, members),
            )
        connections = {m: await admit(p, m) for m in members}
        twice = await admit(p, members[0])  # a second connection of one key
        revoked = members[::7]
        sql(
            tight.database_url,
            "update api_tokens set revoked_at = now() where member_id = any(%s)",
            (revoked,),
        )
        p.clock.advance(UNCONFIRMED_SECONDS)  # so "confirmed" shows
        started = p.clock.monotonic()
        with statements(p) as sent:
            await app._recheck(p.server.app, "*")
        assert len(sent) == 1 and "unnest" in sent[0]
        for member, connection in connections.items():
            if member in revoked:
                assert connection.ended == ["access"], member
            else:
                assert connection.ended == [], member
                assert connection.live.confirmed >= started, member
        assert twice.ended == ["access"]  # members[0]'s token is among the revoked
        cache = p.server.app[CACHE]
        for member in members[1:50]:
            session = connections[member].live.session
            found, cached = cache.peek(session, NB)
            assert found and cached == await cache.lookup(session, NB, fresh=True)


async def test_the_passes_statement_answers_as_a_requests_lookup_does(settings: Settings) -> None:
    """Many keys in one statement each get their own answer: for every kind
    of key (each role, each way access is lost, keys with no row) the pass
    reads what a request's lookup of that key alone reads."""
    async with recheck_proxy(settings) as p:
        w = p.world
        with psycopg.connect(settings.database_url, autocommit=True) as conn, conn.transaction():
            conn.execute("insert into organizations (id, name) values ('ORG2', 'other')")
            for member, org in (
                ("DISABLED1", w.org),
                ("REVOKED1", w.org),
                ("EXPIRED1", w.org),
                ("ADMIN1", w.org),
                ("FOREIGN1", "ORG2"),
            ):
                conn.execute(
                    "insert into members (id, organization_id, email, name, organization_admin)"
                    " values (%s, %s, %s, %s, %s)",
                    (member, org, f"{member.lower()}@example.com", member, member != "DISABLED1"),
                )
                conn.execute(
                    "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
                    " values (%s, %s, 't', 'p', %s)",
                    (api_token_of(member), member, f"hash-{member}".encode()),
                )
                conn.execute(
                    "insert into team_memberships (team_id, member_id, role)"
                    " values (%s, %s, 'editor')",
                    (w.team, member),
                )
            conn.execute("update members set disabled_at = now() where id = 'DISABLED1'")
            conn.execute("update api_tokens set revoked_at = now() where id = 'TREVOKED1'")
            conn.execute(
                "update api_tokens set expires_at = now() + interval '1 hour'"
                " where id = 'TEXPIRED1'"
            )
            conn.execute(
                "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
                " desired_state, status, deleted_at, created_by, updated_by)"
                " values ('NBGONE1', %s, %s, 'WC1', 'gone', 'deleted', 'stopped', now(), %s, %s)",
                (w.org, w.owner, w.owner, w.owner),
            )
        keys = [
            *((m, NB, api_token_of(m)) for m in (w.owner, w.editor, w.viewer, w.outsider)),
            *((m, NB, api_token_of(m)) for m in ("DISABLED1", "REVOKED1", "EXPIRED1", "ADMIN1")),
            ("FOREIGN1", NB, api_token_of("FOREIGN1")),  # an org admin, of another org
            (w.editor, NB, api_token_of(w.viewer)),  # another member's token
            (w.editor, NB, "TNOSUCH"),
            ("NOSUCH", NB, "TNOSUCH"),
            (w.owner, "NBGONE1", api_token_of(w.owner)),  # deleted: no row
            (w.owner, "NBNOSUCH", api_token_of(w.owner)),
        ]
        cache = p.server.app[CACHE]
        batch = await cache.refresh(keys)
        single = {}
        for key in keys:
            who = ProxySession(key[0], key[2], key[1], "", "view", 0)
            single[key] = await cache.lookup(who, key[1], fresh=True)
        assert batch == single
        # Not vacuous: the keys cover access granted and refused, and no row.
        assert {t.can_edit for t in batch.values() if t is not None} == {True, False}
        assert any(t is not None and t.token_expires_at for t in batch.values())
        assert batch[(w.owner, "NBGONE1", api_token_of(w.owner))] is None


async def test_a_pass_that_cannot_look_up_access_ends_every_connection_unconfirmed_too_long(
    settings: Settings,
) -> None:
    """The one statement failing leaves every connection's access unknown as
    of the pass's start: those confirmed UNCONFIRMED_SECONDS or more before
    it end, the others go on until a later pass."""
    async with recheck_proxy(settings) as p:
        older = await admit(p, p.world.owner)
        p.clock.advance(1)
        newer = await admit(p, p.world.editor)
        p.clock.advance(UNCONFIRMED_SECONDS - 1)
        async with refreshes(p, "raises") as seen:
            await app._recheck(p.server.app, "*")
            assert len(seen.keys) == 1 and len(seen.failures) == 1
            assert (older.ended, newer.ended) == ([UNCONFIRMED], [])
            p.clock.advance(1)
            await app._recheck(p.server.app, "*")
            assert newer.ended == [UNCONFIRMED]


async def test_a_lookup_whose_cancellation_hangs_does_not_hold_the_pass(
    settings: Settings,
) -> None:
    """On a hung database server (frozen, or a network partition) psycopg
    cancels a query by asking the server and waits up to 10 s for it: the
    pass waited as long (an audit froze PostgreSQL: nothing ended for 14 s).
    It gives up at its bound, and ends what has gone unconfirmed too long."""
    async with recheck_proxy(settings) as p:
        older = await admit(p, p.world.owner)
        p.clock.advance(1)
        newer = await admit(p, p.world.editor)
        p.clock.advance(UNCONFIRMED_SECONDS - 1)
        async with refreshes(p, "hangs_on_cancel") as seen:
            recheck = asyncio.create_task(app._recheck(p.server.app, "*"))
            done, _ = await asyncio.wait({recheck}, timeout=app.RECHECK_LOOKUP_SECONDS + 2)
            assert done, "the pass waited for the lookup's cancellation"
            await recheck
            assert (older.ended, newer.ended) == ([UNCONFIRMED], [])
            # While that lookup is still unanswered, the next pass does not
            # take another pooled connection for one: it fails closed at once.
            p.clock.advance(1)
            await asyncio.wait_for(app._recheck(p.server.app, "*"), 1)
            assert newer.ended == [UNCONFIRMED] and len(seen.keys) == 1
        await eventually(lambda: seen.failures, "the lookup given up on to end")
        await eventually(lambda: not p.server.app[app.ABANDONED], "it to be forgotten")


async def test_a_wall_clock_stepped_back_does_not_spare_an_unconfirmed_connection(
    settings: Settings,
) -> None:
    """The wall clock steps back an hour (NTP, an operator) after a good
    read: the connection still ends UNCONFIRMED_SECONDS after it, by the
    monotonic clock, not an hour and five seconds later."""
    clock = WallSteppedClock()
    async with recheck_proxy(settings, clock) as p:
        connection = await admit(p, p.world.owner)
        clock.step -= timedelta(hours=1)
        await app._recheck(p.server.app, "*")  # a good read after the step
        assert connection.ended == []
        clock.advance(UNCONFIRMED_SECONDS)
        async with refreshes(p, "raises"):
            await app._recheck(p.server.app, "*")
        assert connection.ended == [UNCONFIRMED]


async def test_a_wall_clock_stepped_forward_does_not_end_every_connection_at_once(
    settings: Settings,
) -> None:
    """The wall clock steps forward an hour just before a pass fails: the
    connection's last good read is still recent (monotonic clock), so it
    goes on, and ends only UNCONFIRMED_SECONDS after that read."""
    clock = WallSteppedClock()
    async with recheck_proxy(settings, clock) as p:
        connection = await admit(p, p.world.owner)
        clock.step += timedelta(hours=1)
        async with refreshes(p, "raises") as seen:
            await app._recheck(p.server.app, "*")
            assert len(seen.failures) == 1 and connection.ended == []
            clock.advance(UNCONFIRMED_SECONDS)
            await app._recheck(p.server.app, "*")
        assert connection.ended == [UNCONFIRMED]


async def test_a_lookup_overtaken_by_an_invalidation_is_not_cached(settings: Settings) -> None:
    """A request's lookup takes its snapshot, the member is removed from the
    team and the NOTIFY invalidates the cache, then the lookup's (stale)
    answer comes back: cached, it would let the express lane admit requests
    for a whole TTL. It is asked again instead, and the fresh answer kept."""
    async with recheck_proxy(settings) as p:
        w = p.world
        cache = p.server.app[CACHE]
        who = ProxySession(w.editor, api_token_of(w.editor), NB, "", "edit", 0)
        select = cache._select
        calls = 0

        async def overtaken(keys):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            answer = await select(keys)
            if calls == 1:  # the change commits, its NOTIFY lands before the answer
                sql(
                    settings.database_url,
                    "delete from team_memberships where member_id = %s",
                    (w.editor,),
                )
                cache.invalidate(f"member:{w.editor}")
            return answer

        cache._select = overtaken  # type: ignore[method-assign]
        target = await cache.lookup(who, NB, fresh=True)
        assert calls == 2
        assert target is not None and not target.can_view  # the fresh answer
        found, cached = cache.peek(who, NB)
        assert found and cached is not None and not cached.can_view
