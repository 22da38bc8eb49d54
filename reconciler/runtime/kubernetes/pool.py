"""Warm start: a pool of pre-started Sail pods per workload shape.

A start claims a running Sail pod of its shape instead of creating one (so
start-to-running skips scheduling, the image pull and Sail's own start), and
the pool is refilled in the same call. The shape is a digest of everything a
standalone Sail pod's spec depends on (image, resources, env, node selector),
so a claimed pod is exactly the pod the start would have created. Claiming is
a label patch guarded by the pod's resourceVersion: two workers racing for
one warm pod cannot both win (the loser gets 409 and tries the next one, or
creates its own). Cluster mode is not pooled (the driver's env names its pod),
nor a workload with a secret environment (its session's Secret holds it).

Warm pods carry no notebook label, so the per-notebook NetworkPolicies (and
the namespace's default deny) keep every client away until claimed.

Every refill also collects the pool across shapes (`surplus`): failed warm
pods, warm pods older than WARM_MAX_AGE_SECONDS, and the oldest beyond the
pool size in each shape are deleted. Nothing else would ever remove the pods
of a shape nobody starts any more (its workload config edited or deleted),
or those over a lowered pool size.

A refill is best effort: the start it follows has created everything of its
session by then, so an API error in it (throttling, a 5xx, a dropped
connection, a refusal) is logged (`k8s_warm_refill_failed`) and ends that
refill, never the start; the next pooled start refills again."""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from datetime import UTC, datetime

import structlog
import urllib3
from kubernetes.client.exceptions import ApiException

from common.clock import Clock, SystemClock
from reconciler.runtime.base import Phase, SessionSpec, TerminalError, WorkloadSpec, shape_digest
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.api import KubeApi, Obj
from reconciler.runtime.kubernetes.settings import KubernetesSettings
from reconciler.runtime.kubernetes.status import WAITING_FOR_IMAGE, component_of

log = structlog.get_logger(__name__)

POOL = "notebooks.example.com/warm-pool"
WARM = "sail-warm"

# A warm pod is deleted by the first refill (a start of any pooled shape)
# after it is this old, and replaced if its shape is the one being started.
# Bounds how long a shape nobody starts any more keeps its pods; an hour of
# an idle pod costs less than the start it might have saved.
WARM_MAX_AGE_SECONDS = 3600


def poolable(workload: WorkloadSpec) -> bool:
    # A secret environment reaches a Sail through its session's Secret,
    # which does not exist before the session: such a Sail starts cold.
    return workload.mode != "cluster" and not workload.secret_env


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


def created_at(pod: Obj) -> datetime:
    """The pod's creationTimestamp; the epoch if it has none (oldest of all)."""
    raw = str(pod["metadata"].get("creationTimestamp") or "")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def spoiled(pod: Obj) -> bool:
    """A warm pod no start should take: failed, or waiting out the kubelet's
    back-off (up to 5 min) after a failed pull, where a new pod pulls at once."""
    component = component_of(pod)
    return component.phase is Phase.FAILED or component.waiting_for.startswith(WAITING_FOR_IMAGE)


def surplus(pods: list[Obj], size: int, now: datetime, max_age: float) -> list[Obj]:
    """Pure: the warm pods (of any shape) a refill deletes: spoiled ones,
    those older than `max_age` seconds, and in each shape the oldest beyond
    `size` (after a lowered pool size, or two workers' refills overshooting)."""
    doomed: list[Obj] = []
    kept: dict[str, list[Obj]] = defaultdict(list)
    for pod in sorted(pods, key=created_at, reverse=True):  # newest first
        old = (now - created_at(pod)).total_seconds() > max_age
        if old or spoiled(pod):
            doomed.append(pod)
            continue
        same_shape = kept[pod["metadata"]["labels"].get(POOL, "")]
        (same_shape if len(same_shape) < size else doomed).append(pod)
    return doomed


class WarmPool:
    def __init__(
        self, api: KubeApi, settings: KubernetesSettings, *, clock: Clock | None = None
    ) -> None:
        self._api = api
        self._ks = settings
        self._clock = clock or SystemClock()  # judges warm pods' age (`surplus`)
        self._refill_lock = asyncio.Lock()
        self.claims = 0

    @property
    def enabled(self) -> bool:
        return self._ks.warm_pool_size > 0

    async def _members(self, digest: str | None = None) -> list[Obj]:
        """The shape's warm pods (every shape's if None), not being deleted."""
        labels = n.selector(n.managed())
        selector = f"{labels},{POOL}" if digest is None else f"{labels},{POOL}={digest}"
        pods = await self._api.list("Pod", selector)
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    async def claim(self, spec: SessionSpec) -> str | None:
        """Take a warm pod for this session: its name, or None if none could be had."""
        members = await self._members(shape(spec.workload, self._ks))
        # Ready ones first: they save the whole start; pending ones still save
        # the pull. Oldest first among those: they are the next to expire.
        members.sort(key=lambda p: (component_of(p).phase is not Phase.READY, created_at(p)))
        for pod in members:
            if spoiled(pod):
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
        """Collect the pool across shapes (`surplus`), then create warm pods
        until this shape has `warm_pool_size` of them. Best effort: an API
        error ends the refill (logged), never the start it follows. Returns
        how many warm pods it created."""
        digest = shape(workload, self._ks)
        created: list[str] = []
        async with self._refill_lock:
            try:
                await self._refill(workload, digest, created)
            except TerminalError as exc:
                # A refused warm pod (quota) must not fail the start it follows.
                log.warning("k8s_warm_refused", shape=digest, reason=str(exc))
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                # Throttled (429), a 5xx, a timeout, a dropped connection.
                log.warning(
                    "k8s_warm_refill_failed",
                    shape=digest,
                    created=len(created),
                    status=getattr(exc, "status", None),
                    error=f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"[:300],
                )
        return len(created)

    async def _refill(self, workload: WorkloadSpec, digest: str, created: list[str]) -> None:
        size = self._ks.warm_pool_size
        members = await self._members()
        doomed = surplus(members, size, self._clock.now(), WARM_MAX_AGE_SECONDS)
        deleted = []
        for pod in doomed:
            meta = pod["metadata"]
            # Guarded by its resourceVersion: a pod another worker claimed
            # since the list is a notebook's Sail now, and must stay.
            if await self._api.delete(
                "Pod", meta["name"], resource_version=meta["resourceVersion"]
            ):
                deleted.append(meta["name"])
        if deleted:
            log.info("k8s_warm_collected", pods=deleted)
        if doomed:
            # Counted afresh: a doomed pod whose delete met a changed
            # resourceVersion was either claimed (gone from the pool) or
            # only updated by its kubelet (still a member), and only a new
            # list tells which; the deleted ones are terminating by now.
            members = await self._members()
        have = sum(1 for p in members if p["metadata"]["labels"].get(POOL) == digest)
        for _ in range(size - have):
            pod = warm_pod(workload, self._ks, secrets.token_hex(3))
            if await self._api.create(pod):
                created.append(pod["metadata"]["name"])
