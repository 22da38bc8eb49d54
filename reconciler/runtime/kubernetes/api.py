"""A thin async face over the official (synchronous) `kubernetes` client:
every call runs in a thread (asyncio.to_thread), with a request timeout, and
reads raw JSON so the pure code sees what the API server sent.

A create the API server refuses for good (a quota, RBAC, an invalid object:
4xx other than those below) raises TerminalError with the server's message,
so the notebook fails at once with it instead of being retried until its
start deadline.

No call is retried inside the client: urllib3's default (Retry(3), which the
official client keeps unless told otherwise) retries read timeouts and
dropped connections of GET and DELETE, so one call to a hung API server
took four request timeouts (a watch, four of its 330 s read timeouts) on
four connections. `without_retries` turns that off for every client a
KubeApi is given; the reconciler's own back-off does the retrying, and
NOTEBOOKS_K8S_REQUEST_TIMEOUT_SECONDS bounds each call."""

from __future__ import annotations

import asyncio
import builtins
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client import rest
from kubernetes.client.exceptions import ApiException
from urllib3.util.retry import Retry

from common.clock import Clock, SystemClock
from reconciler.runtime.base import TerminalError

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

# 4xx a retry can get past: credentials refreshed (401), already there or gone
# (404, 409, 410: the callers handle them), timeouts and throttling (408, 429).
RETRYABLE_4XX = frozenset({401, 404, 408, 409, 410, 429})


@dataclass(frozen=True)
class Kind:
    api: str  # attribute of KubeApi holding the client class instance
    suffix: str  # create_namespaced_<suffix>, list_…, delete_…


KINDS: dict[str, Kind] = {
    "Pod": Kind("core", "pod"),
    "Service": Kind("core", "service"),
    "Secret": Kind("core", "secret"),
    "PersistentVolumeClaim": Kind("core", "persistent_volume_claim"),
    "ServiceAccount": Kind("core", "service_account"),
    "NetworkPolicy": Kind("networking", "network_policy"),
    "Role": Kind("rbac", "role"),
    "RoleBinding": Kind("rbac", "role_binding"),
}


def permanent(exc: ApiException) -> bool:
    status = exc.status or 0
    return 400 <= status < 500 and status not in RETRYABLE_4XX


def server_message(exc: ApiException) -> str:
    """The API server's own words: its Status `message`, else the reason."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, TypeError, KeyError):
        return str(exc.reason or "")


def refusal(exc: ApiException, obj: Obj) -> TerminalError:
    """The API server's own words (its Status `message`), naming the object."""
    message = server_message(exc)
    what = f"{obj['kind']} {obj['metadata'].get('name', '')}".strip()
    return TerminalError(f"Kubernetes refused to create {what} ({exc.status}): {message}")


# A pod log's read, at most (the API server asks the pod's kubelet).
LOG_REQUEST_TIMEOUT_SECONDS = 5.0

# One attempt per call: a failure is raised to the caller, whose back-off
# (the reconcile pass's, the watch's) decides when to try again.
NO_RETRIES = Retry(total=0, redirect=0)


def without_retries(api_client: client.ApiClient) -> client.ApiClient:
    """Make every request of this client a single attempt. The retry policy
    is the connection pool's, read from the configuration when the client
    builds its REST client, so that is rebuilt (before any request, nothing
    is lost; after, only idle pooled connections)."""
    cfg = api_client.configuration
    cfg.retries = NO_RETRIES
    cfg.client_go_retries = False  # its GET retries would read `retries` anyway
    old = api_client.rest_client
    api_client.rest_client = rest.RESTClientObject(cfg)
    old.close()
    return api_client


def default_api_client() -> client.ApiClient:
    """In-cluster service account when running in a pod, else ~/.kube/config."""
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


# A pod past its deletionTimestamp (the API server sets it to the request's
# time plus the grace period) by this much is stuck: its node is lost or
# partitioned, so no kubelet will ever confirm it gone, and a stop (or the
# start of the next session) would wait for it forever.
STUCK_TERMINATING_SECONDS = 120


