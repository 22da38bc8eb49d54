"""The queue contract between the API and the reconciler workers.

A `reconcile` job carries only the notebook id (level-triggered). The dedupe
key is per notebook, so a burst of changes queues one job; a change made while
that job runs is caught by the run itself (generation check) and by the sweep.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
from pgqueuer import Queries

RECONCILE = "reconcile"
SWEEP = "sweep"
# A member asked for a notebook's logs (docs/api.md "A notebook's logs"): a
# worker reads them. No dedupe key: the API enqueues one per ask at most
# every few seconds, and each job answers every ask made before it reads.
CAPTURE_LOGS = "capture_logs"


def reconcile_dedupe_key(notebook_id: str) -> str:
    return f"reconcile:{notebook_id}"


async def enqueue_reconcile(
    conn: psycopg.AsyncConnection,
    notebook_ids: list[str],
    *,
    delay: timedelta | None = None,
    asked: bool = False,
) -> None:
    """Enqueue reconciles on `conn` (autocommit connection, usually inside the
    caller's transaction so the job commits or rolls back with the row).
    `asked`: a member just changed what the notebook should be (start, stop,
    delete): a job already queued for it runs now, not after the back-off of
    a failed pass it may be waiting out (up to a minute). The sweep's and
    the watch's enqueues leave a back-off as it is."""
    if not notebook_ids:
        return
    queries = Queries.from_psycopg_connection(conn)
    n = len(notebook_ids)
    keys = [reconcile_dedupe_key(nid) for nid in notebook_ids]
    await queries.enqueue(
        [RECONCILE] * n,
        [nid.encode() for nid in notebook_ids],
        [0] * n,
        [delay] * n,
        keys,
        on_conflict="skip",
    )
    if asked:
        # The job already queued for the notebook (skipped above as its duplicate).
        await conn.execute(
            "update pgqueuer set execute_after = now()"
            " where dedupe_key = any(%s) and status = 'queued' and execute_after > now()",
            (keys,),
        )


async def enqueue_log_capture(conn: psycopg.AsyncConnection, notebook_id: str) -> None:
    """Enqueue a read of the notebook's logs on `conn` (in the ask's transaction)."""
    queries = Queries.from_psycopg_connection(conn)
    await queries.enqueue([CAPTURE_LOGS], [notebook_id.encode()], [0])
