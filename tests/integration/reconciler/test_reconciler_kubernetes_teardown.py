"""Reconcile passes against the Kubernetes runtime on the API emulator
(tests/kube_emulator): a teardown cut short is finished before the notebook
reads `stopped` (or `failed`), and what the runtime runs for a notebook this
database never had is left alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog.testing
from kube_emulator import kubelet
from kube_emulator.cluster import Kube, running_kube
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY

from common.clock import FakeClock
from common.ids import new_id
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import LogTail, Observation, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import KubernetesRuntime
from reconciler.runtime.kubernetes import names as n


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube() as k:
        yield k


class DiesMidTeardown:
    """The Kubernetes runtime, except that while `dying` a teardown stops
    after deleting the pods (and the rights a driver would use), as a worker
    SIGKILLed at that point would: the Secret, Services and NetworkPolicies
    stay, and nothing the runtime observes (pods) says so."""

    def __init__(self, rt: KubernetesRuntime) -> None:
        self.rt = rt
        self.dying = True

    async def observe(self, notebook_id: str) -> Observation:
        return await self.rt.observe(notebook_id)

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        return await self.rt.ensure_running(spec)

    async def read_file(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> bytes | None:
        return await self.rt.read_file(notebook_id, observed, max_bytes)

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        return await self.rt.read_logs(notebook_id, observed, max_bytes)

    async def ensure_stopped(self, notebook_id: str) -> None:
        if not self.dying:
            return await self.rt.ensure_stopped(notebook_id)
        sel = n.selector(n.notebook_labels(notebook_id))
        for kind in ("RoleBinding", "Role", "ServiceAccount", "Pod"):
            await self.rt.api.delete_matching(kind, sel)
        raise ConnectionResetError("worker killed mid-teardown")

    async def delete(self, notebook_id: str) -> None:
        await self.rt.delete(notebook_id)

    async def close(self) -> None:
        pass


def _left(kube: Kube, nid: str) -> list[tuple[str, str]]:
    return sorted((k[1], k[3]) for k in kube.emulator.objects if nid.lower() in k[3])


async def _pass_until(deps: Deps, rows: Any, nid: str, done: Any) -> dict[str, Any]:
    """Run passes (as a job does) until `done(row)`; a pass's error is retried."""
    loop = asyncio.get_running_loop()
    until = loop.time() + 20
    while True:
        with contextlib.suppress(ConnectionResetError):
            await reconcile_once(deps, nid)
        row = await rows.get(nid)
        if done(row):
            return row
        assert loop.time() < until, f"never reached; last row: {row and row['status']}"
        await asyncio.sleep(0.02)  # the fake kubelet moves pods on its own


async def test_a_stop_cut_short_after_the_pods_went_is_finished_before_stopped(
    rows, pool, kube: Kube
):
    runtime = DiesMidTeardown(kube.runtime())
    deps = Deps(pool=pool, runtime=runtime, clock=FakeClock())  # type: ignore[arg-type]
    nid = await rows.notebook()
    await rows.start(nid)
    await _pass_until(deps, rows, nid, lambda r: r["status"] == "running")
    await rows.stop(nid)
    with pytest.raises(ConnectionResetError):
        await reconcile_once(deps, nid)  # the worker dies in the teardown
    left = {kind for kind, _ in _left(kube, nid)}
    assert "pods" not in left and {"secrets", "services", "networkpolicies"} <= left

    runtime.dying = False  # the next worker
    row = await _pass_until(deps, rows, nid, lambda r: r["status"] == "stopped")
    assert _left(kube, nid) == [("persistentvolumeclaims", n.pvc_name(nid))]  # only the file
    assert row["session_id"] is None
    assert [e["to_status"] for e in await rows.events(nid)] == [
        "starting",
        "running",
        "stopping",
        "stopped",
    ]


async def test_a_failed_starts_teardown_cut_short_is_finished(rows, db, pool, kube: Kube):
    kube.kubelet.behaviour["registry/nope:1"] = kubelet.IMAGE_PULL
    runtime = DiesMidTeardown(kube.runtime())
    deps = Deps(pool=pool, runtime=runtime, clock=FakeClock())  # type: ignore[arg-type]
    nid = await rows.notebook()
    await db.execute(
        'update workload_configs set sail = \'{"image": "registry/nope:1"}\''
        " where id = (select workload_config_id from notebooks where id = %s)",
        (nid,),
    )
    await rows.start(nid)
    row = await _pass_until(deps, rows, nid, lambda r: r["status"] == "failed")
    assert "ImagePullBackOff" in row["status_message"]
    assert row["runtime_state"] != {}  # the teardown was not seen to finish
    assert {"secrets", "services"} <= {kind for kind, _ in _left(kube, nid)}

    runtime.dying = False
    row = await _pass_until(deps, rows, nid, lambda r: r["runtime_state"] == {})
    assert _left(kube, nid) == [("persistentvolumeclaims", n.pvc_name(nid))]
    assert row["status"] == "failed" and "ImagePullBackOff" in row["status_message"]


