"""The warm pool is collected across shapes by every refill: warm pods of a
shape nobody starts any more go once older than WARM_MAX_AGE_SECONDS, a
lowered pool size is trimmed oldest first, failed warm pods of any shape go,
and a pod claimed between the refill's list and its delete stays (the delete
is guarded by the pod's resourceVersion). Ages move with the cluster's
FakeClock (`Kube.clock`), shared by the API emulator's timestamps and the
runtimes."""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from kube_emulator import eventually, kubelet
from kube_emulator.cluster import NAMESPACE, Kube
from kube_emulator.emulator import ApiError, KubeEmulator
from kube_emulator.kubelet import IMAGE_PULL, IMAGE_PULL_RETRY

from reconciler.runtime.base import ResourceSpec, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.pool import POOL, WARM_MAX_AGE_SECONDS, shape
from reconciler.runtime.kubernetes.settings import KubernetesSettings


def spec(nid: str, image: str) -> SessionSpec:
    return SessionSpec(nid, "S1", "tok", WorkloadSpec(sail=ResourceSpec(image=image)), "/")


def pod(kube: Kube, name: str) -> dict[str, Any]:
    obj = kube.emulator.get("pods", NAMESPACE, name)
    assert obj is not None, name
    return obj


def warm(kube: Kube, image: str) -> list[str]:
    """The warm pods of `image`'s shape (the runtime's defaults otherwise)."""
    ks = KubernetesSettings(sail_image="sail:test")
    digest = shape(WorkloadSpec(sail=ResourceSpec(image=image)), ks)
    return sorted(p for p in kube.pods() if pod(kube, p)["metadata"]["labels"].get(POOL) == digest)


async def pull_failed(kube: Kube, name: str) -> None:
    """Wait until the kubelet reports pod `name`'s pull failed (a waiting container)."""

    async def check() -> bool:
        statuses = pod(kube, name).get("status", {}).get("containerStatuses") or []
        return any("waiting" in s.get("state", {}) for s in statuses)

    await eventually(check)


async def running(kube: Kube, names: list[str]) -> None:
    async def check() -> bool:
        return all(pod(kube, p).get("status", {}).get("phase") == "Running" for p in names)

    await eventually(check)


async def test_warm_pods_of_a_shape_nobody_starts_go_once_too_old(kube: Kube) -> None:
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1", "sail:a"))
    [old] = warm(kube, "sail:a")
    await running(kube, [old])
    # Its workload config was edited: nobody starts shape a any more. Short
    # of WARM_MAX_AGE_SECONDS it stays through another shape's refill...
    kube.clock.advance(WARM_MAX_AGE_SECONDS - 60)
    await rt.ensure_running(spec("NB2", "sail:b"))
    assert warm(kube, "sail:a") == [old]
    [young] = warm(kube, "sail:b")
    # ...past it, the next one collects it (and only it: b's is 120 s old).
    kube.clock.advance(120)
    await rt.ensure_running(spec("NB3", "sail:c"))
    assert warm(kube, "sail:a") == []
    assert warm(kube, "sail:b") == [young]
    assert len(warm(kube, "sail:c")) == 1
    # The notebooks' own Sail pods are never the pool's, however old.
    assert "nb-nb1-s1-sail" in kube.pods()


async def test_a_young_warm_pod_of_another_shape_stays(kube: Kube) -> None:
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1", "sail:a"))
    [kept] = warm(kube, "sail:a")
    await rt.ensure_running(spec("NB2", "sail:b"))
    assert warm(kube, "sail:a") == [kept]


async def test_a_lowered_pool_size_is_trimmed_oldest_first(kube: Kube) -> None:
    shape_a = WorkloadSpec(sail=ResourceSpec(image="sail:a"))
    await kube.runtime(warm_pool_size=1).ensure_running(spec("NB1", "sail:a"))
    pods = warm(kube, "sail:a")  # in the order they were created, 10 minutes apart
    for size in (2, 3):
        kube.clock.advance(600)
        assert await kube.runtime(warm_pool_size=size).pool.refill(shape_a) == 1
        pods += sorted(set(warm(kube, "sail:a")) - set(pods))
    assert len(pods) == 3
    await running(kube, pods)
    # The workers restarted with NOTEBOOKS_K8S_WARM_POOL_SIZE=1.
    await kube.runtime(warm_pool_size=1).ensure_running(spec("NB2", "sail:b"))
    assert warm(kube, "sail:a") == [pods[2]]  # the newest
    assert len(warm(kube, "sail:b")) == 1


