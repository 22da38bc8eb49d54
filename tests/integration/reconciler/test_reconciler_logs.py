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

from common import notebook_logs
from common.clock import FakeClock
from common.jobs import enqueue_log_capture
from common.settings import Settings
from reconciler import logs
from reconciler.reconcile import Deps
from reconciler.runtime.base import LogTail, Observation
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
    got = await kept(db, nid)
    assert got is not None, "a failed start's teardown reads its logs"
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
