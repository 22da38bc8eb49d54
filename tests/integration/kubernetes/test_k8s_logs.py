"""A notebook's logs read on Kubernetes (docs/api.md "A notebook's logs",
reconciler/runtime/kubernetes/pod_logs.py): from its session's pods through
the API server's `pods/log`, as the official client asks for them, against
the API emulator (a kmock server speaking the real REST protocol, serving a
container's log by the kubelet's rules; it runs no containers, so a test
writes what each container printed)."""

from __future__ import annotations

from typing import Any

from kube_emulator import eventually, kubelet
from kube_emulator.cluster import NAMESPACE, Kube

from reconciler.runtime.base import Observation, Phase, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes.pod_logs import LIMIT_FACTOR, RESTARTED, TAIL_LINES

S1 = Observation(session_id="S1")


def spec(nid: str, sid: str = "S1") -> SessionSpec:
    return SessionSpec(nid, sid, "tok-" + sid, WorkloadSpec(), f"/notebooks/{nid}")


def said(kube: Kube, pod: str, container: str, text: str, *, last_run: bool = False) -> None:
    kube.emulator.pod_logs[(NAMESPACE, pod, container, last_run)] = text


async def started(kube: Kube, nid: str) -> Any:
    rt = kube.runtime()
    await rt.ensure_running(spec(nid))

    async def ready() -> bool:
        seen = await rt.observe(nid)
        return seen.sail.phase is seen.marimo.phase is Phase.READY

    await eventually(ready)
    return rt


async def test_a_running_sessions_pods_give_their_newest_lines(kube: Kube) -> None:
    rt = await started(kube, "NB1")
    said(kube, "nb-nb1-s1-sail", "sail", "sail line 1\n")
    said(kube, "nb-nb1-s1-marimo", "marimo", "".join(f"marimo line {i:04}\n" for i in range(2000)))
    got = await rt.read_logs("NB1", S1, 1000)
    assert got["sail"].data == b"sail line 1\n" and got["sail"].problem == ""
    # The newest lines, whatever the log's length: from 1000 lines back the
    # server's limit (counted from the first line it sends) would cut them
    # off, so the read is asked again from 100 lines back.
    marimo = got["marimo"].data
    assert marimo is not None and marimo.endswith(b"marimo line 1999\n")
    assert marimo.startswith(b"marimo line 1900\n")
    asked = [c.params for c in kube.emulator.calls if c.plural == "pods/log"]
    assert [(p["container"], p["tailLines"]) for p in asked] == [
        ("sail", str(TAIL_LINES[0])),
        ("marimo", str(TAIL_LINES[0])),
        ("marimo", str(TAIL_LINES[1])),
    ]
    assert {p["limitBytes"] for p in asked} == {str(LIMIT_FACTOR * 1000)}
    # Another session's pods are not this one's.
    other = await rt.read_logs("NB1", Observation(session_id="S0"), 1000)
    assert other["sail"].data is None and other["sail"].problem == "It has no pod."
    assert other["marimo"].data is None


async def test_a_crash_loop_and_a_restart_give_the_run_that_ended(kube: Kube) -> None:
    rt = await started(kube, "NB2")
    traceback = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'x'\n"
    # Waiting to start again: the kubelet answers with the run that ended.
    kube.kubelet.set_status(
        NAMESPACE, "nb-nb2-s1-marimo", kubelet.crash_loop(marimo_pod(kube, "NB2"))
    )
    said(kube, "nb-nb2-s1-marimo", "marimo", traceback, last_run=True)
    got = await rt.read_logs("NB2", S1, 64 * 1024)
    assert got["marimo"].data == traceback.encode()
    # Running again: its run before (the traceback) and its run now, both.
    restarted = kubelet.running(marimo_pod(kube, "NB2"))
    restarted["containerStatuses"][0] |= {
        "restartCount": 1,
        "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
    }
    kube.kubelet.set_status(NAMESPACE, "nb-nb2-s1-marimo", restarted)
    said(kube, "nb-nb2-s1-marimo", "marimo", "up again\n")
    got = await rt.read_logs("NB2", S1, 64 * 1024)
    assert got["marimo"].data == traceback.encode() + RESTARTED + b"up again\n"


async def test_a_failed_seed_says_why_and_a_pod_not_started_says_so(kube: Kube) -> None:
    rt = await started(kube, "NB3")
    pod = marimo_pod(kube, "NB3")
    kube.kubelet.set_status(
        NAMESPACE,
        "nb-nb3-s1-marimo",
        {
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "seed", "state": {"terminated": {"reason": "Error", "exitCode": 1}}}
            ],
            "containerStatuses": [
                {"name": c["name"], "state": {"waiting": {"reason": "PodInitializing"}}}
                for c in pod["spec"]["containers"]
            ],
        },
    )
    said(kube, "nb-nb3-s1-marimo", "seed", "seed: /data is read-only\n")
    kube.kubelet.set_status(NAMESPACE, "nb-nb3-s1-sail", {"phase": "Pending"})
    got = await rt.read_logs("NB3", S1, 64 * 1024)
    marimo = got["marimo"].data
    assert marimo is not None and marimo.endswith(b"seed: /data is read-only\n")
    assert marimo.startswith(b"--- its seed container failed")
    assert got["sail"].data is None
    assert got["sail"].problem == (
        'container "sail" in pod "nb-nb3-s1-sail" is waiting to start: ContainerCreating'
    )


async def test_what_the_api_server_refuses_is_said_without_its_details(kube: Kube) -> None:
    rt = await started(kube, "NB4")
    kube.emulator.fail_code = 403
    kube.emulator.fail_message = (
        'pods "nb-nb4-s1-sail" is forbidden: User "system:serviceaccount:notebooks:'
        'notebooks-worker" cannot get resource "pods/log"'
    )
    kube.emulator.fail_next["pods/log"] = 2
    got = await rt.read_logs("NB4", S1, 1000)
    for component in ("sail", "marimo"):
        assert got[component].data is None
        assert got[component].problem == "The Kubernetes API answered 403 to the read of its log."


def marimo_pod(kube: Kube, nid: str) -> Any:
    return kube.emulator.get("pods", NAMESPACE, f"nb-{nid.lower()}-s1-marimo")
