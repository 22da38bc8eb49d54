"""The reconciler's periodic queries at scale (tests/scale_seed.py: 50k
notebooks, 1M history rows, 10k API tokens): the sweep reads partial indexes
whose predicates are its queries' WHERE (and stay so), history and tokens are
found by index, and only the worker that ran the round's sweep counts the
notebooks for the gauges."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from scale_seed import (
    NOTEBOOK,
    explain,
    index_names,
    largest_sort,
    nodes,
    rows_removed,
    scans,
)

from common.statuses import Status
from reconciler import metrics, sweep
from sql import query

PLANS = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])


def assert_reads_only(plan: dict[str, Any], index: str, most: int) -> None:
    """The notebooks are read through `index` alone, at most `most` of them,
    nothing read only to be filtered out."""
    assert index_names(plan["Plan"]) == {index}
    read = scans(plan["Plan"], "notebooks")
    assert read and not [n for n in read if n["Node Type"] == "Seq Scan"]
    assert sum(n["Actual Rows"] * n["Actual Loops"] for n in read) <= most
    assert rows_removed(plan["Plan"]) == 0
    assert largest_sort(plan["Plan"]) <= most


@PLANS
def test_the_sweeps_queries_read_their_partial_indexes(scale_conn, generic: bool) -> None:
    # The seed's 1,150 unsettled (1,000 deleted, not yet torn down) of 50,000.
    unsettled = explain(scale_conn, "reconciler_sweep_unsettled", {"limit": 1000}, generic=generic)
    assert_reads_only(unsettled, "notebooks_sweep_unsettled", 1150)
    assert unsettled["Plan"]["Actual Rows"] == 1000
    for after in ("", "N8"):
        page = explain(
            scale_conn, "reconciler_sweep_page", {"after": after, "limit": 1000}, generic=generic
        )
        assert_reads_only(page, "notebooks_sweep_page", 1000)
        assert page["Plan"]["Actual Rows"] == 1000


def _where(name: str) -> str:
    """A sweep query's condition on the notebooks, as written."""
    match = re.search(r"\bwhere\b(.*?)\border by\b", query(name), re.S)
    assert match is not None
    return re.sub(r"^\s*id > %\(after\)s\s+and\s+", "", match.group(1)).strip()


@pytest.mark.parametrize(
    ("index", "name", "key"),
    [
        ("notebooks_sweep_unsettled", "reconciler_sweep_unsettled", "status_changed_at"),
        ("notebooks_sweep_page", "reconciler_sweep_page", "id"),
    ],
)
def test_each_sweep_index_is_its_querys_where(scale_conn, index: str, name: str, key: str) -> None:
    """PostgreSQL uses a partial index only when it can prove the query's
    condition implies the index's: an index built from the query's WHERE,
    now, must be the one the migration made (as PostgreSQL prints both)."""
    with scale_conn.transaction(force_rollback=True):
        scale_conn.execute(f"create index now_from_query on notebooks ({key}) where {_where(name)}")
        made, wanted = (
            scale_conn.execute("select pg_get_indexdef(%s::regclass)", (i,)).fetchone()[0]  # type: ignore[index]
            for i in ("now_from_query", index)
        )
    assert made.replace("now_from_query", index) == wanted


@PLANS
def test_provisioned_since_reads_the_notebooks_history_by_time(scale_conn, generic: bool) -> None:
    """Asked at a start's deadline: has it been running since it was asked?"""
    ran, last = scale_conn.execute(
        "select max(created_at) filter (where to_status in ('running', 'idle', 'detached')),"
        " max(created_at) from notebook_events where notebook_id = %s",
        (NOTEBOOK,),
    ).fetchone()  # type: ignore[misc]
    assert ran < last  # the seed's: ... starting, running, stopping, stopped
    for since, provisioned in ((ran, True), (last, False)):
        params = {"id": NOTEBOOK, "since": since}
        plan = explain(scale_conn, "reconciler_provisioned_since", params, generic=generic)
        assert index_names(plan["Plan"]) == {"notebook_events_notebook_time"}
        read = scans(plan["Plan"], "notebook_events")
        # Only the events since then: one at most; not the notebook's 20,
        # nor the table's million.
        assert sum(n["Actual Rows"] for n in read) + rows_removed(plan["Plan"]) <= 1
        answer = scale_conn.execute(query("reconciler_provisioned_since"), params).fetchone()
        assert answer == (provisioned,)


