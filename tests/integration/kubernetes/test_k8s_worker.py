"""The real worker (pgqueuer consumer, reconcile passes, plan) driving the
Kubernetes runtime against the API emulator, with the sweep pushed out of
reach: after the start job, only the pod watch (watch → on_change →
enqueue → reconcile) can wake the reconciler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from kube_emulator import eventually, kubelet
from kube_emulator.cluster import NAMESPACE, Kube
from psycopg.rows import dict_row

from common.clock import Clock
from common.ids import new_id
from common.jobs import enqueue_reconcile
from common.settings import Settings
from reconciler.plan import UNRESPONSIVE_GRACE_SECONDS
from reconciler.runtime.kubernetes.api import STUCK_TERMINATING_SECONDS
from reconciler.runtime.kubernetes.runtime import SUPPORTS_CHECK_SECONDS
from reconciler.worker import run_worker
from sql import query


class Db:
    """Rows written the way the API writes them (trivial SQL, test-only)."""

    def __init__(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        self.conn = conn
        self.org, self.member = new_id(), new_id()

    async def setup(self) -> None:
        await self.conn.execute(
            "insert into organizations (id, name) values (%s, 'org')", (self.org,)
        )
        await self.conn.execute(
            "insert into members (id, organization_id, email, name, organization_admin)"
            " values (%s, %s, 'a@example.com', 'A', true)",
            (self.member, self.org),
        )

    async def notebook(self, *, sail_image: str = "", mode: str = "standalone") -> str:
        cid, nid = new_id(), new_id()
        await self.conn.execute(
            "insert into workload_configs (id, organization_id, name, sail, mode)"
            " values (%s, %s, %s, %s, %s)",
            (
                cid,
                self.org,
                f"cfg-{cid}",
                json.dumps({"image": sail_image} if sail_image else {}),
                mode,
            ),
        )
        await self.conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " created_by, updated_by) values (%s, %s, %s, %s, 'nb', %s, %s)",
            (nid, self.org, self.member, cid, self.member, self.member),
        )
        return nid

    async def start(self, nid: str) -> str:
        now, sid = datetime.now(UTC), new_id()
        async with self.conn.transaction():
            await self.conn.execute(
                "update notebooks set desired_state = 'running', generation = generation + 1,"
                " session_id = %s, session_token = %s, start_requested_at = %s,"
                " start_deadline_at = %s, last_active_at = %s where id = %s",
                (sid, secrets.token_urlsafe(32), now, now + timedelta(hours=1), now, nid),
            )
            await self.conn.execute(
                query("set_status"),
                {
                    "id": nid,
                    "status": "starting",
                    "status_message": "",
                    "reason": None,
                    "actor": self.member,
                    "now": now,
                    "record_unchanged": False,
                },
            )
            await enqueue_reconcile(self.conn, [nid])
        return sid

    async def stop(self, nid: str) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                "update notebooks set desired_state = 'stopped', generation = generation + 1"
                " where id = %s",
                (nid,),
            )
            await self.conn.execute(
                query("set_status"),
                {
                    "id": nid,
                    "status": "stopping",
                    "status_message": "",
                    "reason": None,
                    "actor": self.member,
                    "now": datetime.now(UTC),
                    "record_unchanged": False,
                },
            )
            await enqueue_reconcile(self.conn, [nid])

    async def delete(self, nid: str) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                "update notebooks set desired_state = 'deleted', generation = generation + 1,"
                " deleted_at = now(), deleted_by = %s where id = %s",
                (self.member, nid),
            )
            await enqueue_reconcile(self.conn, [nid])

    async def row(self, nid: str) -> dict[str, Any] | None:
        cur = await self.conn.execute("select * from notebooks where id = %s", (nid,))
        return await cur.fetchone()

    async def transitions(self, nid: str) -> list[str]:
        cur = await self.conn.execute(query("list_events"), {"notebook_id": nid})
        return [r["to_status"] for r in await cur.fetchall()]

    async def wait_queue_empty(self, nid: str) -> None:
        async def empty() -> bool:
            cur = await self.conn.execute(
                "select count(*) as n from pgqueuer where dedupe_key = %s", (f"reconcile:{nid}",)
            )
            row = await cur.fetchone()
            return row is not None and row["n"] == 0

        await eventually(empty)

    async def wait_status(self, nid: str, status: str, timeout: float = 20) -> dict[str, Any]:
        async def reached() -> bool:
            row = await self.row(nid)
            return row is not None and row["status"] == status

        await eventually(reached, timeout)
        row = await self.row(nid)
        assert row is not None
        return row


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Db]:
    conn = await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, row_factory=dict_row
    )
    d = Db(conn)
    await d.setup()
    yield d
    await conn.close()


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, kube: Kube, clock: Clock | None = None
) -> AsyncIterator[Kube]:
    """A real worker using the Kubernetes runtime; the sweep never runs."""
    s = Settings(
        **{
            **settings.__dict__,
            "runtime": "kubernetes",
            "sweep_interval_seconds": 3600,
            "heartbeat_timeout_seconds": 4,
            "start_deadline_seconds": 3600,
            "worker_concurrency": 4,
        }
    )
    rt = kube.runtime(watch_timeout_seconds=60, resync_seconds=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(s, stop=stop, runtime=rt, clock=clock))
    try:
        yield kube
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)


@pytest.fixture
async def worker(settings: Settings, kube: Kube) -> AsyncIterator[Kube]:
    async with running_worker(settings, kube) as running:
        yield running


async def test_start_runs_and_a_lost_pod_is_repaired_through_the_watch(
    db: Db, worker: Kube
) -> None:
    nid = await db.notebook()
    sid = await db.start(nid)
    row = await db.wait_status(nid, "running")
    pod = f"nb-{nid.lower()}-{sid.lower()}-marimo"
    assert row["runtime_state"]["marimo_url"] == (
        f"http://nb-{nid.lower()}-marimo.{NAMESPACE}.svc:2718"
    )
    # pgqueuer drops an enqueue while the same key's job is still picked, so
    # wait for the start job to be done (the sweep covers that gap in production)
    await db.wait_queue_empty(nid)
    # the Marimo pod disappears under the running notebook (node lost, evicted)
    worker.kubelet.default = kubelet.PENDING
    worker.emulator.remove("", "pods", NAMESPACE, pod)

    async def recreated() -> bool:
        return pod in worker.pods()

    await eventually(recreated)  # only the watch could have woken the reconciler
    row = await db.wait_status(nid, "starting")
    assert "Marimo" in row["status_message"]  # never `running` with Marimo down
    worker.kubelet.apply(NAMESPACE, pod, kubelet.RUN)
    await db.wait_status(nid, "running")
    assert await db.transitions(nid) == ["starting", "running", "starting", "running"]


@pytest.mark.parametrize(
    ("kind", "resource", "group", "name"),
    [
        ("Service", "services", "", "nb-{nid}-marimo"),
        ("NetworkPolicy", "networkpolicies", "networking.k8s.io", "nb-{nid}-sail"),
        ("Secret", "secrets", "", "nb-{nid}-{sid}-token"),
    ],
)
async def test_an_object_deleted_under_a_running_notebook_is_made_again(
    db: Db, worker: Kube, kind: str, resource: str, group: str, name: str
) -> None:
    """Nothing watches a session's Services, policies or token, and its pods
    stay ready without them: one deleted (kubectl, a clean-up script) left
    the notebook `running` for good with Marimo out of the proxy's reach (or
    Sail out of Marimo's). They are looked for once a minute; one missing
    is made again by a repair, which says what was deleted."""
    nid = await db.notebook()
    sid = await db.start(nid)
    await db.wait_status(nid, "running")
    await db.wait_queue_empty(nid)
    gone = name.format(nid=nid.lower(), sid=sid.lower())
    worker.emulator.remove(group, resource, NAMESPACE, gone)
    worker.clock.advance(SUPPORTS_CHECK_SECONDS)  # the runtime's clock: the next look is due
    async with db.conn.transaction():
        await enqueue_reconcile(db.conn, [nid])  # what the sweep does every round

    async def made_again() -> bool:
        return gone in worker.emulator.names(resource, group)

    await eventually(made_again)

    async def repaired() -> bool:
        return await db.transitions(nid) == ["starting", "running", "starting", "running"]

    await eventually(repaired)
    cur = await db.conn.execute(query("list_events"), {"notebook_id": nid})
    repair = [e for e in await cur.fetchall() if e["to_status"] == "starting"][-1]
    assert f"its {kind} {gone} deleted" in repair["reason"], repair


@pytest.fixture
async def clocked_worker(settings: Settings, kube: Kube) -> AsyncIterator[Kube]:
    """The worker of `worker`, on the cluster's clock: the test moves the
    reconciler's time (the unresponsive grace) and the runtime's (pods
    stuck terminating) together."""
    async with running_worker(settings, kube, kube.clock) as running:
        yield running


async def test_a_pod_stuck_terminating_under_a_running_notebook_is_replaced(
    db: Db, clocked_worker: Kube
) -> None:
    """Its node lost, the Marimo pod is deleted (deletionTimestamp set,
    phase still Running) and no kubelet ever confirms it. The repair starts
    the session again until the pod is stuck terminating, then deletes it
    with no grace and creates it again: `running` again, not `failed` at the
    deadline with "Marimo: terminating"."""
    kube = clocked_worker
    nid = await db.notebook()
    sid = await db.start(nid)
    await db.conn.execute(  # a member keeps the notebook open throughout
        "insert into notebook_presence (notebook_id, member_id, last_seen_at)"
        " values (%s, %s, now() + interval '1 day')",
        (nid, db.member),
    )
    await db.wait_status(nid, "running")
    await db.wait_queue_empty(nid)
    kube.emulator.graceful_pods = True
    name = f"nb-{nid.lower()}-{sid.lower()}-marimo"
    before = kube.emulator.get("pods", NAMESPACE, name)
    assert before is not None
    assert await kube.runtime().api.delete("Pod", name)  # the taint manager evicting it

    async def repair_armed() -> bool:  # the watch woke the reconciler: within the grace
        row = await db.row(nid)
        return row is not None and row["start_deadline_at"] is not None

    await eventually(repair_armed)
    kube.clock.advance(UNRESPONSIVE_GRACE_SECONDS)
    await db.wait_status(nid, "starting")  # the repair: its start leaves the pod to its kubelet
    pod = kube.emulator.get("pods", NAMESPACE, name)
    assert pod is not None and pod["metadata"]["uid"] == before["metadata"]["uid"]
    kube.clock.advance(pod["metadata"]["deletionGracePeriodSeconds"] + STUCK_TERMINATING_SECONDS)
    await db.wait_status(nid, "running")
    after = kube.emulator.get("pods", NAMESPACE, name)
    assert after is not None and after["metadata"]["uid"] != before["metadata"]["uid"]
    assert await db.transitions(nid) == ["starting", "running", "starting", "running"]


async def test_image_pull_failure_fails_the_start_at_once_with_the_reason(
    db: Db, worker: Kube
) -> None:
    worker.kubelet.behaviour["registry/nope:1"] = kubelet.IMAGE_PULL
    nid = await db.notebook(sail_image="registry/nope:1")
    await db.start(nid)
    row = await db.wait_status(nid, "failed")  # the deadline is an hour away
    assert "ImagePullBackOff" in row["status_message"]
    assert "registry/nope:1" in row["status_message"]

    async def torn_down() -> bool:
        return not [p for p in worker.pods() if nid.lower() in p]

    await eventually(torn_down)
    # the notebook file's claim stays for the next start
    assert f"nb-{nid.lower()}-data" in worker.emulator.names("persistentvolumeclaims")


async def waiting_for_its_image(db: Db, nid: str) -> dict[str, Any]:
    """`starting`, saying what the pull is waiting on (the registry's 503)."""

    async def says_so() -> bool:
        row = await db.row(nid)
        message = (row or {}).get("status_message") or ""
        return "(waiting for its image: " in message and "503 Service Unavailable" in message

    await eventually(says_so)
    row = await db.row(nid)
    assert row is not None and row["status"] == "starting"
    return row


async def test_a_pull_the_registry_failed_waits_and_the_next_pull_runs(
    db: Db, worker: Kube
) -> None:
    """A registry's bad moment is not the image's fault: the start waits
    (the kubelet pulls again), saying why, and runs once a pull succeeds."""
    worker.kubelet.behaviour["registry/flaky:1"] = kubelet.IMAGE_PULL_RETRY
    nid = await db.notebook(sail_image="registry/flaky:1")
    sid = await db.start(nid)
    await waiting_for_its_image(db, nid)
    worker.kubelet.apply(NAMESPACE, f"nb-{nid.lower()}-{sid.lower()}-sail", kubelet.RUN)
    await db.wait_status(nid, "running")
    assert await db.transitions(nid) == ["starting", "running"]


async def test_a_repair_whose_pull_the_registry_failed_waits_and_runs(db: Db, worker: Kube) -> None:
    """The same during a repair: a Sail pod lost under a running notebook
    whose replacement's first pull meets a 503 is waited for, not failed."""
    nid = await db.notebook(sail_image="registry/flaky:2")
    sid = await db.start(nid)
    await db.wait_status(nid, "running")
    await db.wait_queue_empty(nid)
    worker.kubelet.behaviour["registry/flaky:2"] = kubelet.IMAGE_PULL_RETRY
    pod = f"nb-{nid.lower()}-{sid.lower()}-sail"
    worker.emulator.remove("", "pods", NAMESPACE, pod)
    await waiting_for_its_image(db, nid)
    worker.kubelet.apply(NAMESPACE, pod, kubelet.RUN)
    await db.wait_status(nid, "running")
    assert await db.transitions(nid) == ["starting", "running", "starting", "running"]


async def test_crash_loop_after_running_reports_failed(db: Db, worker: Kube) -> None:
    nid = await db.notebook()
    sid = await db.start(nid)
    await db.wait_status(nid, "running")
    await db.wait_queue_empty(nid)
    worker.kubelet.apply(NAMESPACE, f"nb-{nid.lower()}-{sid.lower()}-sail", kubelet.CRASH_LOOP)
    row = await db.wait_status(nid, "failed")
    assert "CrashLoopBackOff" in row["status_message"]


async def sail_and_marimo_terminating(worker: Kube) -> bool:
    """The stop deleted both session pods, which terminate gracefully (held)."""
    pods = [worker.emulator.get("pods", NAMESPACE, p) for p in worker.pods()]
    return len(pods) == 2 and all(p and p["metadata"].get("deletionTimestamp") for p in pods)


async def test_stop_waits_for_pods_to_terminate(db: Db, worker: Kube) -> None:
    nid = await db.notebook()
    await db.start(nid)
    await db.wait_status(nid, "running")
    worker.emulator.graceful_pods = True
    await db.stop(nid)

    await eventually(lambda: sail_and_marimo_terminating(worker))
    passes = sum(c.action == "list" for c in worker.emulator.calls)

    async def looked_again() -> bool:  # the reconciler saw the terminating pods
        return sum(c.action == "list" for c in worker.emulator.calls) > passes + 2

    await eventually(looked_again)
    assert (await db.row(nid) or {})["status"] == "stopping"  # not stopped while pods remain
    for pod in worker.pods():
        worker.kubelet.finish(NAMESPACE, pod)
    row = await db.wait_status(nid, "stopped")
    assert row["runtime_state"] in ({}, None) or "marimo_url" not in row["runtime_state"]
    assert f"nb-{nid.lower()}-data" in worker.emulator.names("persistentvolumeclaims")


async def test_stop_is_not_done_while_a_sail_worker_pod_is_left(db: Db, worker: Kube) -> None:
    """A cluster-mode driver's worker pods: the notebook stays `stopping`
    until they are gone too, and one the driver created after the stop's
    deletes is deleted as well."""
    nid = await db.notebook(mode="cluster")
    sid = await db.start(nid)
    await db.wait_status(nid, "running")
    await db.wait_queue_empty(nid)
    base = f"nb-{nid.lower()}-{sid.lower()}"
    driver = worker.emulator.get("pods", NAMESPACE, f"{base}-sail")
    assert driver is not None
    env = {e["name"]: e.get("value") for e in driver["spec"]["containers"][0]["env"]}
    template = json.loads(str(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"]).replace("$$", "$"))
    worker.emulator.graceful_pods = True
    await db.stop(nid)

    await eventually(lambda: sail_and_marimo_terminating(worker))
    # the terminating driver starts one more worker, after the stop deleted the rest
    late = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{base}-worker-late-1",
            "namespace": NAMESPACE,
            "labels": {**template["metadata"]["labels"], "app.kubernetes.io/component": "worker"},
        },
        "spec": template["spec"],
    }
    worker.emulator.put("", "pods", late, event="ADDED")
    for pod in (f"{base}-sail", f"{base}-marimo"):
        worker.kubelet.finish(NAMESPACE, pod)

    async def late_deleted() -> bool:  # woken by the watch, the reconciler deletes it too
        pod = worker.emulator.get("pods", NAMESPACE, f"{base}-worker-late-1")
        return bool(pod and pod["metadata"].get("deletionTimestamp"))

    await eventually(late_deleted)
    passes = sum(c.action == "list" for c in worker.emulator.calls)

    async def looked_again() -> bool:  # the reconciler saw Sail and Marimo gone
        return sum(c.action == "list" for c in worker.emulator.calls) > passes + 2

    await eventually(looked_again)
    assert (await db.row(nid) or {})["status"] == "stopping"  # not stopped while it remains
    worker.kubelet.finish(NAMESPACE, f"{base}-worker-late-1")
    await db.wait_status(nid, "stopped")
    assert await db.transitions(nid) == ["starting", "running", "stopping", "stopped"]


async def test_delete_removes_pods_storage_and_row(db: Db, worker: Kube) -> None:
    nid = await db.notebook()
    await db.start(nid)
    await db.wait_status(nid, "running")
    await db.delete(nid)

    async def gone() -> bool:
        return await db.row(nid) is None

    await eventually(gone)
    assert [k for k in worker.emulator.objects if nid.lower() in k[3]] == []


async def test_a_pod_the_api_server_refuses_fails_the_start_at_once_with_its_message(
    db: Db, worker: Kube
) -> None:
    quota = 'pods "x" is forbidden: exceeded quota: notebooks, requested: memory=1Gi'
    worker.emulator.admission = lambda plural, _: (
        (403, "Forbidden", quota) if plural == "pods" else None
    )
    nid = await db.notebook()
    await db.start(nid)
    row = await db.wait_status(nid, "failed")  # the deadline is an hour away
    assert "exceeded quota: notebooks" in row["status_message"]
    assert "(403)" in row["status_message"]
    # not retried (one refused create), and what was created before it torn down
    await db.wait_queue_empty(nid)
    assert sum(c.action == "create" and c.plural == "pods" for c in worker.emulator.calls) == 1
    left = [k[3] for k in worker.emulator.objects if nid.lower() in k[3]]
    assert left == [f"nb-{nid.lower()}-data"]  # only the notebook file's claim stays


async def test_pods_of_a_notebook_without_a_row_are_removed(db: Db, worker: Kube) -> None:
    nid = await db.notebook()
    await db.start(nid)
    await db.wait_status(nid, "running")
    await db.wait_queue_empty(nid)
    # The row goes without a delete (by hand, a restore): its pods are orphans.
    await db.conn.execute("delete from notebooks where id = %s", (nid,))
    pod = next(p for p in worker.pods() if nid.lower() in p)
    worker.kubelet.apply(NAMESPACE, pod, kubelet.OOM)  # any change the watch announces

    async def removed() -> bool:
        return [k for k in worker.emulator.objects if nid.lower() in k[3]] == []

    await eventually(removed)
