"""Pod → Component: what a pod's status says about one notebook component.
Pure, over the raw JSON of a pod, so the watch, the observer and the tests
read the same thing."""

from __future__ import annotations

import re
from typing import Any

from reconciler.runtime.base import ABSENT, Component, Phase

# Waiting reasons a retry will not fix: the start fails at once, with the reason.
TERMINAL_WAITING = frozenset(
    {
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
TERMINAL_TERMINATED = frozenset({"OOMKilled", "Error", "ContainerCannotRun"})
# A failed pull is terminal only when its cause says a retry cannot fix it:
# no such image or tag, no such registry, or credentials the registry
# refuses. Any other cause (a timeout, a registry's 5xx, a rate limit) is
# the registry's bad moment: the kubelet pulls again with back-off and the
# start deadline bounds the wait, as for an unschedulable pod. The cause is
# in ErrImagePull's message, and in ImagePullBackOff's since Kubernetes 1.32
# (`Back-off pulling image "x": ErrImagePull: <cause>`); an older kubelet's
# back-off names none, so it waits too.
PULL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff"})
# What a component waiting on such a pull says it waits for, before the cause.
WAITING_FOR_IMAGE = "its image: "
PERMANENT_PULL_CAUSES = (
    "not found",
    "manifest unknown",
    "name unknown",
    "no such host",
    "unauthorized",
    "denied",
    "forbidden",
    "invalid reference",
)


def _why(reason: str, message: str | None, container: str) -> str:
    text = f"{container}: {reason}"
    return f"{text}: {message}" if message else text


def _container_failure(statuses: list[dict[str, Any]]) -> Component | None:
    for cs in statuses:
        name = cs.get("name", "?")
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        # An OOM kill is terminal even while the kubelet restarts the container.
        for term in (terminated, last):
            if term.get("reason") == "OOMKilled":
                return Component(Phase.FAILED, _why("OOMKilled", _exit(term), name), terminal=True)
        if waiting.get("reason") in PULL_WAITING and pull_is_permanent(waiting.get("message")):
            return Component(
                Phase.FAILED, _why(waiting["reason"], waiting.get("message"), name), terminal=True
            )
        if waiting.get("reason") in TERMINAL_WAITING:
            detail = _why(waiting["reason"], waiting.get("message"), name)
            if waiting["reason"] == "CrashLoopBackOff" and last:
                detail += f" (last exit: {_exit(last)})"
            return Component(Phase.FAILED, detail, terminal=True)
        if terminated.get("reason") in TERMINAL_TERMINATED:
            return Component(
                Phase.FAILED,
                _why(terminated["reason"], _exit(terminated), name),
                terminal=True,
            )
    return None


def pull_is_permanent(message: str | None) -> bool:
    """The cause, read without the image's own reference and the registry's
    URLs (quoted, or words with a `/`): an image named `denied-app` or a
    tag `not-found` must not turn a registry's 503 into a permanent failure."""
    words = re.sub(r'"[^"]*"', " ", message or "").split()
    cause = " ".join(w for w in words if "/" not in w).lower()
    return any(found in cause for found in PERMANENT_PULL_CAUSES)


def _pulling(statuses: list[dict[str, Any]]) -> Component | None:
    """A pull that failed for a cause a retry may fix: still starting."""
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_WAITING:
            message = waiting.get("message") or waiting["reason"]
            return Component(
                Phase.STARTING,
                _why(waiting["reason"], waiting.get("message"), cs.get("name", "?")),
                waiting_for=f"{WAITING_FOR_IMAGE}{message}",
            )
    return None


def _exit(term: dict[str, Any]) -> str:
    code = term.get("exitCode")
    msg = term.get("message")
    parts = [f"exit code {code}" if code is not None else "", msg or ""]
    return "; ".join(p for p in parts if p)


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def component_of(pod: dict[str, Any] | None) -> Component:
    if pod is None:
        return ABSENT
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        # Going away: not usable, not yet gone (teardown waits for ABSENT).
        return Component(Phase.STARTING, "terminating", terminating=True)
    phase = status.get("phase") or "Pending"
    containers = list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )
    failure = _container_failure(containers)
    if failure is not None:
        return failure
    if phase in ("Failed", "Succeeded"):
        reason = status.get("reason") or phase
        return Component(Phase.FAILED, f"pod {reason}: {status.get('message') or ''}".rstrip(": "))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        # Not terminal: a cluster autoscaler adds the node, a volume that binds
        # immediately is provisioned, a quota frees up. The start deadline
        # bounds the wait (then `failed`, with the scheduler's message), as
        # KubeSpawner's start_timeout does.
        message = scheduled.get("message") or "no node fits"
        return Component(
            Phase.STARTING, _why("Unschedulable", message, "pod"), waiting_for=f"a node: {message}"
        )
    if phase == "Running" and _condition(pod, "Ready").get("status") == "True":
        return Component(Phase.READY)
    pulling = _pulling(containers)
    if pulling is not None:
        return pulling
    waiting = [
        (cs.get("state") or {}).get("waiting", {}).get("reason")
        for cs in containers
        if (cs.get("state") or {}).get("waiting")
    ]
    detail = next((w for w in waiting if w), "") or phase.lower()
    return Component(Phase.STARTING, detail)
