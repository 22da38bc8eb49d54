"""The pod watch never reconnects in a tight loop: every break waits its
back-off (never 0, with jitter) on the runtime's clock, the failure count is
reset only by an event that is not an ERROR, a few consecutive failures (or
an ERROR saying the resourceVersion is too large) relist, and a watch that
ends with no event at all is re-opened only after a wait.

The runtime's clock here is a SteppingClock: the watch's waits end only when
the test advances it, so each test sees exactly which requests each wait
separates (no real time passes, nothing is timed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from kube_emulator import Changes, eventually
from kube_emulator.cluster import NAMESPACE, Kube
from kubernetes import client

from common.clock import SteppingClock
from reconciler.runtime.kubernetes import KubernetesRuntime, KubernetesSettings
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.watch import (
    EMPTY_STREAM_WAIT_SECONDS,
    JITTER,
    RELIST_AFTER_FAILURES,
    PodWatcher,
)

BACKOFF = (1.0, 2.0, 4.0, 8.0)


class Watch:
    def __init__(self, kube: Kube, rt: KubernetesRuntime, clock: SteppingClock) -> None:
        self.kube, self.rt, self.clock = kube, rt, clock
        self.changes = Changes()
        self.task = asyncio.create_task(rt.run_watch(self.changes))

    @property
    def watches(self) -> int:
        return sum(c.action == "watch" for c in self.kube.emulator.calls)

    @property
    def lists(self) -> int:
        return self.rt.watcher.lists

    async def waiting(self) -> float:
        """Wait until the watch is parked in a wait; how long it asked for."""

        async def parked() -> bool:
            return bool(self.clock.asleep)

        await eventually(parked)
        return self.clock.slept[-1]

    async def wait_out(self) -> None:
        """End the wait the watch is parked in: the clock moved by exactly
        what it asked for (the same sum the sleep's due time is)."""
        self.clock.advance(self.clock.slept[-1])

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
async def watch(kube: Kube, clock: SteppingClock) -> AsyncIterator[Watch]:
    rt = kube.runtime(
        clock=clock, reconnect_backoff=BACKOFF, watch_timeout_seconds=60, resync_seconds=3600
    )
    w = Watch(kube, rt, clock)
    yield w
    if not w.task.done():
        await w.stop()


def within(wait: float, base: float) -> bool:
    return base <= wait <= base * (1 + JITTER)


def error_events(kube: Kube, count: int, code: int = 500, message: str = "") -> None:
    """The next `count` watch requests are answered with one ERROR event."""
    kube.emulator.fail_as_event = True
    kube.emulator.fail_actions = frozenset({"watch"})
    kube.emulator.fail_code = code
    kube.emulator.fail_message = message or "etcd leader changed"
    kube.emulator.fail_next["pods"] = count


async def test_error_events_back_off_and_relist_after_consecutive_failures(
    kube: Kube, watch: Watch
) -> None:
    """An ERROR event is an event: the failure count must not be reset by
    it, or a server answering every watch with one is asked again at once,
    forever (measured: ~1,200 requests a second)."""
    error_events(kube, 100)
    waits = []
    for failures in range(1, RELIST_AFTER_FAILURES + 2):
        waits.append(await watch.waiting())
        assert watch.watches == failures  # parked: nothing more is asked meanwhile
        await watch.wait_out()
    assert [within(w, b) for w, b in zip(waits, BACKOFF, strict=True)] == [True] * len(waits)
    # the third consecutive failure relisted before the fourth watch
    assert watch.lists == 2 and watch.rt.watcher.breaks == RELIST_AFTER_FAILURES + 1


async def test_an_event_that_is_not_an_error_resets_the_back_off(kube: Kube, watch: Watch) -> None:
    error_events(kube, 2)
    assert within(await watch.waiting(), BACKOFF[0])
    await watch.wait_out()
    assert within(await watch.waiting(), BACKOFF[1])
    await watch.wait_out()
    await eventually(lambda: _true(kube.emulator.open_watches == 1))
    # a real event, then the connection drops: the count starts again
    kube.emulator.put("", "pods", _pod("NB1"), event="ADDED")
    await eventually(lambda: _true(watch.changes.count("NB1") == 1))
    assert kube.emulator.drop_watches() == 1
    assert within(await watch.waiting(), BACKOFF[0])


async def test_a_too_large_resource_version_relists(kube: Kube, watch: Watch) -> None:
    """An API server whose cache is behind the resourceVersion asked for
    answers 504 "Too large resource version" (as an ERROR event): resuming
    from it again cannot help, a list can."""
    error_events(kube, 1, 504, "Too large resource version: 99, current: 5")
    assert within(await watch.waiting(), BACKOFF[0])
    assert watch.lists == 1
    await watch.wait_out()
    await eventually(lambda: _true(watch.lists == 2))
    await eventually(lambda: _true(kube.emulator.open_watches == 1))


async def test_gone_again_right_after_a_relist_backs_off(kube: Kube, watch: Watch) -> None:
    """410 Gone relists at once; but a watch from the resourceVersion a list
    has just given that is Gone again is a failing server, not history
    compacted under a long watch: relisting at once would loop."""
    error_events(kube, 100, 410, "too old resource version")
    assert within(await watch.waiting(), BACKOFF[0])
    assert watch.lists == 1 and watch.watches == 1
    await watch.wait_out()
    assert within(await watch.waiting(), BACKOFF[1])
    assert watch.lists == 2 and watch.watches == 2


async def test_a_watch_ended_with_no_event_is_reopened_only_after_a_wait(
    kube: Kube, watch: Watch
) -> None:
    kube.emulator.empty_watches = 2
    for count in (1, 2):
        assert within(await watch.waiting(), EMPTY_STREAM_WAIT_SECONDS)
        assert watch.watches == count
        await watch.wait_out()
    await eventually(lambda: _true(kube.emulator.open_watches == 1))
    assert watch.rt.watcher.breaks == 0 and watch.lists == 1


async def test_the_runtimes_first_wait_after_a_failure_is_never_zero(
    kube: Kube, clock: SteppingClock
) -> None:
    cfg = client.Configuration()
    cfg.host = kube.url
    settings = KubernetesSettings(namespace=NAMESPACE, resync_seconds=3600)
    rt = KubernetesRuntime(settings, client.ApiClient(cfg), clock=clock)  # default back-off
    kube.runtimes.append(rt)  # closed with the cluster
    error_events(kube, 1)
    w = Watch(kube, rt, clock)
    try:
        assert await w.waiting() > 0
    finally:
        await w.stop()
    with pytest.raises(ValueError, match="positive"):
        PodWatcher(rt.api, "a=b", watch_timeout_seconds=1, resync_seconds=1, backoff=(0.0, 1.0))


def _pod(nid: str) -> dict[str, object]:
    meta = {"name": f"p-{nid.lower()}", "namespace": NAMESPACE, "labels": n.notebook_labels(nid)}
    return {"metadata": meta}


async def _true(value: bool) -> bool:
    return value
