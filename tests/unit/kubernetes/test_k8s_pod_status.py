"""Pod status → Component, with the real reason; failures a retry cannot fix
are terminal at once."""

from __future__ import annotations

import pytest

from reconciler.runtime.base import Phase
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.runtime import observation_of
from reconciler.runtime.kubernetes.status import component_of


def pod(status: dict, *, component: str = "sail", session: str = "S1", **meta: object) -> dict:
    return {
        "metadata": {
            "name": f"nb-x-{session.lower()}-{component}",
            "labels": {n.NOTEBOOK: "X", n.SESSION: session, n.COMPONENT: component},
            "creationTimestamp": meta.pop("created", "2026-01-01T00:00:00Z"),
            **meta,
        },
        "spec": {"containers": [{"name": component, "image": "img"}]},
        "status": status,
    }


def waiting(reason: str, message: str = "") -> dict:
    return {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "sail", "state": {"waiting": {"reason": reason, "message": message}}}
        ],
    }


READY = {
    "phase": "Running",
    "conditions": [{"type": "Ready", "status": "True"}],
    "containerStatuses": [{"name": "sail", "ready": True, "state": {"running": {}}}],
}


def test_absent_pod_is_absent() -> None:
    assert component_of(None).phase is Phase.ABSENT


def test_running_and_ready_is_ready() -> None:
    assert component_of(pod(READY)).phase is Phase.READY


@pytest.mark.parametrize(
    "status",
    [
        {"phase": "Pending"},
        waiting("ContainerCreating"),
        {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]},
    ],
)
def test_not_yet_ready_is_starting(status: dict) -> None:
    c = component_of(pod(status))
    assert c.phase is Phase.STARTING and not c.terminal


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImagePull", "manifest unknown"),
        (
            "ErrImagePull",
            'rpc error: code = NotFound desc = failed to pull and unpack image "x": not found',
        ),
        (
            "ImagePullBackOff",
            'Back-off pulling image "nope:1": ErrImagePull: rpc error: code = NotFound desc = '
            'failed to pull and unpack image "docker.io/library/nope:1": failed to resolve '
            'reference "docker.io/library/nope:1": docker.io/library/nope:1: not found',
        ),
        (
            "ErrImagePull",
            'failed to resolve reference "reg.example/x:1": pull access denied, repository does '
            "not exist or may require authorization: server message: insufficient_scope",
        ),
        ("ErrImagePull", "unexpected status from HEAD request: 401 Unauthorized"),
        ("ErrImagePull", "dial tcp: lookup regsitry.example on 10.96.0.10:53: no such host"),
        ("InvalidImageName", 'Failed to apply default image tag "Nope:1"'),
        ("CrashLoopBackOff", "back-off 40s restarting failed container"),
        ("CreateContainerConfigError", 'secret "x" not found'),
    ],
)
def test_waiting_failures_are_terminal_with_reason(reason: str, message: str) -> None:
    c = component_of(pod(waiting(reason, message)))
    assert c.phase is Phase.FAILED and c.terminal
    assert reason in c.detail and message in c.detail


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (
            "ErrImagePull",
            'rpc error: code = Unknown desc = failed to pull and unpack image "x:1": failed to '
            "copy: httpReadSeeker: failed open: unexpected status code https://r/v2/x/blobs/"
            "sha256:0f: 503 Service Unavailable",
        ),
        (
            "ImagePullBackOff",
            'Back-off pulling image "x:1": ErrImagePull: rpc error: code = Unknown desc = '
            "failed to pull and unpack image: 429 Too Many Requests - Server message: "
            "toomanyrequests: You have reached your pull rate limit.",
        ),
        ("ErrImagePull", "dial tcp 10.0.0.5:443: i/o timeout"),
        # The image's own name says "denied", "not-found": not the cause.
        (
            "ErrImagePull",
            'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/'
            'acme/access-denied:not-found": failed to copy: httpReadSeeker: failed open: '
            "unexpected status code https://registry-1.docker.io/v2/acme/access-denied/"
            "blobs/sha256:0f: 503 Service Unavailable",
        ),
        # An older kubelet's back-off names no cause: waited for, not failed.
        ("ImagePullBackOff", 'Back-off pulling image "x:1"'),
    ],
)
def test_a_pull_the_registry_may_yet_serve_waits(reason: str, message: str) -> None:
    """A registry's bad moment (a 5xx, a rate limit, a timeout) is not the
    image's fault: the kubelet pulls again, and the start deadline bounds
    the wait, with the cause in the status message meanwhile."""
    c = component_of(pod(waiting(reason, message)))
    assert c.phase is Phase.STARTING and not c.terminal
    assert c.waiting_for == f"its image: {message}"
    assert reason in c.detail and message in c.detail