@PLANS
def test_purging_expired_tokens_reads_the_expiry_index(scale_conn, generic: bool) -> None:
    """Steady state: a purge a minute finds a few tokens just past their grace
    (19 here) among 10,000, most without an expiry."""
    before = datetime.fromisoformat("2026-01-01T00:01:00+00:00")
    with scale_conn.transaction(force_rollback=True):
        plan = explain(
            scale_conn,
            "reconciler_purge_api_tokens",
            {"before": before, "limit": 1000},
            generic=generic,
        )
    lock = next(n for n in nodes(plan["Plan"]) if n["Node Type"] == "LockRows")
    assert index_names(lock) == {"api_tokens_expiry"}  # which ones: by the index
    assert rows_removed(plan["Plan"]) == 0
    assert plan["Plan"]["Plans"][0]["Actual Rows"] == 19
    if not generic:
        # Then each by its key. (A generic plan, costed for any cutoff, may
        # hash-join them against the table instead: one pass over the tokens
        # a minute, within the same transaction's batch.)
        assert not [n for n in scans(plan["Plan"], "api_tokens") if n["Node Type"] == "Seq Scan"]


# The gauges: a count over every notebook, so once per interval, by the worker
# whose sweep ran; the others report zeros (dashboards take `max`).


def _gauge(status: str) -> float:
    value = REGISTRY.get_sample_value("notebooks_status_current_count", {"status": status})
    assert value is not None
    return value


async def _round(pool: Any, until: Any) -> None:
    """One worker's sweep loop, until `until()` holds (polled, with a deadline)."""
    stop = asyncio.Event()
    task = asyncio.create_task(sweep.sweep_loop(pool, 3600, stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    try:
        while not until():
            assert not task.done(), "the sweep loop ended"
            assert loop.time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_only_the_worker_that_swept_refreshes_the_gauges(rows, pool, db, monkeypatch):
    for status, desired in (("running", "running"), ("running", "running"), ("idle", "running")):
        await rows.notebook(status=status, desired_state=desired)
    await rows.notebook()  # stopped
    refreshed: list[int] = []
    refresh = sweep.refresh_gauges

    async def counted(pool: Any, backlog: Any) -> None:
        refreshed.append(1)
        await refresh(pool, backlog)

    monkeypatch.setattr(sweep, "refresh_gauges", counted)
    sweeps = REGISTRY.get_sample_value("notebooks_sweeps_completed_total") or 0.0

    # Another worker swept just now: this one's round is skipped, its gauges
    # read zero (not whatever it counted when it last swept), nothing counted.
    await db.execute("update sweep_state set swept_at = now()")
    for status in Status:
        metrics.BY_STATUS.labels(status.value).set(7)
    metrics.QUEUE_DEPTH.set(7)
    await _round(pool, lambda: all(_gauge(s.value) == 0 for s in Status))
    assert refreshed == []
    assert REGISTRY.get_sample_value("notebooks_queue_jobs_queued") == 0
    assert REGISTRY.get_sample_value("notebooks_sweeps_completed_total") == sweeps

    # Its turn (a single worker's every round): it sweeps and counts.
    await db.execute("update sweep_state set swept_at = '-infinity'")
    await _round(pool, lambda: _gauge("running") == 2)
    assert refreshed == [1]
    assert {s.value: _gauge(s.value) for s in Status} == {
        **{s.value: 0 for s in Status},
        "running": 2,
        "idle": 1,
        "stopped": 1,
    }
    # The queue's gauges show the backlog the round found, not the jobs it
    # enqueued itself (one per active notebook): nothing was waiting here.
    cur = await db.execute(query("reconciler_queue_stats"))
    stats = await cur.fetchone()
    assert stats is not None and stats["queued"] == 3  # the running and idle ones, just now
    assert REGISTRY.get_sample_value("notebooks_queue_jobs_queued") == 0

    # Jobs left undone since the last round are the backlog.
    await db.execute("update sweep_state set swept_at = '-infinity'")
    await db.execute("update pgqueuer set created = now() - interval '42 seconds'")
    await _round(pool, lambda: len(refreshed) == 2)
    assert REGISTRY.get_sample_value("notebooks_queue_jobs_queued") == 3
    oldest = REGISTRY.get_sample_value("notebooks_queue_oldest_age_seconds")
    assert oldest is not None and 42 <= oldest < 60


async def test_a_sweep_stamped_in_the_future_is_claimed(db) -> None:  # type: ignore[no-untyped-def]
    """The database's clock stepped back (or a failover to a standby behind):
    the last sweep's stamp is ahead of now(). It is no reason to wait."""
    await db.execute("update sweep_state set swept_at = now() + interval '10 minutes'")
    cur = await db.execute(query("reconciler_claim_sweep"), {"every": timedelta(seconds=5)})
    assert await cur.fetchone() is not None
    cur = await db.execute(query("reconciler_claim_sweep"), {"every": timedelta(seconds=5)})
    assert await cur.fetchone() is None  # claimed just now: the next worker waits its turn