def stuck_terminating(obj: Obj, now: datetime) -> bool:
    raw = str(obj["metadata"].get("deletionTimestamp") or "")
    try:
        due = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (now - due).total_seconds() > STUCK_TERMINATING_SECONDS


class KubeApi:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        timeout: float,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.api_client = without_retries(api_client)
        self.namespace = namespace
        self.timeout = timeout
        self.clock = clock or SystemClock()  # judges pods stuck terminating
        self.core = client.CoreV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)

    def _fn(self, verb: str, kind: str) -> Any:
        k = KINDS[kind]
        return getattr(getattr(self, k.api), f"{verb}_namespaced_{k.suffix}")

    async def create(self, obj: Obj) -> bool:
        """Create; False if it already exists (a racing worker or a retry got
        there first, which is what we wanted anyway)."""
        fn = self._fn("create", obj["kind"])
        try:
            await asyncio.to_thread(
                fn, self.namespace, obj, _request_timeout=self.timeout, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            if permanent(exc):
                raise refusal(exc, obj) from exc
            raise
        return True

    async def list(self, kind: str, label_selector: str) -> list[Obj]:
        fn = self._fn("list", kind)
        resp = await asyncio.to_thread(
            fn,
            self.namespace,
            label_selector=label_selector,
            _request_timeout=self.timeout,
            _preload_content=False,
        )
        return list(json.loads(resp.data).get("items") or [])

    async def get(self, kind: str, name: str) -> Obj | None:
        fn = self._fn("read", kind)
        try:
            resp = await asyncio.to_thread(
                fn, name, self.namespace, _request_timeout=self.timeout, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(json.loads(resp.data))

    async def delete(
        self,
        kind: str,
        name: str,
        *,
        resource_version: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> bool:
        """Delete; False if it was already gone or, given `resource_version`,
        changed since it was read (the API server's precondition: 409).
        `grace_period_seconds=0`: at once (a pod stuck terminating)."""
        fn = self._fn("delete", kind)
        kw: dict[str, Any] = {}
        if resource_version is not None:
            kw["body"] = {"preconditions": {"resourceVersion": resource_version}}
        if grace_period_seconds is not None:
            kw["grace_period_seconds"] = grace_period_seconds
        try:
            await asyncio.to_thread(
                fn,
                name,
                self.namespace,
                _request_timeout=self.timeout,
                _preload_content=False,
                **kw,
            )
        except ApiException as exc:
            if exc.status == 404 or (exc.status == 409 and resource_version is not None):
                return False
            raise
        return True

    async def pod_log(
        self, name: str, container: str, *, previous: bool, tail_lines: int, limit_bytes: int
    ) -> bytes:
        """A container's output (`previous`: of its last run that ended,
        a crash loop's); from `tail_lines` lines back, at most `limit_bytes`
        of them (the API server counts from the first it sends)."""
        resp = await asyncio.to_thread(
            self.core.read_namespaced_pod_log,
            name,
            self.namespace,
            container=container,
            previous=previous,
            tail_lines=tail_lines,
            limit_bytes=limit_bytes,
            # Short: a stop waits for it, and its thread runs on after a
            # caller gives up (common/notebook_logs.py READ_TIMEOUT_SECONDS).
            _request_timeout=min(self.timeout, LOG_REQUEST_TIMEOUT_SECONDS),
            _preload_content=False,
        )
        return bytes(resp.data)

    async def delete_matching(self, kind: str, label_selector: str) -> int:
        return await self.delete_each(kind, await self.list(kind, label_selector))

    async def delete_each(self, kind: str, objs: builtins.list[Obj]) -> int:
        """Delete these (as listed), skipping those already on their way out,
        except a pod stuck there (`stuck_terminating`): deleted at once."""
        deleted = 0
        for obj in objs:
            name = obj["metadata"]["name"]
            if not obj["metadata"].get("deletionTimestamp"):
                deleted += await self.delete(kind, name)
            elif kind == "Pod" and stuck_terminating(obj, self.clock.now()):
                log.warning("k8s_pod_force_deleted", pod=name)
                deleted += await self.delete(kind, name, grace_period_seconds=0)
        return deleted
