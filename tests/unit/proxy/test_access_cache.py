"""The access cache's TTL, on the proxy's clock: an entry is answered from
the cache until the TTL has passed on that clock, then looked up again."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from common.clock import FakeClock
from proxy.access import AccessCache, Key, Target

TARGET = Target("NB1", "running", "S1", "tok", "http://127.0.0.1:1", True, True)


class Who:
    member_id = "M1"
    token_id = "T1"


def counting_cache(clock: FakeClock, ttl: float) -> tuple[AccessCache, list[set[Key]]]:
    """A cache whose database is a stub: every key it is asked for exists,
    and each statement's keys are recorded."""
    cache = AccessCache(None, ttl=ttl, clock=clock)  # type: ignore[arg-type]
    statements: list[set[Key]] = []

    async def select(keys: Collection[Key]) -> dict[Key, Any]:
        statements.append(set(keys))
        return {key: TARGET for key in keys}

    cache._select = select  # type: ignore[method-assign]
    return cache, statements


async def test_an_entry_is_looked_up_again_once_its_ttl_has_passed_on_the_clock() -> None:
    clock = FakeClock()
    cache, statements = counting_cache(clock, ttl=5.0)
    key = AccessCache.key(Who(), "NB1")

    assert await cache.lookup(Who(), "NB1") == TARGET
    assert statements == [{key}]
    clock.advance(4)
    assert cache.peek(Who(), "NB1") == (True, TARGET)  # within the TTL: cached
    assert await cache.lookup(Who(), "NB1") == TARGET
    assert len(statements) == 1

    clock.advance(1)  # 5 s since the entry was read: expired
    assert cache.peek(Who(), "NB1") == (False, None)
    assert await cache.lookup(Who(), "NB1") == TARGET
    assert statements == [{key}, {key}]
    assert cache.peek(Who(), "NB1") == (True, TARGET)  # cached afresh, from now
