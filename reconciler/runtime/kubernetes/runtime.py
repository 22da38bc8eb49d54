"""The `kubernetes` runtime: per notebook a Sail pod and a Marimo pod with
their Services, a token Secret per session, a PVC for the notebook file and
NetworkPolicies; observed by listing pods, woken by a pod watch.

Reads never have effects; every write is idempotent (409 on create and 404 on
delete are success), so two workers racing on one notebook converge."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp
import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from common.clock import Clock, SystemClock
from common.images import image_allowed
from common.settings import Settings
from reconciler.runtime.base import (
    ABSENT,
    Component,
    LogTail,
    Observation,
    Phase,
    SessionSpec,
    TerminalError,
)
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes import objects, pod_logs
from reconciler.runtime.kubernetes.api import KubeApi, Obj, default_api_client
from reconciler.runtime.kubernetes.pool import WarmPool, poolable
from reconciler.runtime.kubernetes.settings import KubernetesSettings
from reconciler.runtime.kubernetes.status import component_of
from reconciler.runtime.kubernetes.watch import PodWatcher
from reconciler.runtime.probes import marimo_activity_at, marimo_file_at

log = structlog.get_logger(__name__)

# Per-session objects removed on stop (the PVC stays until delete). A
# cluster-mode driver's rights go first, so that a driver still running (or
# terminating) cannot create worker pods after its pods were deleted.
_STOP_KINDS = (
    "RoleBinding",
    "Role",
    "ServiceAccount",
    "Pod",
    "Secret",
    "Service",
    "NetworkPolicy",
)

# The pods a session is made of; any other pod of a notebook is a worker its
# cluster-mode Sail driver created (n.SAIL_WORKER).
_SESSION_COMPONENTS = (n.SAIL, n.MARIMO)


def _created(obj: Obj) -> str:
    return str(obj["metadata"].get("creationTimestamp") or "")


def _component(pod: Obj) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(n.COMPONENT)


def pick_session(pods: list[Obj]) -> str | None:
    """The session the notebook's Sail and Marimo pods belong to now: the
    newest among those not being deleted, else the newest of all. Worker
    pods never decide it: a cluster-mode driver labels what it creates."""
    pods = [p for p in pods if _component(p) in _SESSION_COMPONENTS]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    pool = live or pods
    if not pool:
        return None
    newest = max(pool, key=_created)
    return str(newest["metadata"]["labels"].get(n.SESSION) or "") or None


def _leftover(pods: list[Obj]) -> Component:
    """Worker pods still there once Sail and Marimo are gone (a terminating
    driver's, or one it created after the stop deleted the rest): not
    nothing left, so a stop waits for them and deletes them again."""
    names = sorted(str(p["metadata"].get("name")) for p in pods)
    return Component(
        Phase.STARTING,
        f"{len(names)} Sail worker pod(s) left: {', '.join(names)}",
        terminating=True,
    )


def observation_of(notebook_id: str, pods: list[Obj], namespace: str) -> Observation:
    """Pure: a notebook's pods → Observation."""
    session = pick_session(pods)
    if session is None:
        workers = [p for p in pods if _component(p) not in _SESSION_COMPONENTS]
        return Observation(session_id=None, sail=_leftover(workers) if workers else ABSENT)
    mine = [p for p in pods if p["metadata"]["labels"].get(n.SESSION) == session]

    def comp(component: str) -> Component:
        found = [p for p in mine if p["metadata"]["labels"].get(n.COMPONENT) == component]
        return component_of(max(found, key=_created) if found else None)

    marimo_url = n.marimo_url(notebook_id, namespace)
    sail_url = n.sail_url(notebook_id, namespace)
    return Observation(
        session_id=session,
        sail=comp(n.SAIL),
        marimo=comp(n.MARIMO),
        marimo_url=marimo_url,
        sail_url=sail_url,
        runtime_state={
            "marimo_url": marimo_url,
            "sail_url": sail_url,
            "notebook_path": objects.NOTEBOOK_PATH,  # a viewer's X-Notebook-Id (proxy)
            "namespace": namespace,
            "session_id": session,
        },
    )


# How often a running session's other objects are looked for: nothing watches
# them, so one deleted (kubectl, a clean-up script) would go unnoticed while
# its pods stay ready, and the notebook would say `running` with Marimo out
# of the proxy's reach. A minute between looks keeps the API server's load
# per notebook small.
SUPPORTS_CHECK_SECONDS = 60.0


def supports(
    notebook_id: str,
    session_id: str,
    cluster: bool,
    driver_egress: bool,
    secret_env: bool = False,
) -> dict[str, list[tuple[str, str]]]:
    """What each component needs besides its pod, as (kind, name): what
    `objects.session_objects` creates before the pods (the PVC is left out:
    Kubernetes keeps one in use until its pod is gone). `secret_env`: its
    pods take the session's secret environment (a container restarting
    without it would fail to start)."""
    marimo = [
        ("Service", n.service_name(notebook_id, n.MARIMO)),
        ("NetworkPolicy", n.policy_name(notebook_id, n.MARIMO)),
        ("Secret", n.token_secret_name(notebook_id, session_id)),
    ]
    sail = [
        ("Service", n.service_name(notebook_id, n.SAIL)),
        ("NetworkPolicy", n.policy_name(notebook_id, n.SAIL)),
    ]
    if cluster:
        rbac = n.rbac_name(notebook_id)
        sail += [("ServiceAccount", rbac), ("Role", rbac), ("RoleBinding", rbac)]
        if driver_egress:  # objects.driver_egress: made when the API server's CIDRs are set
            sail.append(("NetworkPolicy", n.policy_name(notebook_id, "sail-driver")))
    if secret_env:
        env = ("Secret", n.env_secret_name(notebook_id, session_id))
        sail.append(env)
        marimo.append(env)
    return {n.SAIL: sail, n.MARIMO: marimo}


def without_supports(obs: Observation, missing: dict[str, list[str]]) -> Observation:
    """A component whose supporting objects are gone is taken for absent, so
    that `plan` has the runtime's (idempotent) start create them again."""
    changes: dict[str, Component] = {}
    for component, name in ((n.SAIL, "sail"), (n.MARIMO, "marimo")):
        current: Component = getattr(obs, name)
        alive = current.phase in (Phase.READY, Phase.STARTING) and not current.terminating
        if missing.get(component) and alive:
            gone = ", ".join(missing[component])
            changes[name] = Component(Phase.ABSENT, detail=f"its {gone} deleted: creating again")
    # Untracked: what runs (its pods) is not "nothing left" for a stop or a
    # failure's clean-up, though taken for absent by a start or repair.
    return replace(obs, untracked=True, **changes) if changes else obs


def _session_sails(pods: list[Obj], session_id: str) -> list[Obj]:
    """The session's Sail pods (created, or a claimed warm pod)."""
    sails = []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if labels.get(n.SESSION) == session_id and labels.get(n.COMPONENT) == n.SAIL:
            sails.append(pod)
    return sails


def _has_sail(pods: list[Obj], session_id: str) -> bool:
    """The session already has a live Sail pod (created or claimed)."""
    return any(
        not pod["metadata"].get("deletionTimestamp") for pod in _session_sails(pods, session_id)
    )


def _is_sail_pod(obj: Obj) -> bool:
    return obj["kind"] == "Pod" and obj["metadata"]["labels"].get(n.COMPONENT) == n.SAIL


def _alive(obs: Observation) -> bool:
    """A component runs and is not being torn down: only then can a missing
    object of its session be a loss (a stop deletes them first)."""
    return any(
        c.phase in (Phase.READY, Phase.STARTING) and not c.terminating
        for c in (obs.sail, obs.marimo)
    )


def _takes_secret_env(pods: list[Obj], notebook_id: str, session_id: str) -> bool:
    """Whether the session's pods take its secret environment (`envFrom`):
    the workload is not known here, its pods say it."""
    name = n.env_secret_name(notebook_id, session_id)
    for pod in pods:
        if (pod["metadata"].get("labels") or {}).get(n.SESSION) != session_id:
            continue
        for container in (pod.get("spec") or {}).get("containers") or []:
            if any(
                (f.get("secretRef") or {}).get("name") == name
                for f in container.get("envFrom") or []
            ):
                return True
    return False


def _driver_account(pods: list[Obj], session_id: str) -> str | None:
    """The service account the session's Sail pod runs as (a cluster-mode
    driver's own; None otherwise)."""
    for pod in _session_sails(pods, session_id):
        return (pod.get("spec") or {}).get("serviceAccountName")
    return None


def _ended(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def _check_images(spec: SessionSpec, allowed: tuple[str, ...]) -> None:
    """A config written before NOTEBOOKS_ALLOWED_IMAGES was set (or
    narrowed) does not start with an image the operator no longer allows."""
    for component, res in (("sail", spec.workload.sail), ("marimo", spec.workload.marimo)):
        if res.image and not image_allowed(res.image, allowed):
            raise TerminalError(
                f"the workload config's {component} image {res.image} is not among"
                f" NOTEBOOKS_ALLOWED_IMAGES ({', '.join(allowed)}); an org admin must change it"
            )


class KubernetesRuntime:
    # A starting notebook is looked at again no sooner than this (reconcile.py
    # `_paced`): at the plan's 50 ms, each start held a list of pods every
    # 50 ms against the API server while its images pulled (20 calls/s each).
    poll_floor_seconds = 0.5

    def __init__(
        self,
        settings: KubernetesSettings,
        api_client: client.ApiClient | None = None,
        *,
        # The pod watch's waits after consecutive failures (never 0: a tight
        # loop against a failing API server), with jitter (watch.JITTER).
        reconnect_backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0),
        marimo_root: Callable[[str], str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        # Judges warm pods' age, pods stuck terminating and the watch's resync.
        self.clock = clock or SystemClock()
        # When each notebook's supporting objects were last all there (monotonic).
        self._supports_seen: dict[str, float] = {}
        # Where the worker reaches a notebook's Marimo (tests point it elsewhere).
        self._marimo_root = marimo_root or (lambda nid: n.marimo_url(nid, settings.namespace))
        self._http: aiohttp.ClientSession | None = None
        self._client = api_client or default_api_client()
        self.api = KubeApi(
            self._client, settings.namespace, settings.request_timeout_seconds, clock=self.clock
        )
        self.pool = WarmPool(self.api, settings, clock=self.clock)
        self.watcher = PodWatcher(
            self.api,
            n.selector(n.managed()),
            watch_timeout_seconds=settings.watch_timeout_seconds,
            resync_seconds=settings.resync_seconds,
            backoff=reconnect_backoff,
            clock=self.clock,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> KubernetesRuntime:
        """What the runtime factory calls: the common settings pick the
        backend; the Kubernetes knobs come from NOTEBOOKS_K8S_* variables."""
        ks = replace(KubernetesSettings.from_env(), allowed_images=settings.allowed_images)
        return cls(ks, clock=clock)

    async def _pods(self, notebook_id: str) -> list[Obj]:
        return await self.api.list("Pod", n.selector(n.notebook_labels(notebook_id)))

    async def observe(self, notebook_id: str) -> Observation:
        pods = await self._pods(notebook_id)
        obs = observation_of(notebook_id, pods, self.settings.namespace)
        if obs.session_id and _alive(obs) and self._supports_due(notebook_id):
            cluster = _driver_account(pods, obs.session_id) == n.rbac_name(notebook_id)
            secret_env = _takes_secret_env(pods, notebook_id, obs.session_id)
            missing = await self._missing_supports(notebook_id, obs.session_id, cluster, secret_env)
            if any(missing.values()):
                log.warning("k8s_objects_missing", notebook_id=notebook_id, missing=missing)
                obs = without_supports(obs, missing)
            else:
                self._supports_seen[notebook_id] = self.clock.monotonic()
        if obs.marimo.phase is Phase.READY and obs.session_id:
            obs = replace(obs, executing=await self._executing(notebook_id, obs.session_id))
        return obs

    def _supports_due(self, notebook_id: str) -> bool:
        seen = self._supports_seen.get(notebook_id)
        return seen is None or self.clock.monotonic() - seen >= SUPPORTS_CHECK_SECONDS

    async def _missing_supports(
        self, notebook_id: str, session_id: str, cluster: bool, secret_env: bool
    ) -> dict[str, list[str]]:
        """Per component, its supporting objects that are not there (or are
        being deleted): one list per kind, by the notebook's labels."""
        egress = cluster and bool(self.settings.api_server_cidrs)
        needed = supports(notebook_id, session_id, cluster, egress, secret_env)
        kinds = sorted({kind for needs in needed.values() for kind, _ in needs})
        selector = n.selector(n.notebook_labels(notebook_id))
        lists = await asyncio.gather(*(self.api.list(kind, selector) for kind in kinds))
        present = {
            (kind, obj["metadata"]["name"])
            for kind, objs in zip(kinds, lists, strict=True)
            for obj in objs
            if not obj["metadata"].get("deletionTimestamp")
        }
        return {
            component: [f"{kind} {name}" for kind, name in needs if (kind, name) not in present]
            for component, needs in needed.items()
        }

    async def _token(self, notebook_id: str, session_id: str) -> str:
        """Marimo's token, from the session's Secret; "" when it cannot be read."""
        try:
            secret = await self.api.get("Secret", n.token_secret_name(notebook_id, session_id))
        except ApiException as exc:  # a refused read is no reason to fail the whole look
            log.warning("k8s_token_unreadable", notebook_id=notebook_id, status=exc.status)
            return ""
        try:
            return base64.b64decode((secret or {}).get("data", {}).get(n.TOKEN_KEY, "")).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def _executing(self, notebook_id: str, session_id: str) -> bool | None:
        """None when Marimo could not be asked: unknown never starts the idle timer."""
        token = await self._token(notebook_id, session_id)
        if not token:
            return None
        return await marimo_activity_at(
            self._http_session(), self._marimo_root(notebook_id), f"/notebooks/{notebook_id}", token
        )

    async def read_file(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> bytes | None:
        """Through the notebook's Marimo, the one pod that mounts its volume
        (the editor's own download, with the session's token): only while
        it is ready, so a copy is taken before a teardown, not after."""
        if observed.marimo.phase is not Phase.READY or not observed.session_id:
            return None
        token = await self._token(notebook_id, observed.session_id)
        if not token:
            return None
        return await marimo_file_at(
            self._http_session(),
            self._marimo_root(notebook_id),
            f"/notebooks/{notebook_id}",
            token,
            objects.NOTEBOOK_PATH,
            max_bytes,
        )

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        """Of `observed`'s session's pods, through the API server
        (pod_logs.py), before a teardown deletes them with their logs."""
        pods = await self._pods(notebook_id)
        return await pod_logs.read(self.api, pods, observed.session_id, max_bytes)

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        nid = spec.notebook_id
        _check_images(spec, self.settings.allowed_images)
        # Pods and token of an older session go first (their names differ, so
        # the new ones never wait for them). One list of the notebook's pods
        # serves both that and the warm pool's "has this session a Sail?".
        pods = await self._pods(nid)
        older = [
            p for p in pods if (p["metadata"].get("labels") or {}).get(n.SESSION) != spec.session_id
        ]
        # A pod of this session that ended (evicted, its node shut down) keeps
        # its name, which the create below needs: it goes, and the repair's
        # next pass creates it again once it is gone. So does one of this
        # session's pods being deleted, once it is stuck there (its node lost:
        # no kubelet will confirm it); delete_each deletes that one with no
        # grace and leaves one still within its grace to its kubelet.
        mine = [p for p in pods if p not in older]
        going = [p for p in mine if _ended(p) or p["metadata"].get("deletionTimestamp")]
        await self.api.delete_each("Pod", older + going)
        stale = f"{n.selector(n.notebook_labels(nid))},{n.SESSION}!={spec.session_id}"
        await self.api.delete_matching("Secret", stale)
        # A cluster-mode driver's Role names its session's pod (objects.driver_rbac).
        await self.api.delete_matching("Role", stale)
        todo = objects.session_objects(spec, self.settings)
        if objects.cluster_mode(spec) and not self.settings.api_server_cidrs:
            # Its driver creates worker pods through the API server, which
            # the sessions' egress policies let it reach only when named.
            log.warning(
                "k8s_cluster_mode_without_api_server_cidrs",
                notebook_id=nid,
                hint="set NOTEBOOKS_K8S_API_SERVER_CIDRS unless the API endpoint is public",
            )
        pooled = self.pool.enabled and poolable(spec.workload)
        # The session's Sail may be a claimed warm pod, named otherwise than
        # ours: creating ours too (a repair of Marimo, of a deleted Service)
        # put a second Sail behind the Service.
        has_sail = _has_sail(pods, spec.session_id)
        if has_sail or (pooled and await self.pool.claim(spec)):
            todo = [o for o in todo if not _is_sail_pod(o)]
        created = []
        for obj in todo:
            if await self.api.create(obj):
                created.append(f"{obj['kind']}/{obj['metadata']['name']}")
        if created:
            log.info("k8s_created", notebook_id=nid, session_id=spec.session_id, objects=created)
        if pooled:
            await self.pool.refill(spec.workload)
        return await self.observe(nid)

    async def ensure_stopped(self, notebook_id: str) -> None:
        self._supports_seen.pop(notebook_id, None)
        sel = n.selector(n.notebook_labels(notebook_id))
        removed: dict[str, int] = {}
        for kind in _STOP_KINDS:
            removed[kind] = await self.api.delete_matching(kind, sel)
        if any(removed.values()):
            log.info("k8s_stopped", notebook_id=notebook_id, removed=removed)

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)
        if await self.api.delete("PersistentVolumeClaim", n.pvc_name(notebook_id)):
            log.info("k8s_storage_removed", notebook_id=notebook_id)

    async def active_ids(self) -> set[str]:
        """Nothing: here the pod watch finds orphans. Every relist (at start,
        after a 410, every `resync_seconds`) announces each notebook that has
        pods, and a notebook announced without a row is removed by its pass;
        listing every pod on each sweep would only repeat that at the API
        server's expense."""
        return set()

    async def run_watch(self, on_change: Callable[[str], Awaitable[None]]) -> None:
        await self.watcher.run(on_change)

    async def close(self) -> None:
        self.watcher.stop()
        if self._http is not None:
            await self._http.close()
        self._client.close()