async def test_a_notebook_this_database_never_had_is_left_alone(rows, db, pool, kube: Kube):
    """Another installation sharing the namespace and labels: its pods reach
    our watch, and their jobs find no row here. Only notebooks this database
    once had (events outlive the row) are removed, as by the local sweep."""
    other = kube.runtime()  # the other installation's runtime
    foreign, known = new_id(), new_id()
    for nid in (foreign, known):
        await other.ensure_running(
            SessionSpec(nid, new_id(), "t" * 32, WorkloadSpec(), f"/notebooks/{nid}")
        )
    await db.execute(  # `known` ran here once; its row was removed by hand
        "insert into notebook_events (notebook_id, organization_id, to_status, actor)"
        " values (%s, %s, 'starting', 'test')",
        (known, rows.org),
    )
    before = _left(kube, foreign)
    assert ("persistentvolumeclaims", n.pvc_name(foreign)) in before
    skipped = REGISTRY.get_sample_value("notebooks_foreign_jobs_skipped_total") or 0.0
    deps = Deps(pool=pool, runtime=kube.runtime(), clock=FakeClock())

    with structlog.testing.capture_logs() as logs:
        assert (await reconcile_once(deps, foreign)).outcome == "foreign"
    assert _left(kube, foreign) == before  # pods, Services, Secret and storage all kept
    assert REGISTRY.get_sample_value("notebooks_foreign_jobs_skipped_total") == skipped + 1
    warned = [e for e in logs if e["event"] == "reconcile_foreign_notebook_left_alone"]
    assert [e["notebook_id"] for e in warned] == [foreign]

    assert (await reconcile_once(deps, known)).outcome == "gone"
    assert _left(kube, known) == []


async def test_a_starting_notebook_on_kubernetes_is_looked_at_no_faster_than_its_floor(
    kube: Kube, rows: Any, pool: Any
) -> None:
    """The plan looks again at a start every 50 ms (a local Marimo is ready
    in about a second): on Kubernetes each look lists pods on a shared API
    server, 20 calls a second per start while images pull. The runtime's
    floor paces it; its pod watch wakes the reconciler on a change."""
    kube.kubelet.default = kubelet.PENDING
    nid = await rows.notebook()
    await rows.start(nid)
    deps = Deps(pool=pool, runtime=kube.runtime(), clock=FakeClock())
    result = await reconcile_once(deps, nid)
    assert result.outcome == "starting"
    assert result.requeue_after == KubernetesRuntime.poll_floor_seconds == 0.5


async def test_a_start_whose_pods_cannot_be_listed_says_why_and_fails_at_its_deadline(
    kube: Kube, rows: Any, pool: Any
) -> None:
    """The worker's Role short of `list pods` (or an API server refusing it):
    every look raised before the plan, so the start read `starting` with no
    word for ever and its deadline never armed. It says why it waits, in the
    API server's own words (not the client's dump of headers), and fails
    once its deadline has passed; the pass is still retried with back-off."""
    kube.kubelet.default = kubelet.PENDING
    nid = await rows.notebook()
    await rows.start(nid)
    clock = FakeClock()
    deps = Deps(pool=pool, runtime=kube.runtime(), clock=clock)
    await reconcile_once(deps, nid)  # the start's first pass: its objects made
    assert ("services", n.service_name(nid, n.MARIMO)) in _left(kube, nid)
    # as if that pass's write after making them was lost (its worker killed)
    await rows.conn.execute("update notebooks set runtime_state = '{}' where id = %s", (nid,))
    emu = kube.emulator
    emu.fail_code, emu.fail_actions = 403, frozenset({"list"})
    emu.fail_message = 'pods is forbidden: User "worker" cannot list resource "pods"'
    emu.fail_next["pods"] = 1000
    with pytest.raises(ApiException):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert row["status"] == "starting" and row["start_deadline_at"] is not None
    assert row["status_message"] == (
        "waiting for the runtime to answer: ForbiddenException (403): pods is forbidden:"
        ' User "worker" cannot list resource "pods"'
    )
    clock.advance(deps.start_deadline_seconds)
    with pytest.raises(ApiException):
        await reconcile_once(deps, nid)
    row = await rows.get(nid)
    assert row["status"] == "failed"
    assert row["status_message"].startswith(
        "start deadline passed (the runtime could not be read: ForbiddenException (403): pods"
    )
    for pod in kube.pods():  # gone meanwhile: only the Secret and Services say it ran
        emu.remove("", "pods", "notebooks-test", pod)
    emu.fail_next["pods"] = 0  # the Role mended: the next passes clean up what is left
    await _pass_until(deps, rows, nid, lambda row: row["runtime_state"] == {})
    assert (await rows.get(nid))["status"] == "failed"
    # nothing of the session is left but its storage, kept until a delete
    assert _left(kube, nid) == [("persistentvolumeclaims", n.pvc_name(nid))]
