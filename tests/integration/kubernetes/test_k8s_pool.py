"""Warm start: pre-started Sail pods per workload shape, claimed by a start
(relabelled, guarded by resourceVersion) and refilled in the same call."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from kube_emulator import eventually
from kube_emulator.cluster import Kube

from reconciler.runtime.base import Phase, ResourceSpec, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.pool import POOL


def spec(nid: str, *, image: str = "", mode: str = "standalone") -> SessionSpec:
    workload = WorkloadSpec(mode=mode, sail=ResourceSpec(image=image))
    return SessionSpec(nid, "S1", "tok", workload, f"/notebooks/{nid}")


def labels(kube: Kube, pod: str) -> dict[str, str]:
    obj = kube.emulator.get("pods", "notebooks-test", pod)
    assert obj is not None
    return dict(obj["metadata"]["labels"])


def warm(kube: Kube) -> list[str]:
    """Pods in the pool (a claimed pod keeps its name but leaves the pool)."""
    return [p for p in kube.pods() if POOL in labels(kube, p)]


async def warm_ready(kube: Kube, count: int) -> None:
    async def check() -> bool:
        pods = [kube.emulator.get("pods", "notebooks-test", p) for p in warm(kube)]
        ready = [p for p in pods if p and p.get("status", {}).get("phase") == "Running"]
        return len(ready) == count

    await eventually(check)


async def test_pool_is_off_by_default(kube: Kube) -> None:
    await kube.runtime().ensure_running(spec("NB1"))
    assert warm(kube) == []


async def test_start_claims_a_ready_warm_pod_and_the_pool_refills(kube: Kube) -> None:
    rt = kube.runtime(warm_pool_size=2)
    await rt.ensure_running(spec("NB1"))  # the shape's first start: nothing to claim yet
    assert "nb-nb1-s1-sail" in kube.pods()
    await warm_ready(kube, 2)
    before = set(warm(kube))
    obs = await rt.ensure_running(spec("NB2"))
    # Sail is ready the moment the start returns: no pod created, scheduled or pulled
    assert obs.sail.phase is Phase.READY
    assert "nb-nb2-s1-sail" not in kube.pods()
    (claimed,) = before - set(warm(kube))
    got = labels(kube, claimed)
    assert got[n.NOTEBOOK] == "NB2" and got[n.SESSION] == "S1" and got[n.COMPONENT] == "sail"
    assert POOL not in got
    assert len(warm(kube)) == 2  # refilled
    # the claimed pod is the notebook's from now on: stop removes it, not the pool
    await rt.ensure_stopped("NB2")
    assert claimed not in kube.pods() and len(warm(kube)) == 2


async def test_warm_pods_serve_only_their_own_shape(kube: Kube) -> None:
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1", image="sail:a"))
    await warm_ready(kube, 1)
    await rt.ensure_running(spec("NB2", image="sail:b"))
    assert "nb-nb2-s1-sail" in kube.pods()  # sail:b had no warm pod
    await rt.ensure_running(spec("NB3", mode="cluster", image="sail:a"))
    assert "nb-nb3-s1-sail" in kube.pods()  # cluster mode is never pooled
    assert rt.pool.claims == 0


async def test_a_workload_with_secret_env_is_never_pooled(kube: Kube) -> None:
    """Its Sail takes the variables from its session's Secret, which a warm
    pod made before the session could not name: it starts its own, with
    them, and makes no warm pods for others to claim."""
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1"))
    await warm_ready(kube, 1)
    base = spec("NB2")
    secret = SessionSpec(
        "NB2", "S1", "tok", replace(base.workload, secret_env={"DB_PASSWORD": "p"}), base.base_url
    )
    await rt.ensure_running(secret)
    assert "nb-nb2-s1-sail" in kube.pods() and rt.pool.claims == 0
    assert len(warm(kube)) == 1  # the plain shape's, untouched; none of this shape
    pod = kube.emulator.get("pods", "notebooks-test", "nb-nb2-s1-sail")
    assert pod["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "nb-nb2-s1-env"}}]
    assert "nb-nb2-s1-env" in kube.emulator.names("secrets")
    await rt.ensure_stopped("NB2")
    assert "nb-nb2-s1-env" not in kube.emulator.names("secrets")


async def test_two_workers_racing_for_one_warm_pod_claim_it_once(kube: Kube) -> None:
    seed = kube.runtime(warm_pool_size=1)
    await seed.ensure_running(spec("NB0"))
    await warm_ready(kube, 1)
    (only,) = warm(kube)
    a, b = kube.runtime(warm_pool_size=1), kube.runtime(warm_pool_size=1)
    await asyncio.gather(a.ensure_running(spec("NB1")), b.ensure_running(spec("NB2")))
    assert a.pool.claims + b.pool.claims == 1
    winner = labels(kube, only)[n.NOTEBOOK]
    loser = "NB2" if winner == "NB1" else "NB1"
    assert f"nb-{loser.lower()}-s1-sail" in kube.pods()
    assert f"nb-{winner.lower()}-s1-sail" not in kube.pods()
    for nid in ("NB1", "NB2"):
        sails = [
            p
            for p in kube.pods()
            if labels(kube, p).get(n.NOTEBOOK) == nid and labels(kube, p)[n.COMPONENT] == "sail"
        ]
        assert len(sails) == 1, (nid, sails)


async def test_repair_after_a_lost_sail_pod_claims_from_the_pool(kube: Kube) -> None:
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1"))
    await warm_ready(kube, 1)
    kube.emulator.remove("", "pods", "notebooks-test", "nb-nb1-s1-sail")
    obs = await rt.ensure_running(spec("NB1"))
    assert obs.sail.phase is Phase.READY and rt.pool.claims == 1
    await rt.ensure_running(spec("NB1"))  # already has its Sail: claims nothing more
    assert rt.pool.claims == 1


async def test_a_refused_warm_pod_does_not_fail_the_start_it_follows(kube: Kube) -> None:
    quota = (403, "Forbidden", "exceeded quota: notebooks")
    kube.emulator.admission = lambda _, obj: quota if POOL in obj["metadata"]["labels"] else None
    obs = await kube.runtime(warm_pool_size=1).ensure_running(spec("NB1"))
    assert obs.session_id == "S1" and "nb-nb1-s1-sail" in kube.pods()
    assert warm(kube) == []


@pytest.mark.parametrize(
    "refusal",
    [(429, "TooManyRequests", "throttled"), (500, "InternalError", "etcd leader changed")],
)
async def test_a_failing_refill_does_not_fail_the_start_it_follows(
    kube: Kube, refusal: tuple[int, str, str]
) -> None:
    """The session's own objects are all created by the time the pool is
    refilled: a throttled or failed warm pod create ends the refill, not
    the start (whose repair would otherwise record it as failed, retrying)."""
    kube.emulator.admission = lambda _, obj: refusal if POOL in obj["metadata"]["labels"] else None
    rt = kube.runtime(warm_pool_size=1)
    obs = await rt.ensure_running(spec("NB1"))
    assert obs.session_id == "S1"
    assert {"nb-nb1-s1-sail", "nb-nb1-s1-marimo"} <= set(kube.pods())
    assert warm(kube) == []
    kube.emulator.admission = None  # the next pooled start refills
    await rt.ensure_running(spec("NB2"))
    assert len(warm(kube)) == 1


def notebook_pod_lists(kube: Kube, nid: str) -> int:
    """LIST requests for this notebook's pods (the warm pool's own lists aside)."""
    return sum(
        1
        for c in kube.emulator.calls
        if c.action == "list"
        and c.plural == "pods"
        and f"{n.NOTEBOOK}={nid}" in c.params.get("labelSelector", "")
    )


async def test_a_pooled_start_lists_the_notebooks_pods_once_before_acting(kube: Kube) -> None:
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB0"))  # fills the shape's pool
    await rt.ensure_running(spec("NB1"))  # session S1 of NB1
    await warm_ready(kube, 1)
    claims = rt.pool.claims
    kube.emulator.calls.clear()
    new = SessionSpec("NB1", "S2", "tok", spec("NB1").workload, "/notebooks/NB1")
    obs = await rt.ensure_running(new)
    # one list to remove the old session and see whether this one has a Sail,
    # one to observe what the start left
    assert notebook_pod_lists(kube, "NB1") == 2
    assert obs.session_id == "S2" and rt.pool.claims == claims + 1
    assert "nb-nb1-s1-sail" not in kube.pods() and "nb-nb1-s1-marimo" not in kube.pods()
    # a repeat finds this session's Sail in that same list and claims nothing
    kube.emulator.calls.clear()
    await rt.ensure_running(new)
    assert notebook_pod_lists(kube, "NB1") == 2 and rt.pool.claims == claims + 1


async def test_a_repair_of_a_notebook_on_a_claimed_warm_sail_makes_no_second_sail(
    kube: Kube,
) -> None:
    """The claimed warm pod keeps its own name, so the session has no
    `nb-…-sail` pod: a later `ensure_running` (Marimo lost, a Service
    deleted) created one, and the Sail Service then chose between two Sails."""
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1"))
    await warm_ready(kube, 1)
    await rt.ensure_running(spec("NB2"))  # claims the warm pod
    assert "nb-nb2-s1-sail" not in kube.pods()
    kube.emulator.remove("", "pods", "notebooks-test", "nb-nb2-s1-marimo")  # Marimo lost
    await rt.ensure_running(spec("NB2"))  # the repair
    assert "nb-nb2-s1-marimo" in kube.pods()
    assert "nb-nb2-s1-sail" not in kube.pods()
    sails = [p for p in kube.pods() if labels(kube, p).get(n.NOTEBOOK) == "NB2"]
    assert len([p for p in sails if labels(kube, p).get(n.COMPONENT) == "sail"]) == 1
