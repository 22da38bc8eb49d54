"""Warm start: a pool of pre-started Sail pods per workload shape.

A start claims a running Sail pod of its shape instead of creating one (so
start-to-running skips scheduling, the image pull and Sail's own start), and
the pool is refilled in the same call. The shape is a digest of everything a
standalone Sail pod's spec depends on (image, resources, env, node selector),
so a claimed pod is exactly the pod the start would have created. Claiming is
a label patch guarded by the pod's resourceVersion: two workers racing for
one warm pod cannot both win (the loser gets 409 and tries the next one, or
creates its own). Cluster mode is not pooled (the driver's env names its pod).

Warm pods carry no notebook label, so the per-notebook NetworkPolicies (and
the namespace's default deny) keep every client away until claimed."""

from __future__ import annotations

import asyncio
import secrets

import structlog
from kubernetes.client.exceptions import ApiException

from reconciler.runtime.base import Phase, SessionSpec, TerminalError, WorkloadSpec, shape_digest
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.api import KubeApi, Obj
from reconciler.runtime.kubernetes.settings import KubernetesSettings
from reconciler.runtime.kubernetes.status import component_of

log = structlog.get_logger(__name__)

POOL = "notebooks.example.com/warm-pool"
WARM = "sail-warm"


def poolable(workload: WorkloadSpec) -> bool:
    return workload.mode != "cluster"


def shape(workload: WorkloadSpec, ks: KubernetesSettings) -> str:
    sail = workload.sail
    return shape_digest(
        {
            "image": sail.image or ks.sail_image,
            "cpu": sail.cpu or ks.default_cpu,
            "memory": sail.memory or ks.default_memory,
            "env": workload.env,
            "node_selector": workload.node_selector,
        }
    )


def warm_pod(workload: WorkloadSpec, ks: KubernetesSettings, suffix: str) -> Obj:
    """A standalone Sail pod belonging to no notebook yet (pure)."""
    digest = shape(workload, ks)
    spec = SessionSpec("warm", suffix, "", workload, "")
    pod = objects.sail_pod(spec, ks)
    pod["metadata"]["name"] = f"warm-sail-{digest}-{suffix}"
    pod["metadata"]["labels"] = {
        **ks.extra_pod_labels,
        n.MANAGED_BY: n.MANAGER,
        n.COMPONENT: WARM,
        POOL: digest,
    }
    return pod


def claim_patch(pod: Obj, spec: SessionSpec) -> Obj:
    """Relabel a warm pod as this session's Sail pod, only if it is unchanged
    since we listed it (resourceVersion precondition)."""
    return {
        "metadata": {
            "resourceVersion": pod["metadata"]["resourceVersion"],
            "labels": {
                n.NOTEBOOK: spec.notebook_id,
                n.SESSION: spec.session_id,
                n.COMPONENT: n.SAIL,
                POOL: None,  # null removes the label: it leaves the pool
            },
        }
    }


class WarmPool:
    def __init__(self, api: KubeApi, settings: KubernetesSettings) -> None:
        self._api = api
        self._ks = settings
        self._refill_lock = asyncio.Lock()
        self.claims = 0

    @property
    def enabled(self) -> bool:
        return self._ks.warm_pool_size > 0

    async def _members(self, digest: str) -> list[Obj]:
        pods = await self._api.list("Pod", n.selector({**n.managed(), POOL: digest}))
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    async def claim(self, spec: SessionSpec) -> str | None:
        """Take a warm pod for this session: its name, or None if none could be had."""
        members = await self._members(shape(spec.workload, self._ks))
        # Ready ones first: they save the whole start; pending ones still save the pull.
        members.sort(key=lambda p: component_of(p).phase is not Phase.READY)
        for pod in members:
            if component_of(pod).phase is Phase.FAILED:
                continue
            name = pod["metadata"]["name"]
            try:
                await asyncio.to_thread(
                    self._api.core.patch_namespaced_pod,
                    name,
                    self._api.namespace,
                    claim_patch(pod, spec),
                    _content_type="application/merge-patch+json",
                    _request_timeout=self._api.timeout,
                    _preload_content=False,
                )
            except ApiException as exc:
                if exc.status in (404, 409):
                    continue  # taken or gone meanwhile: try the next one
                raise
            self.claims += 1
            log.info("k8s_warm_claimed", notebook_id=spec.notebook_id, pod=name)
            return str(name)
        return None

    async def refill(self, workload: WorkloadSpec) -> int:
        """Create warm pods until the shape has `warm_pool_size` of them; a
        failed warm pod (bad image…) is replaced, not counted."""
        digest = shape(workload, self._ks)
        async with self._refill_lock:
            members = await self._members(digest)
            failed = [p for p in members if component_of(p).phase is Phase.FAILED]
            for pod in failed:
                await self._api.delete("Pod", pod["metadata"]["name"])
            created = 0
            for _ in range(self._ks.warm_pool_size - len(members) + len(failed)):
                try:
                    created += await self._api.create(
                        warm_pod(workload, self._ks, secrets.token_hex(3))
                    )
                except TerminalError as exc:
                    # A refused warm pod (quota) must not fail the start it follows.
                    log.warning("k8s_warm_refused", shape=digest, reason=str(exc))
                    break
        return created
