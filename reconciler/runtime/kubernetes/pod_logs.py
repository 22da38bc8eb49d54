"""A session's output on Kubernetes: its Sail and Marimo pods' logs, read
through the API server (`GET …/pods/{name}/log`, `pods/log` in the worker's
Role) for docs/api.md "A notebook's logs". Which pod and container to read
is decided from the pods as listed (pure); the reads follow the kubelet's
rules (`validateContainerLogStatus`): a container waiting to start again
answers with the output of its run that ended."""

from __future__ import annotations

import contextlib
from typing import Any

import structlog
from kubernetes.client.exceptions import ApiException

from reconciler.runtime.base import LogTail
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.api import KubeApi, Obj, server_message

log = structlog.get_logger(__name__)

COMPONENTS = (n.SAIL, n.MARIMO)
# A log is read from the first of these many lines back whose read stays
# under this many times the bytes kept (the caller keeps the end:
# common/notebook_logs.py); lines that long are rare, so one read mostly.
TAIL_LINES = (1000, 100, 10)
LIMIT_FACTOR = 16
# Between a restarted container's run before and its run now.
RESTARTED = b"\n--- restarted: above, the run before; below, the run now ---\n"


def session_pod(pods: list[Obj], session_id: str | None, component: str) -> Obj | None:
    """The session's pod of `component`: the newest not being deleted, if
    several (one replaced while the other terminates)."""
    mine = [
        p
        for p in pods
        if (labels := p["metadata"].get("labels") or {}).get(n.SESSION) == session_id
        and labels.get(n.COMPONENT) == component
    ]
    mine.sort(
        key=lambda p: (
            not p["metadata"].get("deletionTimestamp"),
            p["metadata"].get("creationTimestamp") or "",
        ),
        reverse=True,
    )
    return mine[0] if session_id and mine else None


def _statuses(pod: Obj, key: str) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get(key) or [])


def restarted(pod: Obj, container: str) -> bool:
    """Runs again after a run that ended: that run's output (a traceback)
    is in its previous log, not its current one."""
    for s in _statuses(pod, "containerStatuses"):
        if s.get("name") == container:
            return "running" in (s.get("state") or {}) and bool(
                (s.get("lastState") or {}).get("terminated")
            )
    return False


def failed_init(pod: Obj) -> str | None:
    """An init container that failed (its main containers never start:
    Marimo waits in PodInitializing): the one whose output says why."""
    for s in _statuses(pod, "initContainerStatuses"):
        state, last = s.get("state") or {}, s.get("lastState") or {}
        ended = state.get("terminated") or (state.get("waiting") and last.get("terminated"))
        if ended and ended.get("exitCode", 0) != 0:
            return str(s.get("name"))
    return None


def problem_of(exc: ApiException, pod: str) -> str:
    """Why a log was not read, for members: a 400 is the kubelet's "waiting
    to start: ContainerCreating" (or ImagePullBackOff…); anything else may
    name nodes or accounts, so it is said generally and logged whole."""
    if exc.status == 400:
        return server_message(exc)
    log.warning("k8s_pod_log_failed", pod=pod, status=exc.status, message=server_message(exc))
    return f"The Kubernetes API answered {exc.status} to the read of its log."


async def tail(api: KubeApi, pod: str, container: str, previous: bool, max_bytes: int) -> bytes:
    """The end of a container's log. The API server cuts at `limitBytes`
    from the first line it sends, which would drop the newest lines: a read
    that reaches the limit is asked again from fewer lines back."""
    limit = LIMIT_FACTOR * max_bytes
    data = b""
    for lines in TAIL_LINES:
        data = await api.pod_log(
            pod, container, previous=previous, tail_lines=lines, limit_bytes=limit
        )
        if len(data) < limit:
            break
    return data


async def component_log(api: KubeApi, pod: Obj, container: str, max_bytes: int) -> LogTail:
    name = pod["metadata"]["name"]
    try:
        data = await tail(api, name, container, False, max_bytes)
    except ApiException as exc:
        init = failed_init(pod) if exc.status == 400 else None
        if init is not None:
            with contextlib.suppress(ApiException):
                head = f"--- its {init} container failed, before it started ---\n".encode()
                return LogTail(head + await tail(api, name, init, False, max_bytes))
        return LogTail(None, problem_of(exc, name))
    if restarted(pod, container):
        with contextlib.suppress(ApiException):  # gone meanwhile: the run now is read
            data = await tail(api, name, container, True, max_bytes) + RESTARTED + data
    return LogTail(data)


async def read(
    api: KubeApi, pods: list[Obj], session_id: str | None, max_bytes: int
) -> dict[str, LogTail]:
    out: dict[str, LogTail] = {}
    for component in COMPONENTS:
        pod = session_pod(pods, session_id, component)
        out[component] = (
            LogTail(None, "It has no pod.")
            if pod is None
            else await component_log(api, pod, component, max_bytes)
        )
    return out
