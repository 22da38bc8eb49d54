"""Warm-pool pods and claims, as pure data."""

from __future__ import annotations

from reconciler.runtime.base import ResourceSpec, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.pool import POOL, claim_patch, poolable, shape, warm_pod
from reconciler.runtime.kubernetes.settings import KubernetesSettings

KS = KubernetesSettings(namespace="nbs")


def test_warm_pod_is_the_sail_pod_a_start_would_create_without_a_notebook() -> None:
    workload = WorkloadSpec(env={"A": "1"}, sail=ResourceSpec(image="img", memory="2Gi"))
    pod = warm_pod(workload, KS, "abc123")
    started = objects.sail_pod(SessionSpec("NB1", "S1", "t", workload, "/notebooks/NB1"), KS)
    assert pod["spec"] == started["spec"]
    assert n.NOTEBOOK not in pod["metadata"]["labels"]
    assert n.SESSION not in pod["metadata"]["labels"]
    assert pod["metadata"]["labels"][POOL] == shape(workload, KS)
    assert pod["metadata"]["name"] == f"warm-sail-{shape(workload, KS)}-abc123"


def test_shape_follows_what_the_sail_pod_depends_on() -> None:
    base = WorkloadSpec()
    assert shape(base, KS) == shape(WorkloadSpec(), KS)
    assert shape(base, KS) == shape(WorkloadSpec(marimo=ResourceSpec(image="other")), KS)
    for changed in (
        WorkloadSpec(sail=ResourceSpec(image="x")),
        WorkloadSpec(sail=ResourceSpec(cpu="4")),
        WorkloadSpec(env={"K": "v"}),
        WorkloadSpec(node_selector={"pool": "big"}),
    ):
        assert shape(changed, KS) != shape(base, KS)
    assert not poolable(WorkloadSpec(mode="cluster")) and poolable(base)


def test_claim_is_guarded_by_resource_version_and_leaves_the_pool() -> None:
    pod = {"metadata": {"resourceVersion": "42", "labels": {POOL: "x"}}}
    patch = claim_patch(pod, SessionSpec("NB1", "S1", "t", WorkloadSpec(), "/notebooks/NB1"))
    assert patch["metadata"]["resourceVersion"] == "42"
    assert patch["metadata"]["labels"] == {
        n.NOTEBOOK: "NB1",
        n.SESSION: "S1",
        n.COMPONENT: n.SAIL,
        POOL: None,
    }