def test_crash_loop_reports_last_exit_code() -> None:
    status = waiting("CrashLoopBackOff")
    status["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 3}}
    assert "exit code 3" in component_of(pod(status)).detail


def test_unschedulable_waits_for_a_node_with_the_scheduler_message() -> None:
    """A cluster autoscaler adds nodes for pods that do not fit yet, and an
    immediately-binding volume is provisioned while the pod waits: the start
    deadline, not the first look, decides when waiting is over."""
    status = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory.",
            }
        ],
    }
    c = component_of(pod(status))
    assert c.phase is Phase.STARTING and not c.terminal
    assert "Unschedulable" in c.detail and "Insufficient memory" in c.detail
    assert c.waiting_for == "a node: 0/3 nodes are available: 3 Insufficient memory."


def test_oom_kill_is_terminal_even_after_the_restart() -> None:
    status = dict(READY)
    status["containerStatuses"] = [
        {
            "name": "sail",
            "ready": True,
            "state": {"running": {}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        }
    ]
    c = component_of(pod(status))
    assert c.phase is Phase.FAILED and c.terminal and "OOMKilled" in c.detail


def test_evicted_pod_is_failed_but_retryable() -> None:
    c = component_of(pod({"phase": "Failed", "reason": "Evicted", "message": "low on disk"}))
    assert c.phase is Phase.FAILED and not c.terminal and "Evicted" in c.detail


def test_terminating_pod_is_not_usable_and_not_gone() -> None:
    c = component_of(pod(READY, deletionTimestamp="2026-01-01T00:01:00Z"))
    assert c.phase is Phase.STARTING and c.detail == "terminating"


def test_observation_prefers_the_live_session_over_a_terminating_one() -> None:
    old = pod(READY, session="OLD", deletionTimestamp="2026-01-01T00:01:00Z")
    new_sail = pod({"phase": "Pending"}, session="NEW", created="2026-01-01T00:02:00Z")
    new_marimo = pod(READY, component="marimo", session="NEW", created="2026-01-01T00:02:00Z")
    obs = observation_of("X", [old, new_sail, new_marimo], "ns")
    assert obs.session_id == "NEW"
    assert obs.sail.phase is Phase.STARTING
    assert obs.marimo.phase is Phase.READY
    assert obs.marimo_url == "http://nb-x-marimo.ns.svc:2718"
    assert obs.sail_url == "sc://nb-x-sail.ns.svc:50051"
    assert obs.runtime_state["marimo_url"] == obs.marimo_url


def test_no_pods_is_nothing_left() -> None:
    obs = observation_of("X", [], "ns")
    assert obs.session_id is None and obs.nothing_left


def test_marimo_pod_lost_under_running_notebook_is_absent() -> None:
    obs = observation_of("X", [pod(READY)], "ns")
    assert obs.sail.phase is Phase.READY
    assert obs.marimo.phase is Phase.ABSENT


def test_sail_worker_pods_left_alone_are_not_nothing_left() -> None:
    """A cluster-mode driver's worker pods outlive Sail and Marimo for a
    while (or are created by a terminating driver): a stop waits for them."""
    worker = pod(READY, component=n.SAIL_WORKER)
    obs = observation_of("X", [worker], "ns")
    assert not obs.nothing_left
    assert obs.sail.phase is Phase.STARTING and obs.sail.terminating
    assert "nb-x-s1-worker" in obs.sail.detail
    going = pod(READY, component=n.SAIL_WORKER, deletionTimestamp="2026-01-01T00:01:00Z")
    assert not observation_of("X", [going], "ns").nothing_left


def test_worker_pods_do_not_choose_the_session() -> None:
    sail = pod(READY, session="S1")
    newer_worker = pod(READY, component=n.SAIL_WORKER, session="ZZ", created="2026-01-02T00:00:00Z")
    obs = observation_of("X", [sail, newer_worker], "ns")
    assert obs.session_id == "S1" and obs.sail.phase is Phase.READY
