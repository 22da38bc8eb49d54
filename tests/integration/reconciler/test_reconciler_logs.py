"""A notebook's logs, read by the workers (reconciler/logs.py, docs/api.md
"A notebook's logs"): as it stops, before the teardown (a failed start's
say why it failed), and when a member asks; from real Sail and Marimo
processes, with the session's token and the config's secret values blanked
out. (The API's side: tests/integration/api/test_api_notebook_logs.py; the
Kubernetes runtime's reads: tests/integration/kubernetes/test_k8s_logs.py.)"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from reconciler_helpers import NoFile

from common import notebook_logs
from common.clock import FakeClock
from common.jobs import enqueue_log_capture
from common.settings import Settings
from reconciler import logs
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Component, LogTail, Observation, Phase
from sql import query

SECRET = "hunter2-s3cret"


async def kept(db: Any, nid: str) -> dict[str, Any] | None:
    cur = await db.execute("select * from notebook_logs where notebook_id = %s", (nid,))
    return await cur.fetchone()


async def until(db: Any, nid: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    """Poll the kept logs until `check` holds (a condition with a deadline)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        row = await kept(db, nid)
        if row is not None and check(row):
            return row
        assert loop.time() < end, f"never: {row}"
        await asyncio.sleep(0.05)


async def ask(db: Any, nid: str) -> datetime:
    """What `POST …/logs` writes and enqueues (the API's own statement)."""
    now = datetime.now(UTC)
    async with db.transaction():
        cur = await db.execute(
            query("api_ask_notebook_logs"), {"id": nid, "now": now, "ask_seconds": 5}
        )
        assert await cur.fetchone() is not None
        await enqueue_log_capture(db, nid)
    return now


def reads(outcome: str) -> float:
    return REGISTRY.get_sample_value("notebooks_log_reads_total", {"outcome": outcome}) or 0.0


def written(path: Path, start: int = 0) -> str:
    """What a process wrote to its log, as the page shows it."""
    return notebook_logs.readable(path.read_bytes()[start:])


@pytest.mark.slow
async def test_a_failed_start_keeps_the_output_that_says_why_without_its_secrets(
    rows: Any, db: Any, worker: Any
) -> None:
    # Sail refuses a setting and prints its value: a secret one here.
    config = await rows.config()
    await db.execute(
        "update workload_configs set secret_env = %s where id = %s",
        (json.dumps({"SAIL_EXECUTION__BATCH_SIZE": SECRET}), config),
    )
    nid = await rows.notebook(config)
    await worker()
    before = reads("read") + reads("partial")
    await rows.start(nid)
    row = await rows.wait_status(nid, "failed", "running", timeout=60)
    assert row["status"] == "failed"
    # Read by its teardown, just after the status is written (so that the
    # reason outlives a teardown that fails).
    got = await until(db, nid, lambda r: r["sail"] is not None)
    assert got["session_id"] == row["session_id"]
    assert got["sail"] is not None and "BATCH_SIZE" in got["sail"], got["sail"]
    assert SECRET not in got["sail"] and '"***"' in got["sail"]
    assert got["sail_problem"] is None
    assert reads("read") + reads("partial") == before + 1


@pytest.mark.slow
async def test_an_ask_reads_a_running_notebooks_logs_and_its_stop_reads_the_last(
    rows: Any, db: Any, worker: Any, rsettings: Settings
) -> None:
    nid = await rows.notebook()
    await worker()
    await rows.start(nid)
    row = await rows.wait_running(nid)
    run = rsettings.data_dir / "run" / nid
    state = json.loads((run / "state.json").read_text())
    sail_log, marimo_log = Path(state["sail"]["log"]), Path(state["marimo"]["log"])
    # What a process may print: a URL with the session's token in it.
    with marimo_log.open("a") as f:
        f.write(f"GET /?access_token={row['session_token']} 200\n")
        f.write(f"session {row['session_token']} ready\n")
    asked = await ask(db, nid)
    got = await until(db, nid, lambda r: r["answered_at"] == asked)
    assert got["session_id"] == row["session_id"]
    assert got["requested_at"] == asked and got["captured_at"] is not None
    # This session's output, as each process wrote it (a warm Sail's log
    # begins in the pool), the token blanked.
    assert got["sail"] == written(sail_log, state["sail"]["log_offset"])
    assert "Starting the Spark Connect server" in got["sail"]
    assert got["marimo"].endswith("GET /?access_token=*** 200\nsession *** ready\n")
    assert row["session_token"] not in got["marimo"]
    # The last lines before a stop are read by the stop (before its teardown).
    with marimo_log.open("a") as f:
        f.write("the last line before the stop\n")
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")
    last = await kept(db, nid)
    assert last is not None and last["captured_at"] > got["captured_at"]
    assert last["marimo"].endswith("the last line before the stop\n")
    assert last["answered_at"] == asked  # no ask waits


