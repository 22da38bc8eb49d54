"""The pod watch: every change announces its notebook; a dropped watch
resumes from the last resourceVersion; 410 Gone relists and announces
notebooks whose pods vanished meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from kube_emulator import Changes, eventually, kubelet
from kube_emulator.cluster import NAMESPACE, Kube

from reconciler.runtime.base import SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import KubernetesRuntime


def spec(nid: str, sid: str = "S1") -> SessionSpec:
    return SessionSpec(nid, sid, "tok", WorkloadSpec(), f"/notebooks/{nid}")


class Watching:
    def __init__(self, rt: KubernetesRuntime) -> None:
        self.rt = rt
        self.changes = Changes()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.rt.run_watch(self.changes))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def watching(kube: Kube) -> AsyncIterator[Watching]:
    w = Watching(kube.runtime(watch_timeout_seconds=60, resync_seconds=3600))
    w.start()
    yield w
    if w.task is not None and not w.task.done():
        await w.stop()


def watch_calls(kube: Kube) -> list[dict[str, str]]:
    return [c.params for c in kube.emulator.calls if c.action == "watch"]


async def test_every_pod_change_announces_its_notebook(kube: Kube, watching: Watching) -> None:
    await eventually(lambda: _true(kube.emulator.open_watches == 1))
    kube.kubelet.default = kubelet.PENDING
    rt = kube.runtime()
    await rt.ensure_running(spec("NB1"))
    # two pods created, each moved to ContainerCreating: four announcements
    await eventually(lambda: _true(watching.changes.count("NB1") >= 4))
    before = watching.changes.count("NB1")
    kube.kubelet.apply(NAMESPACE, "nb-nb1-s1-sail", kubelet.CRASH_LOOP)
    await eventually(lambda: _true(watching.changes.count("NB1") == before + 1))
    # pods not ours (no managed-by label) are not watched
    kube.emulator.put(
        "",
        "pods",
        {"metadata": {"name": "x", "namespace": NAMESPACE, "labels": {}}},
        event="ADDED",
    )
    await rt.delete("NB1")
    await eventually(lambda: _true(watching.changes.count("NB1") == before + 3))
    assert set(watching.changes.calls) == {"NB1"}
    assert watching.rt.watcher.lists == 1 and watching.rt.watcher.breaks == 0


async def test_dropped_watch_resumes_from_last_resource_version(
    kube: Kube, watching: Watching
) -> None:
    kube.kubelet.default = kubelet.PENDING
    await kube.runtime().ensure_running(spec("NB1"))
    await eventually(lambda: _true(watching.changes.count("NB1") >= 4))
    last_seen = watching.rt.watcher.resource_version
    assert last_seen == str(kube.emulator.resource_version)
    # cut the connection mid-stream, and change a pod before the watch is back
    assert kube.emulator.drop_watches() == 1
    kube.kubelet.apply(NAMESPACE, "nb-nb1-s1-marimo", kubelet.RUN)
    count = watching.changes.count("NB1")
    await eventually(lambda: _true(watching.changes.count("NB1") == count + 1))
    watcher = watching.rt.watcher
    assert watcher.breaks == 1
    assert watcher.lists == 1  # resumed, not relisted
    calls = watch_calls(kube)
    assert len(calls) == 2 and calls[1]["resourceVersion"] == last_seen
    assert watcher.resource_version == str(kube.emulator.resource_version)


async def test_gone_resource_version_relists_and_announces_vanished_notebooks(
    kube: Kube, watching: Watching
) -> None:
    rt = kube.runtime()
    await rt.ensure_running(spec("NB1"))
    await rt.ensure_running(spec("NB2"))
    await eventually(lambda: _true({"NB1", "NB2"} <= set(watching.changes.calls)))
    await watching.stop()
    # while nobody watched: NB1's pods vanished and the history was compacted
    for pod in ("nb-nb1-s1-sail", "nb-nb1-s1-marimo"):
        kube.emulator.remove("", "pods", NAMESPACE, pod)
    kube.emulator.compact()
    watching.changes.calls.clear()
    lists = watching.rt.watcher.lists
    watching.start()  # resumes from the old resourceVersion: 410 Gone
    await eventually(lambda: _true(watching.rt.watcher.lists == lists + 1))
    await eventually(lambda: _true({"NB1", "NB2"} <= set(watching.changes.calls)))
    assert watch_calls(kube)[-2]["resourceVersion"] != watch_calls(kube)[-1]["resourceVersion"]


async def test_gone_answered_on_the_watch_request_itself_relists_at_once(
    kube: Kube, watching: Watching
) -> None:
    """An API server may refuse a too-old resourceVersion with HTTP 410 on
    the watch request rather than as an ERROR event in its stream: that is
    a relist now, not a broken watch retried on the same version until the
    next resync (600 s)."""
    rt = kube.runtime()
    await rt.ensure_running(spec("NB1"))
    await eventually(lambda: _true("NB1" in watching.changes.calls))
    await watching.stop()
    lists, breaks = watching.rt.watcher.lists, watching.rt.watcher.breaks
    kube.emulator.fail_code = 410
    kube.emulator.fail_actions = frozenset({"watch"})
    kube.emulator.fail_next["pods"] = 1  # the restart's first watch request
    watching.start()  # resumes from its resourceVersion (no resync due): 410, relisted
    await eventually(lambda: _true(watching.rt.watcher.lists == lists + 1))
    assert watching.rt.watcher.breaks == breaks


async def test_failed_list_is_retried(kube: Kube) -> None:
    kube.emulator.fail_next["pods"] = 2
    w = Watching(kube.runtime())
    w.start()
    try:
        await eventually(lambda: _true(w.rt.watcher.lists == 1))
        assert w.rt.watcher.breaks == 2
    finally:
        await w.stop()


async def test_server_side_timeout_reopens_the_watch(kube: Kube) -> None:
    w = Watching(kube.runtime(watch_timeout_seconds=1, resync_seconds=3600))
    w.start()
    try:
        await eventually(lambda: _true(len(watch_calls(kube)) >= 2), timeout=5)
        assert w.rt.watcher.breaks == 0 and w.rt.watcher.lists == 1
        assert watch_calls(kube)[0]["timeoutSeconds"] == "1"
    finally:
        await w.stop()


async def _true(value: bool) -> bool:
    return value


async def test_cancelled_watch_ends_its_request_thread_at_once(kube: Kube) -> None:
    w = Watching(kube.runtime(watch_timeout_seconds=300, resync_seconds=3600))
    w.start()
    await eventually(lambda: _true(kube.emulator.open_watches == 1))
    await eventually(lambda: _true(_watch_threads() == 1))
    await w.stop()  # cancels run_watch (the worker does this on shutdown)
    # not after the 300 s server timeout: the socket was shut down
    await eventually(lambda: _true(_watch_threads() == 0), timeout=5)


def _watch_threads() -> int:
    return sum(t.name == "k8s-pod-watch" and t.is_alive() for t in threading.enumerate())


async def test_bookmarks_move_the_resume_point_without_announcing(kube: Kube) -> None:
    w = Watching(kube.runtime(watch_timeout_seconds=1, resync_seconds=3600))
    w.start()
    try:
        await eventually(lambda: _true(kube.emulator.open_watches == 1))
        # objects the watch does not select move the cluster's resourceVersion
        kube.emulator.put("", "secrets", {"metadata": {"name": "s", "namespace": NAMESPACE}})
        target = str(kube.emulator.resource_version)
        await eventually(lambda: _true(w.rt.watcher.resource_version == target), timeout=5)
        await eventually(lambda: _true(watch_calls(kube)[-1]["resourceVersion"] == target))
        assert w.changes.calls == [] and w.rt.watcher.lists == 1
    finally:
        await w.stop()


async def test_resync_relists_and_announces_every_notebook(kube: Kube) -> None:
    """A watch re-opened `resync_seconds` (on the runtime's clock) after
    the last list relists first, announcing every notebook again."""
    rt = kube.runtime()
    await rt.ensure_running(spec("NB1"))
    await rt.ensure_running(spec("NB2"))
    w = Watching(kube.runtime(watch_timeout_seconds=60, resync_seconds=600))
    w.start()
    try:
        await eventually(lambda: _true(kube.emulator.open_watches == 1))
        assert w.rt.watcher.lists == 1
        assert w.changes.count("NB1") == 1 and w.changes.count("NB2") == 1
        # Not yet due: the re-opened watch resumes without a list.
        kube.clock.advance(599)
        assert kube.emulator.drop_watches() == 1
        await eventually(lambda: _true(len(watch_calls(kube)) == 2))
        await eventually(lambda: _true(kube.emulator.open_watches == 1))
        assert w.rt.watcher.lists == 1
        # Due: the next one lists first.
        kube.clock.advance(1)
        assert kube.emulator.drop_watches() == 1
        await eventually(lambda: _true(w.rt.watcher.lists == 2))
        await eventually(lambda: _true(w.changes.count("NB1") == 2))
        assert w.changes.count("NB2") == 2
        await eventually(lambda: _true(len(watch_calls(kube)) == 3))
    finally:
        await w.stop()