@pytest.mark.parametrize("pull", [IMAGE_PULL, IMAGE_PULL_RETRY])
async def test_failed_warm_pods_of_another_shape_go(kube: Kube, pull: str) -> None:
    """Failed, or waiting out the kubelet's back-off after a pull the
    registry failed (a new pod would pull at once): replaced all the same."""
    kube.kubelet.behaviour["sail:bad"] = pull
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1", "sail:bad"))
    [bad] = warm(kube, "sail:bad")
    await pull_failed(kube, bad)
    await rt.ensure_running(spec("NB2", "sail:b"))
    assert warm(kube, "sail:bad") == []


@pytest.fixture
def preconditions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator checks a DELETE's preconditions, as the API server does
    (409 Conflict when the object changed since the caller read it)."""
    handle = KubeEmulator._handle

    async def checked(self: KubeEmulator, request: kmock.Request) -> Any:
        if request.action is not None and str(request.action.value).lower() == "delete":
            want = ((request.data or {}).get("preconditions") or {}).get("resourceVersion")
            key = ("", "pods", request.namespace or "", request.name or "")
            have = self.objects.get(key, {}).get("metadata", {}).get("resourceVersion")
            if want is not None and have is not None and want != have:
                raise ApiError(409, "Conflict", "Precondition failed: resourceVersion")
        return await handle(self, request)

    monkeypatch.setattr(KubeEmulator, "_handle", checked)


def refused_deletes(kube: Kube) -> int:
    return sum(getattr(e, "status", None) == 409 for e in kube.emulator.errors)


@pytest.mark.usefixtures("preconditions")
async def test_a_warm_pod_claimed_after_the_refill_listed_it_stays(kube: Kube) -> None:
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1", "sail:a"))
    [old] = warm(kube, "sail:a")
    await running(kube, [old])
    kube.clock.advance(WARM_MAX_AGE_SECONDS + 60)
    # Another worker claims it right after this refill listed the pool.
    listed = rt.pool._members

    claimed = []

    async def then_claimed(digest: str | None = None) -> list[dict[str, Any]]:
        pods = await listed(digest)
        if digest is None and not claimed:
            other = kube.runtime(warm_pool_size=1)
            claimed.append(await other.pool.claim(spec("NB9", "sail:a")))
            assert claimed == [old]
        return pods

    rt.pool._members = then_claimed  # type: ignore[method-assign]
    await rt.ensure_running(spec("NB2", "sail:b"))
    assert pod(kube, old)["metadata"]["labels"][n.NOTEBOOK] == "NB9"
    assert refused_deletes(kube) == 1  # too old, collected: its delete met the claim


@pytest.mark.usefixtures("preconditions")
async def test_a_warm_pod_only_updated_since_the_list_still_counts(kube: Kube) -> None:
    """Its delete meets a changed resourceVersion (its kubelet wrote its
    status meanwhile): it stays, and is counted, so no pod is added beside it."""
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1", "sail:a"))
    [old] = warm(kube, "sail:a")
    await running(kube, [old])
    kube.clock.advance(WARM_MAX_AGE_SECONDS + 60)
    listed = rt.pool._members
    touched = []

    async def then_updated(digest: str | None = None) -> list[dict[str, Any]]:
        pods = await listed(digest)
        if digest is None and not touched:
            obj = pod(kube, old)
            obj["metadata"].setdefault("annotations", {})["touched"] = "by the kubelet"
            kube.emulator.put("", "pods", obj)  # a new resourceVersion
            touched.append(old)
        return pods

    rt.pool._members = then_updated  # type: ignore[method-assign]
    await rt.pool.refill(WorkloadSpec(sail=ResourceSpec(image="sail:a")))
    assert warm(kube, "sail:a") == [old]
    assert refused_deletes(kube) == 1  # too old, collected: its delete met the update


async def test_a_warm_pod_waiting_out_a_failed_pull_is_not_claimed(kube: Kube) -> None:
    """Its kubelet pulls again only after a back-off of up to 5 minutes; a
    start takes a new pod, which pulls at once, rather than wait for it."""
    kube.kubelet.behaviour["sail:flaky"] = IMAGE_PULL_RETRY
    rt = kube.runtime(warm_pool_size=1)
    await rt.ensure_running(spec("NB1", "sail:flaky"))
    [spoiled] = warm(kube, "sail:flaky")
    await pull_failed(kube, spoiled)
    kube.kubelet.behaviour["sail:flaky"] = kubelet.RUN  # the registry is back
    await rt.ensure_running(spec("NB2", "sail:flaky"))
    left = kube.emulator.get("pods", NAMESPACE, spoiled)
    assert left is None or left["metadata"]["labels"].get(n.NOTEBOOK) != "NB2"
