"""A fake kubelet: moves pods through their phases the way a node would,
by writing pod status into the emulator (as the kubelet does through the
status subresource), so every change reaches watchers as a MODIFIED event.

By default a new pod is scheduled and becomes Running and Ready. Per image
(the image names a behaviour), it can instead fail to pull (for good, or
for now), crash-loop, stay unschedulable or get OOM-killed; or stay Pending
for a test to drive."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from .emulator import KubeEmulator

Obj = dict[str, Any]

RUN = "run"
PENDING = "pending"  # scheduled, never started: the test drives it
IMAGE_PULL = "image-pull"  # no such image: a retry cannot fix it
IMAGE_PULL_RETRY = "image-pull-retry"  # the registry failed this time (a 503)
CRASH_LOOP = "crash-loop"
UNSCHEDULABLE = "unschedulable"
OOM = "oom"


def _cond(kind: str, status: bool, reason: str = "", message: str = "") -> Obj:
    c: Obj = {"type": kind, "status": "True" if status else "False"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _names(pod: Obj) -> list[str]:
    return [c["name"] for c in pod["spec"].get("containers", [])]


def running(pod: Obj) -> Obj:
    return {
        "phase": "Running",
        "podIP": "10.0.0.10",
        "conditions": [_cond("PodScheduled", True), _cond("Ready", True)],
        "containerStatuses": [
            {"name": c, "ready": True, "restartCount": 0, "state": {"running": {}}}
            for c in _names(pod)
        ],
    }


def _pull_cause(image: str, transient: bool) -> str:
    """What containerd says, as a kubelet passes it on."""
    ref = f"docker.io/{image}"
    if transient:
        return (
            f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": '
            f"failed to copy: httpReadSeeker: failed open: unexpected status code "
            f"https://registry-1.docker.io/v2/{image.split(':')[0]}/blobs/sha256:0f: "
            "503 Service Unavailable"
        )
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
        f'failed to resolve reference "{ref}": {ref}: not found'
    )


def image_pull_backoff(
    pod: Obj, reason: str = "ImagePullBackOff", *, transient: bool = False
) -> Obj:
    """A failed pull, as a kubelet of Kubernetes 1.32 or later reports it:
    ErrImagePull with the cause, then ImagePullBackOff naming it too."""
    image = pod["spec"]["containers"][0]["image"]
    cause = _pull_cause(image, transient)
    message = (
        cause
        if reason == "ErrImagePull"
        else f'Back-off pulling image "{image}": ErrImagePull: {cause}'
    )
    return {
        "phase": "Pending",
        "conditions": [_cond("PodScheduled", True), _cond("Ready", False)],
        "containerStatuses": [
            {
                "name": c,
                "ready": False,
                "restartCount": 0,
                "state": {
                    "waiting": {
                        "reason": reason,
                        "message": message,
                    }
                },
            }
            for c in _names(pod)
        ],
    }


def crash_loop(pod: Obj) -> Obj:
    return {
        "phase": "Running",
        "conditions": [_cond("PodScheduled", True), _cond("Ready", False)],
        "containerStatuses": [
            {
                "name": c,
                "ready": False,
                "restartCount": 3,
                "state": {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 40s restarting failed container={c}",
                    }
                },
                "lastState": {"terminated": {"reason": "Error", "exitCode": 2}},
            }
            for c in _names(pod)
        ],
    }


def unschedulable(pod: Obj) -> Obj:
    return {
        "phase": "Pending",
        "conditions": [
            _cond(
                "PodScheduled",
                False,
                "Unschedulable",
                "0/3 nodes are available: 3 Insufficient memory.",
            )
        ],
    }


def oom_killed(pod: Obj) -> Obj:
    return {
        "phase": "Running",
        "conditions": [_cond("PodScheduled", True), _cond("Ready", False)],
        "containerStatuses": [
            {
                "name": c,
                "ready": False,
                "restartCount": 1,
                "state": {"running": {}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
            }
            for c in _names(pod)
        ],
    }


def container_creating(pod: Obj) -> Obj:
    return {
        "phase": "Pending",
        "conditions": [_cond("PodScheduled", True), _cond("Ready", False)],
        "containerStatuses": [
            {"name": c, "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
            for c in _names(pod)
        ],
    }


_OUTCOMES = {
    RUN: running,
    IMAGE_PULL: image_pull_backoff,
    IMAGE_PULL_RETRY: lambda pod: image_pull_backoff(pod, "ErrImagePull", transient=True),
    CRASH_LOOP: crash_loop,
    UNSCHEDULABLE: unschedulable,
    OOM: oom_killed,
}


class Kubelet:
    """Drives every new pod: first ContainerCreating, then the behaviour its
    image maps to (default: `run`)."""

    def __init__(self, emulator: KubeEmulator) -> None:
        self.emulator = emulator
        self.behaviour: dict[str, str] = {}  # image → behaviour
        self.default = RUN
        self._tasks: set[asyncio.Task[None]] = set()
        emulator.listen(self._on_event)

    def _on_event(self, kind: str, obj: Obj) -> None:
        if (
            kind != "ADDED"
            or obj.get("kind", "Pod") != "Pod"
            or "containers" not in obj.get("spec", {})
        ):
            return
        # Asynchronously, as a node would: the API write returns first.
        self._spawn(self._drive(obj))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def finish(self, namespace: str, name: str) -> bool:
        """A terminating pod's containers are gone: remove the pod (with
        emulator.graceful_pods, terminating pods stay until a test calls this)."""
        if self.emulator.get("pods", namespace, name) is None:
            return False
        self.emulator.remove("", "pods", namespace, name)
        return True

    async def _drive(self, pod: Obj) -> None:
        meta = pod["metadata"]
        image = pod["spec"]["containers"][0]["image"]
        behaviour = self.behaviour.get(image, self.default)
        if behaviour == UNSCHEDULABLE:
            self.set_status(meta["namespace"], meta["name"], unschedulable(pod))
            return
        self.set_status(meta["namespace"], meta["name"], container_creating(pod))
        await asyncio.sleep(0)  # let watchers see the intermediate state first
        if behaviour != PENDING:
            self.set_status(meta["namespace"], meta["name"], _OUTCOMES[behaviour](pod))

    def set_status(self, namespace: str, name: str, status: Obj) -> bool:
        """Write a pod's status; False if the pod is gone meanwhile."""
        pod = self.emulator.get("pods", namespace, name)
        if pod is None:
            return False
        pod["status"] = copy.deepcopy(status)
        self.emulator.put("", "pods", pod)
        return True

    def apply(self, namespace: str, name: str, behaviour: str) -> bool:
        pod = self.emulator.get("pods", namespace, name)
        if pod is None:
            return False
        return self.set_status(namespace, name, _OUTCOMES[behaviour](pod))

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