class Reads:
    """A runtime whose log reads answer `found` (or raise it, or hang)."""

    def __init__(self, found: Any) -> None:
        self.found = found

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        assert max_bytes == notebook_logs.MAX_BYTES
        if self.found == "hang":
            await asyncio.Event().wait()
        if isinstance(self.found, Exception):
            raise self.found
        return dict(self.found)


async def running(rows: Any, db: Any) -> dict[str, Any]:
    nid = await rows.notebook()
    await db.execute(
        "update notebooks set status = 'running', session_id = 'S1', session_token = 'tok-S1'"
        " where id = %s",
        (nid,),
    )
    return {"id": nid, "session_id": "S1", "session_token": "tok-S1", "secret_env": {}}


async def test_what_cannot_be_read_leaves_the_older_read(
    rows: Any, db: Any, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = await running(rows, db)
    first = {"sail": LogTail(b"started\n"), "marimo": LogTail(None, "It has no pod.")}
    deps = Deps(pool=pool, runtime=Reads(first), clock=FakeClock())  # type: ignore[arg-type]
    assert await logs.keep(deps, row, Observation(session_id="S1")) == "partial"
    older = await kept(db, row["id"])
    assert older is not None
    assert (older["sail"], older["marimo"], older["marimo_problem"]) == (
        "started\n",
        None,
        "It has no pod.",
    )
    monkeypatch.setattr(notebook_logs, "READ_TIMEOUT_SECONDS", 0.05)
    for found in (ConnectionResetError("API server away"), "hang"):
        failed = reads("failed")
        deps = Deps(pool=pool, runtime=Reads(found), clock=FakeClock())  # type: ignore[arg-type]
        assert await logs.keep(deps, row, Observation(session_id="S1")) == "failed"
        assert await kept(db, row["id"]) == older
        assert reads("failed") == failed + 1


async def test_an_asks_read_never_replaces_what_a_stop_kept(rows: Any, db: Any, pool: Any) -> None:
    row = await running(rows, db)
    stop_read = {"sail": LogTail(b"sail's last words\n"), "marimo": LogTail(b"bye\n")}
    deps = Deps(pool=pool, runtime=Reads(stop_read), clock=FakeClock())  # type: ignore[arg-type]
    asked = await ask(db, row["id"])
    # The stop came first: the ask's job finds the notebook stopping, reads
    # nothing, and answers the ask (its page stops waiting).
    await db.execute("update notebooks set status = 'stopping' where id = %s", (row["id"],))
    await logs.keep(deps, row, Observation(session_id="S1"))  # the stop's read
    late = {"sail": LogTail(None, "It has no pod."), "marimo": LogTail(None, "It has no pod.")}
    deps = Deps(pool=pool, runtime=Reads(late), clock=FakeClock())  # type: ignore[arg-type]
    await logs.answer_ask(deps, row["id"])
    got = await kept(db, row["id"])
    assert got is not None
    assert (got["sail"], got["marimo"]) == ("sail's last words\n", "bye\n")
    assert got["answered_at"] == asked
    # An ask's read that began while it ran and ends after the stop: the
    # same; only while its session runs does it write.
    assert await logs.keep(deps, row, Observation(session_id="S1"), live_only=True) == "unread"
    again = await kept(db, row["id"])
    assert again is not None and again["sail"] == "sail's last words\n"


async def test_secrets_and_tokens_are_blanked_out_of_what_is_kept(
    rows: Any, db: Any, pool: Any
) -> None:
    row = await running(rows, db)
    row["secret_env"] = {"DB_PASSWORD": SECRET, "SHORT": "abc"}
    said = {
        "sail": LogTail(f"connecting with {SECRET}\x1b[31m!\x1b[0m abc\n".encode()),
        "marimo": LogTail(None, f"failed: tok-S1 and {SECRET}"),
    }
    deps = Deps(pool=pool, runtime=Reads(said), clock=FakeClock())  # type: ignore[arg-type]
    await logs.keep(deps, row, Observation(session_id="S1"))
    got = await kept(db, row["id"])
    assert got is not None
    assert got["sail"] == "connecting with ***! abc\n"  # too short a value is no secret
    assert got["marimo_problem"] == "failed: *** and ***"


class Stops(NoFile):
    """Shows `shown` until torn down; counts its log reads, which answer
    `found` (or raise it)."""

    def __init__(self, shown: Observation, found: Any) -> None:
        self.shown, self.found = shown, found
        self.up, self.reads, self.teardowns = True, 0, 0

    async def observe(self, notebook_id: str) -> Observation:
        return self.shown if self.up else Observation(session_id=None)

    async def ensure_running(self, spec: Any) -> Observation:
        raise AssertionError("nothing is started here")

    async def ensure_stopped(self, notebook_id: str) -> None:
        self.teardowns += 1
        self.up = False

    async def delete(self, notebook_id: str) -> None:
        await self.ensure_stopped(notebook_id)

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        self.reads += 1
        if isinstance(self.found, Exception):
            raise self.found
        return dict(self.found)


READY = Component(Phase.READY)
TERMINATING = Component(Phase.STARTING, "terminating", terminating=True)


async def test_a_stop_reads_once_and_tears_down_whatever_the_read(rows: Any, pool: Any) -> None:
    clock = FakeClock()
    nid = await rows.notebook()
    await rows.start(nid, now=clock.now())
    session = (await rows.get(nid))["session_id"]
    runtime = Stops(Observation(session, sail=READY, marimo=READY), ConnectionResetError("gone"))
    deps = Deps(pool=pool, runtime=runtime, clock=clock)
    assert (await reconcile_once(deps, nid)).outcome == "ready"
    await rows.stop(nid, now=clock.now())
    failed = reads("failed")
    await reconcile_once(deps, nid)
    assert (runtime.reads, runtime.teardowns) == (1, 1)  # the read raised: torn down anyway
    assert reads("failed") == failed + 1
    # Looked at again while its pods terminate (a teardown's later passes):
    # torn down again, not read again (they are read before the first).
    again = Stops(Observation(session, sail=TERMINATING, marimo=READY), {})
    deps = Deps(pool=pool, runtime=again, clock=clock)
    await reconcile_once(deps, nid)
    assert (again.reads, again.teardowns) == (0, 1)


async def test_a_later_read_of_the_same_session_keeps_what_an_earlier_one_found(
    rows: Any, db: Any, pool: Any
) -> None:
    row = await running(rows, db)
    first = {"sail": LogTail(b"sail's last words\n"), "marimo": LogTail(b"bye\n")}
    deps = Deps(pool=pool, runtime=Reads(first), clock=FakeClock())  # type: ignore[arg-type]
    await logs.keep(deps, row, Observation(session_id="S1"))
    less = {"sail": LogTail(None, "It has no pod."), "marimo": LogTail(b"bye, again\n")}
    deps = Deps(pool=pool, runtime=Reads(less), clock=FakeClock())  # type: ignore[arg-type]
    await logs.keep(deps, row, Observation(session_id="S1"))
    got = await kept(db, row["id"])
    assert got is not None
    assert (got["sail"], got["sail_problem"]) == ("sail's last words\n", None)
    assert got["marimo"] == "bye, again\n"
    # Another session's read is what it is: nothing of the one before.
    await logs.keep(deps, row, Observation(session_id="S2"))
    got = await kept(db, row["id"])
    assert got is not None
    assert (got["sail"], got["sail_problem"], got["session_id"]) == (None, "It has no pod.", "S2")


async def test_a_write_that_fails_is_a_failed_read_not_an_error(
    rows: Any, db: Any, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = await running(rows, db)
    found = {"sail": LogTail(b"x\n"), "marimo": LogTail(b"y\n")}
    deps = Deps(pool=pool, runtime=Reads(found), clock=FakeClock())  # type: ignore[arg-type]
    monkeypatch.setattr(logs, "query", lambda name: "select 1/0")
    assert await logs.keep(deps, row, Observation(session_id="S1")) == "failed"
    assert await kept(db, row["id"]) is None


async def test_an_ask_for_a_notebook_gone_is_dropped(pool: Any) -> None:
    deps = Deps(pool=pool, runtime=Reads("hang"), clock=FakeClock())  # type: ignore[arg-type]
    await logs.answer_ask(deps, "NOSUCHNOTEBOOK")  # neither reads nor raises


async def test_the_logs_go_with_the_notebooks_row(rows: Any, db: Any, pool: Any) -> None:
    clock = FakeClock()
    nid = await rows.notebook()
    await db.execute(
        "insert into notebook_logs (notebook_id, captured_at, sail) values (%s, now(), 'x')",
        (nid,),
    )
    await rows.delete(nid)
    deps = Deps(pool=pool, runtime=Stops(Observation(None), {}), clock=clock)
    while await rows.get(nid) is not None:
        await reconcile_once(deps, nid)
    assert await kept(db, nid) is None
