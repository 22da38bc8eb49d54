"""The copy of each notebook's file the reconciler keeps (migration 0022,
docs/api.md "A notebook's file"): taken while the notebook runs (every
NOTEBOOKS_FILE_COPY_SECONDS) and as it stops, before the teardown; written
back by the next start when the notebook's storage is lost. Locally from
real Sail and Marimo processes; on Kubernetes through the notebook's Marimo
(a fake one behind the API emulator, as the cluster runs no containers)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer
from kube_emulator.cluster import Kube, running_kube
from prometheus_client import REGISTRY

from common import notebook_file
from common.clock import FakeClock
from common.settings import Settings
from reconciler.reconcile import Deps, _keep_file, reconcile_once
from reconciler.runtime.base import Observation
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.objects import NOTEBOOK_PATH
from reconciler.runtime.probes import marimo_file_at
from sql import query

CODE = "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    return\n"


async def kept(db: Any, nid: str) -> dict[str, Any] | None:
    """The newest version kept."""
    cur = await db.execute(
        "select * from notebook_files where notebook_id = %s order by id desc limit 1", (nid,)
    )
    return await cur.fetchone()


async def until_kept(db: Any, nid: str, content: str, timeout: float = 30) -> dict[str, Any]:
    """Poll until the copy holds `content` (a condition with a deadline)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while True:
        row = await kept(db, nid)
        if row is not None and row["content"] == content:
            return row
        assert loop.time() < until, f"never kept; last copy: {row and row['content']!r}"
        await asyncio.sleep(0.05)


def copies(outcome: str) -> float:
    return REGISTRY.get_sample_value("notebooks_file_copies_total", {"outcome": outcome}) or 0.0


@pytest.mark.slow
async def test_the_file_is_kept_while_it_runs_and_as_it_stops_and_written_back_when_lost(
    rows: Any, db: Any, worker: Any, rsettings: Settings
) -> None:
    nid = await rows.notebook()
    shutdown = await worker(sweep_interval_seconds=1, file_copy_seconds=1)
    await rows.start(nid)
    row = await rows.wait_running(nid)
    path = rsettings.data_dir / "notebooks" / nid / "notebook.py"
    template = path.read_text()
    first = await until_kept(db, nid, template)  # the first look at it running
    assert first["session_id"] == row["session_id"]
    # What the Kubernetes runtime asks of Marimo, asked of a real one: its
    # download of the notebook's path, with the session's token, bounded.
    async with aiohttp.ClientSession() as http:
        marimo, base = row["runtime_state"]["marimo_url"], f"/notebooks/{nid}"
        token = row["session_token"]
        got = await marimo_file_at(http, marimo, base, token, str(path), 1000)
        assert got == template.encode()
        assert await marimo_file_at(http, marimo, base, token, str(path), 10) == got[:11]
        assert await marimo_file_at(http, marimo, base, "wrong", str(path), 1000) is None

    # A member's edits, as Marimo saves them: copied while it runs...
    path.write_text(template + "# while it runs\n")
    await until_kept(db, nid, template + "# while it runs\n")
    # ...and the last ones as it stops, whatever the copy's age (a worker
    # whose copies while it runs are an hour apart).
    await shutdown()
    await worker(sweep_interval_seconds=300, file_copy_seconds=3600)
    path.write_text(template + "# just before the stop\n")
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")
    last = await kept(db, nid)
    assert last is not None and last["content"] == template + "# just before the stop\n"

    # The storage is lost (a disk replaced, a directory removed by hand): the
    # next start writes the copy, not the template.
    shutil.rmtree(path.parent)
    await rows.start(nid)
    await rows.wait_running(nid)
    assert path.read_text() == template + "# just before the stop\n"
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")


async def restore(db: Any, nid: str, version: int) -> None:
    """What `POST …/file/restore` writes (the API's own statement; its
    checks: tests/integration/api/test_api_file_restore.py)."""
    found = await db.execute(
        query("api_restore_file_version"),
        {"id": nid, "version": version, "now": datetime.now(UTC), "keep": notebook_file.VERSIONS},
    )
    assert await found.fetchone() is not None


