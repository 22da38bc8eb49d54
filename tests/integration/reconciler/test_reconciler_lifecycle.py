"""The main lifecycle with a real worker, real Sail and real Marimo:
create → start → running (a Spark query through the notebook's SPARK_REMOTE)
→ stop → stopped with no process left; and delete of a running notebook."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psutil
import pytest
from reconciler_helpers import processes_for

from common.settings import Settings
from reconciler.reconcile import DELETED

pytestmark = pytest.mark.slow

SPARK_QUERY = (
    "import os\n"
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.remote(os.environ['SPARK_REMOTE']).getOrCreate()\n"
    "print(spark.range(1000).selectExpr('sum(id) as s').collect()[0]['s'])\n"
)


async def spark_sum(spark_remote: str, tmp: Path) -> str:
    # A script file, not `python -c`: pyspark then goes looking for SPARK_HOME.
    script = tmp / "query.py"
    script.write_text(SPARK_QUERY)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={"SPARK_REMOTE": spark_remote, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode().strip().splitlines()[-1]


async def test_start_runs_sail_and_marimo_and_stop_leaves_nothing(
    rows, worker, rsettings: Settings, tmp_path: Path
):
    nid = await rows.notebook(await rows.config(env={"TEAM_BUCKET": "s3://b"}))
    # No sweep during the test: every transition must come from the jobs themselves
    # (the stop below lands right after `running`, while that job may still be held).
    await worker(sweep_interval_seconds=300)
    await rows.start(nid)

    row = await rows.wait_running(nid)
    state = row["runtime_state"]
    assert state["marimo_url"].startswith("http://127.0.0.1:")
    assert state["sail_url"].startswith("sc://127.0.0.1:")

    # Marimo got the session token, the base URL and SPARK_REMOTE pointing at its Sail.
    marimo = psutil.Process(state["marimo_pid"])
    assert marimo.environ()["SPARK_REMOTE"] == state["sail_url"]
    assert "--base-url" in marimo.cmdline() and f"/notebooks/{nid}" in marimo.cmdline()
    assert "DATABASE_URL" not in marimo.environ()
    # A home of its own (Marimo's user settings, AI keys among them, live under
    # ~/.config): not the worker's, shared by every notebook on the host.
    home = rsettings.data_dir / "run" / nid / "home"
    assert marimo.environ()["HOME"] == str(home) and home.stat().st_mode & 0o777 == 0o700
    # The workload config's env reaches both Sail and Marimo (whose kernel inherits it).
    sail = psutil.Process(state["sail_pid"])
    assert marimo.environ()["TEAM_BUCKET"] == sail.environ()["TEAM_BUCKET"] == "s3://b"
    assert await spark_sum(marimo.environ()["SPARK_REMOTE"], tmp_path) == "499500"
    assert (rsettings.data_dir / "notebooks" / nid / "notebook.py").exists()
    # Marimo's token is in no log (its start-up banner would print it).
    run_dir = rsettings.data_dir / "run" / nid
    token = (run_dir / "token").read_text().strip()
    assert len(token) >= 16
    for log in run_dir.glob("*.log"):
        assert token not in log.read_text(errors="replace"), log
    # The owner's code and run state are not readable by other users of the host.
    for path, mode in (
        (rsettings.data_dir / "notebooks" / nid, 0o700),
        (rsettings.data_dir / "notebooks" / nid / "notebook.py", 0o600),
        (rsettings.data_dir / "run" / nid, 0o700),
    ):
        assert path.stat().st_mode & 0o777 == mode, path
    messages = [e["to_status"] for e in await rows.events(nid)]
    assert messages[-2:] == ["starting", "running"]

    await rows.stop(nid)
    row = await rows.wait_status(nid, "stopped", timeout=15)
    assert processes_for(rsettings.data_dir, nid) == []
    assert row["runtime_state"] == {}
    assert row["session_id"] is None
    # The notebook file is kept across stop.
    assert (rsettings.data_dir / "notebooks" / nid / "notebook.py").exists()


async def test_delete_of_running_notebook_leaves_no_process_directory_or_row(
    rows, worker, rsettings: Settings
):
    nid = await rows.notebook()
    await worker()
    await rows.start(nid)
    await rows.wait_running(nid)
    assert processes_for(rsettings.data_dir, nid)

    await rows.delete(nid)
    await rows.wait_for(nid, lambda r: r is None, timeout=30)
    assert processes_for(rsettings.data_dir, nid) == []
    assert not (rsettings.data_dir / "notebooks" / nid).exists()
    assert not (rsettings.data_dir / "run" / nid).exists()
    # The history stays, and ends by saying the notebook is gone for good.
    last = (await rows.events(nid))[-1]
    assert (last["from_status"], last["to_status"]) == ("stopping", "stopped")
    assert (last["reason"], last["actor"]) == (DELETED, "reconciler")
