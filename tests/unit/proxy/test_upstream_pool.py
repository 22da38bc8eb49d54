"""The express lane's upstream pool: what it keeps and what it prunes, over
real loopback connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

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
    pool = UpstreamPool()
    live, dead, stale = [await pool.connect(address) for _ in range(3)]
    for conn in (live, dead, stale):
        pool.give_back(conn)
    stale.idle_since -= MAX_IDLE_SECONDS + 1
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

    pool.prune()
    assert pool.take(address) is live
    assert pool.take(address) is None
    assert not stale.usable  # closed, not just forgotten

    pool.give_back(live)
    live.idle_since -= MAX_IDLE_SECONDS + 1
    pool.prune()
    assert pool._idle == {}  # an address nobody uses any more is forgotten
    pool.close()