@pytest.mark.slow
async def test_a_restored_version_is_written_by_the_next_start_and_nothing_is_lost(
    rows: Any, db: Any, worker: Any, rsettings: Settings
) -> None:
    nid = await rows.notebook()
    await worker(sweep_interval_seconds=300, file_copy_seconds=3600)
    await rows.start(nid)
    await rows.wait_running(nid)
    path = rsettings.data_dir / "notebooks" / nid / "notebook.py"
    template = path.read_text()
    path.write_text(template + "# a cell, later deleted\n")
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")
    with_cell = await kept(db, nid)
    assert with_cell is not None
    path.write_text(template)  # deleted, and saved over
    await rows.start(nid)
    await rows.wait_running(nid)
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")
    assert (await kept(db, nid))["content"] == template  # type: ignore[index]

    # The storage holds the newest copy: the version goes over it, and
    # nothing is kept beside (the replaced file is a version already).
    await restore(db, nid, with_cell["id"])
    await rows.start(nid)
    row = await rows.wait_running(nid)
    assert path.read_text() == template + "# a cell, later deleted\n"
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == [
        "notebook.py"
    ]
    seeds = await db.execute("select count(*) from notebook_seeds where notebook_id = %s", (nid,))
    assert (await seeds.fetchone())["count"] == 0  # written: a repair never writes it again
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")

    # Edits no copy holds (its stop's copy failed), then a restore: they are
    # kept beside the notebook, never overwritten.
    path.write_text(template + "# edits no copy has\n")
    versions = await db.execute(
        "select id from notebook_files where notebook_id = %s and content = %s", (nid, template)
    )
    await restore(db, nid, (await versions.fetchone())["id"])
    await rows.start(nid)
    row = await rows.wait_running(nid)
    assert path.read_text() == template
    aside = path.parent / f"notebook-before-restore-{row['session_id']}.py"
    assert aside.read_text() == template + "# edits no copy has\n"
    await rows.stop(nid)
    await rows.wait_status(nid, "stopped")


@pytest.mark.slow
async def test_a_running_notebook_deleted_keeps_its_last_edits_to_bring_it_back(
    rows: Any, db: Any, worker: Any, rsettings: Settings
) -> None:
    """Its file is copied before its servers and storage go, whatever the
    copy's age, for Recently deleted (docs/api.md); NOTEBOOKS_TRASH_DAYS
    sets how long it stays."""
    nid = await rows.notebook()
    await worker(sweep_interval_seconds=300, file_copy_seconds=3600, trash_days=7)
    await rows.start(nid)
    await rows.wait_running(nid)
    path = rsettings.data_dir / "notebooks" / nid / "notebook.py"
    template = path.read_text()
    await until_kept(db, nid, template)  # the first copy is taken: the next in an hour
    path.write_text(template + "# the last edit\n")
    await rows.delete(nid)
    assert await rows.wait_for(nid, lambda r: r is None) is None
    assert not path.exists()  # its storage went
    cur = await db.execute(
        "select content, kept_until - deleted_at as kept from notebook_trash"
        " where notebook_id = %s",
        (nid,),
    )
    trashed = await cur.fetchone()
    assert trashed["content"].endswith("# the last edit\n")
    assert trashed["kept"] == timedelta(days=7)


