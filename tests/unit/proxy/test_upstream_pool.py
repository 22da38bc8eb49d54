"""The express lane's upstream pool: what it keeps and what it prunes, over
real loopback connections. How long a connection has idled is read from the
pool's clock, which the tests advance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from common.clock import FakeClock
from proxy.upstream import MAX_IDLE_SECONDS, Address, UpstreamPool


@pytest.fixture
async def server() -> AsyncIterator[tuple[Address, list[asyncio.StreamWriter]]]:
    accepted: list[asyncio.StreamWriter] = []

    async def keep(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    srv = await asyncio.start_server(keep, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield Address("127.0.0.1", port, "", f"127.0.0.1:{port}"), accepted
    finally:
        for writer in accepted:
            writer.close()
        srv.close()
        await srv.wait_closed()


async def test_prune_drops_dead_and_stale_connections_and_empty_addresses(server) -> None:  # type: ignore[no-untyped-def]
    address, accepted = server
    clock = FakeClock()
    pool = UpstreamPool(clock)
    stale = await pool.connect(address)
    pool.give_back(stale)  # idle from 0 s
    clock.advance(1)
    live, dead = [await pool.connect(address) for _ in range(2)]
    for conn in (live, dead):
        pool.give_back(conn)  # idle from 1 s
    for _ in range(500):
        if len(accepted) == 3:
            break
        await asyncio.sleep(0.01)
    assert dead.transport is not None
    ours = dead.transport.get_extra_info("sockname")
    (theirs,) = [w for w in accepted if w.get_extra_info("peername") == ours]
    theirs.close()  # the server ends that one
    for _ in range(500):
        if not dead.usable:
            break
        await asyncio.sleep(0.01)
    assert not dead.usable

    clock.advance(MAX_IDLE_SECONDS - 1)  # `stale` has idled MAX_IDLE_SECONDS, `live` 1 s less
    pool.prune()
    assert pool.take(address) is live
    assert pool.take(address) is None
    assert not stale.usable  # closed, not just forgotten

    pool.give_back(live)
    clock.advance(MAX_IDLE_SECONDS - 1)
    pool.prune()
    assert [c for idle in pool._idle.values() for c in idle] == [live]  # not idle long enough
    clock.advance(1)
    pool.prune()
    assert pool._idle == {}  # an address nobody uses any more is forgotten
    assert not live.usable
    pool.close()


async def test_a_connection_idle_too_long_is_never_taken(server) -> None:  # type: ignore[no-untyped-def]
    address, _ = server
    clock = FakeClock()
    pool = UpstreamPool(clock)
    conn = await pool.connect(address)
    pool.give_back(conn)
    clock.advance(MAX_IDLE_SECONDS - 1)
    assert pool.take(address) is conn  # still fresh enough: reused

    pool.give_back(conn)  # idle from now on
    clock.advance(MAX_IDLE_SECONDS)
    assert pool.take(address) is None  # past MAX_IDLE_SECONDS: a new connection is made
    assert not conn.usable  # and the stale one closed
    pool.close()