class Serves:
    """A runtime whose file reads answer `data` (the rest is not called)."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    async def read_file(self, notebook_id: str, observed: Observation, max_bytes: int) -> bytes:
        if isinstance(self.data, Exception):
            raise self.data
        assert max_bytes == notebook_file.MAX_BYTES
        return self.data if self.data is None else self.data[: max_bytes + 1]


@pytest.mark.parametrize(
    ("data", "outcome"),
    [
        (b"x" * (notebook_file.MAX_BYTES + 1), notebook_file.TOO_LARGE),
        (b"caf\xe9\n", notebook_file.NOT_TEXT),  # Latin-1, not UTF-8
        (b"x = 1\x00\n", notebook_file.NOT_TEXT),  # PostgreSQL text holds no NUL
        (None, notebook_file.UNREADABLE),
        (ConnectionResetError("marimo went"), notebook_file.FAILED),
    ],
)
async def test_a_file_that_cannot_be_kept_leaves_the_older_copy(
    rows: Any, db: Any, pool: Any, data: Any, outcome: str
) -> None:
    nid = await rows.notebook()
    await db.execute(
        "insert into notebook_files (notebook_id, content, kept_at, session_id)"
        " values (%s, %s, now(), 'S0')",
        (nid, CODE),
    )
    row = {"id": nid, "session_id": "S1"}
    deps = Deps(pool=pool, runtime=Serves(data), clock=FakeClock())  # type: ignore[arg-type]
    before = copies(outcome)
    with structlog.testing.capture_logs() as logs:
        assert await _keep_file(deps, row, Observation(session_id="S1")) == outcome
    copy = await kept(db, nid)
    assert copy is not None and (copy["content"], copy["session_id"]) == (CODE, "S0")
    assert copies(outcome) == before + 1
    if outcome != notebook_file.UNREADABLE:  # none yet is no news
        assert [e["notebook_id"] for e in logs if e["log_level"] == "warning"] == [nid]

    exactly = Serves(b"y" * notebook_file.MAX_BYTES)  # the limit itself is kept
    deps = Deps(pool=pool, runtime=exactly, clock=FakeClock())  # type: ignore[arg-type]
    assert await _keep_file(deps, row, Observation(session_id="S1")) == notebook_file.KEPT
    copy = await kept(db, nid)
    assert copy is not None and len(copy["content"]) == notebook_file.MAX_BYTES


async def test_a_version_is_kept_when_the_file_changed_and_the_newest_twenty_stay(
    rows: Any, db: Any, pool: Any
) -> None:
    nid = await rows.notebook()
    clock = FakeClock(datetime(2026, 11, 1, 12, tzinfo=UTC))
    serves = Serves(CODE.encode())
    deps = Deps(pool=pool, runtime=serves, clock=clock)  # type: ignore[arg-type]
    row, observed = {"id": nid, "session_id": "S1"}, Observation(session_id="S1")

    async def versions() -> list[tuple[str, datetime]]:
        cur = await db.execute(
            "select content, kept_at from notebook_files where notebook_id = %s order by id",
            (nid,),
        )
        return [(r["content"], r["kept_at"]) for r in await cur.fetchall()]

    await _keep_file(deps, row, observed)
    clock.advance(600)
    await _keep_file(deps, row, observed)  # unchanged: no new version, its time stays
    assert await versions() == [(CODE, datetime(2026, 11, 1, 12, tzinfo=UTC))]
    for i in range(notebook_file.VERSIONS + 5):
        serves.data = f"{CODE}# edit {i}\n".encode()
        clock.advance(600)
        await _keep_file(deps, row, observed)
    kept_now = await versions()
    assert len(kept_now) == notebook_file.VERSIONS  # the oldest went
    assert [c for c, _ in kept_now] == [
        f"{CODE}# edit {i}\n" for i in range(5, notebook_file.VERSIONS + 5)
    ]
    # Another notebook's versions are its own.
    other = await rows.notebook()
    await _keep_file(deps, {"id": other, "session_id": "S1"}, observed)
    assert len(await versions()) == notebook_file.VERSIONS


async def test_a_copy_while_a_restore_waits_for_its_start_writes_nothing(
    rows: Any, db: Any, pool: Any
) -> None:
    """A failed start's teardown copies the file after `failed` is recorded,
    so after a restore the API accepted meanwhile: the restored version stays
    the newest (what the member was told), and the start keeps that file
    beside the notebook (it is not the copy the restore replaces)."""
    nid = await rows.notebook()
    for content in (CODE, CODE + "# later\n"):
        await db.execute(
            "insert into notebook_files (notebook_id, content, kept_at, session_id)"
            " values (%s, %s, now(), 'S0')",
            (nid, content),
        )
    first = await db.execute(
        "select id from notebook_files where notebook_id = %s order by id limit 1", (nid,)
    )
    await restore(db, nid, (await first.fetchone())["id"])
    failed_session = Serves(b"# the failed session's file\n")
    deps = Deps(pool=pool, runtime=failed_session, clock=FakeClock())  # type: ignore[arg-type]
    row, observed = {"id": nid, "session_id": "S1"}, Observation(session_id="S1")
    await _keep_file(deps, row, observed)
    newest = await kept(db, nid)
    assert newest is not None and newest["content"] == CODE and newest["restored_from"] is not None
    # Written by its start (the seed dropped as it runs): copies are kept again.
    await db.execute("delete from notebook_seeds where notebook_id = %s", (nid,))
    await _keep_file(deps, row, observed)
    assert (await kept(db, nid))["content"] == "# the failed session's file\n"  # type: ignore[index]


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube() as k:
        yield k


@contextlib.asynccontextmanager
async def fake_marimo(kube: Kube, nid: str, files: dict[str, Any]) -> AsyncIterator[None]:
    """Marimo's download and sessions endpoints for one notebook, where the
    runtime reaches Marimo; `files["body"]` is the file it serves."""

    async def download(request: web.Request) -> web.Response:
        files.setdefault("asked", []).append(
            (request.headers.get("Authorization"), request.query.get("path"))
        )
        files.setdefault("order", []).append("download")
        if files.get("refused"):  # Marimo's `disable_file_downloads`
            return web.json_response({"detail": "File downloads are disabled"}, status=403)
        return web.Response(body=files["body"].encode(), content_type="text/x-python")

    async def sessions(request: web.Request) -> web.Response:
        return web.json_response([])  # no editor open: not executing

    app = web.Application()
    app.router.add_get(f"/notebooks/{nid}/api/files/download", download)
    app.router.add_get(f"/notebooks/{nid}/api/sessions", sessions)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    kube.marimo_root = str(server.make_url("/")).rstrip("/")
    try:
        yield
    finally:
        await server.close()


async def pass_until(deps: Deps, rows: Any, nid: str, status: str) -> dict[str, Any]:
    """Run passes (as jobs do) until the notebook reads `status`."""
    loop = asyncio.get_running_loop()
    until = loop.time() + 20
    while True:
        await reconcile_once(deps, nid)
        row = await rows.get(nid)
        if row["status"] == status:
            return dict(row)
        assert loop.time() < until, f"never {status}; last: {row['status']}"
        await asyncio.sleep(0.02)  # the fake kubelet moves pods on its own


async def test_on_kubernetes_the_copy_is_read_through_marimo_before_the_teardown(
    rows: Any, db: Any, pool: Any, kube: Kube
) -> None:
    nid = await rows.notebook()
    files: dict[str, Any] = {"body": CODE}
    async with fake_marimo(kube, nid, files):
        rt = kube.runtime()
        clock = FakeClock(datetime(2026, 11, 1, 12, tzinfo=UTC))
        deps = Deps(pool=pool, runtime=rt, clock=clock, file_copy_seconds=600)
        await rows.start(nid)
        row = await pass_until(deps, rows, nid, "running")
        copy = await until_kept(db, nid, CODE)
        assert copy["session_id"] == row["session_id"]
        # From the notebook's own Marimo, with its session's token, at its path.
        assert files["asked"][-1] == (f"Bearer {row['session_token']}", NOTEBOOK_PATH)

        # A file read no further than one byte past what may be kept.
        assert await rt.read_file(nid, await rt.observe(nid), 10) == CODE.encode()[:11]

        files["body"] = CODE + "# edited\n"
        asked = len(files["asked"])
        await reconcile_once(deps, nid)
        assert len(files["asked"]) == asked  # not due: the copy is younger than 600 s
        clock.advance(600)
        await reconcile_once(deps, nid)
        await until_kept(db, nid, CODE + "# edited\n")

        # A file that cannot be kept is tried once per interval, not at every
        # pass (each is a download of up to 512 KiB, and a warning).
        files["refused"] = True
        clock.advance(600)
        for _ in range(3):
            await reconcile_once(deps, nid)
        assert len(files["asked"]) == asked + 2
        clock.advance(600)
        await reconcile_once(deps, nid)
        assert len(files["asked"]) == asked + 3
        files["refused"] = False

        # At a stop the copy is taken first, then the pods go: after the
        # teardown nothing could serve it.
        teardown = rt.ensure_stopped

        async def recorded_teardown(notebook_id: str) -> None:
            files["order"].append("teardown")
            await teardown(notebook_id)

        rt.ensure_stopped = recorded_teardown  # type: ignore[method-assign]
        files["body"] = CODE + "# edited, then stopped\n"
        files["order"].clear()
        await rows.stop(nid)
        await pass_until(deps, rows, nid, "stopped")
        await until_kept(db, nid, CODE + "# edited, then stopped\n")
        assert files["order"][:2] == ["download", "teardown"]
        assert "download" not in files["order"][1:]
        assert await rt.read_file(nid, await rt.observe(nid), 100) is None

    # The PVC is lost: the next start's seed is the copy, for the seeding init
    # container to write in place of the template.
    await rt.api.delete("PersistentVolumeClaim", n.pvc_name(nid))
    await rows.start(nid)
    await reconcile_once(deps, nid)
    session = (await rows.get(nid))["session_id"]
    seed = await rt.api.get("Secret", n.seed_secret_name(nid, session))
    assert seed is not None
    assert base64.b64decode(seed["data"][n.SEED_KEY]).decode() == CODE + "# edited, then stopped\n"
