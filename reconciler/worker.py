"""A reconciler worker process: a pgqueuer consumer (asyncpg driver), the
periodic sweep, the runtime's watch (if it has one) and /metrics.

Any number of workers may run against one database. A `reconcile` job carries
only the notebook id; the handler runs reconcile passes until the notebook
needs no quick second look (short waits, e.g. for readiness, are done inside
the job so a start is not slowed by queue round trips), then either finishes
or asks pgqueuer to run it again later (`RetryRequested(delay)`: the same job
row is requeued, so a duplicate enqueue is still deduplicated). Transient
errors are retried with capped exponential backoff, counted in the job's
headers (`reconcile_errors`): pgqueuer's `attempts` also counts the requeues
that are no failure (each 30 s slice of a long start, a shutdown's handback).

pgqueuer's heartbeat timeout is set from the settings, so a job held by a
SIGKILLed worker is taken again by another (handlers are idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
import pgqueuer
import structlog
from pgqueuer import PgQueuer
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Job

from common.clock import Clock, SystemClock
from common.db import open_pool
from common.jobs import CAPTURE_LOGS, RECONCILE, enqueue_reconcile
from common.logging import configure_logging
from common.metrics import observe_pool, serve_metrics
from common.settings import Settings
from common.signals import stop_on_signals
from reconciler import logs, metrics, webhooks
from reconciler.db import fetchone
from reconciler.reconcile import Deps, reconcile_once
from reconciler.runtime.base import Runtime
from reconciler.runtime.factory import make_runtime
from reconciler.sweep import sweep_loop
from reconciler.webhooks import webhook_loop
from sql import query

log = structlog.get_logger("worker")

# Passes asking to look again within this many seconds run inside the same job.
INLINE_REQUEUE_SECONDS = 1.0
# ...but one job holds a notebook at most this long before going back to the queue.
JOB_SLICE_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 60.0
# After the queue's connection failed, this long before connecting again.
QUEUE_RESTART_SECONDS = 2.0
# How long a stopping worker lets a batch of webhooks on its way finish.
WEBHOOK_SHUTDOWN_SECONDS = webhooks.TIMEOUT_SECONDS + 2
# The job's consecutive failed passes, in its pgqueuer headers.
ERRORS_HEADER = "reconcile_errors"


def _notebook_id(job: Job) -> str:
    """A reconcile job's payload is the notebook id."""
    return (job.payload or b"").decode()


def backoff(failures: int) -> float:
    """The delay after a failed pass, given the failures in a row before it."""
    return float(min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(failures, 10)))


def _failures(job: Job) -> int:
    """Failed passes in a row when the job was taken (its headers)."""
    headers = getattr(job, "headers", None)
    n = headers.get(ERRORS_HEADER) if isinstance(headers, dict) else None
    return n if isinstance(n, int) and n > 0 else 0


async def _record_failures(deps: Deps, job: Job, failures: int) -> None:
    """Keep the count in the job's row for its next run. Best effort: the
    database may be what failed; the next run then counts from the old value."""
    try:
        async with deps.pool.connection(timeout=5) as conn:
            await conn.execute(
                query("reconciler_job_errors"), {"job_id": int(job.id), "errors": failures}
            )
    except Exception as exc:
        log.warning("reconcile_failures_not_recorded", job_id=job.id, error=repr(exc))


async def _generation(deps: Deps, notebook_id: str) -> int | None:
    """The notebook's generation now; None if it cannot be read (the
    database may be what failed) or the row is gone."""
    try:
        async with deps.pool.connection(timeout=5) as conn:
            row = await fetchone(conn, "reconciler_get_generation", {"id": notebook_id})
    except Exception:  # best effort: the back-off then stands
        return None
    return None if row is None else int(row["generation"])


async def handle_reconcile(deps: Deps, job: Job, stop: asyncio.Event | None = None) -> int | None:
    """Run passes for the job's notebook; returns the generation the last pass
    saw. Once `stop` is set (the worker shutting down) the job goes back to
    the queue after the pass in hand, for another worker, rather than keep
    polling a start for the rest of its slice past the shutdown's grace."""
    notebook_id = _notebook_id(job)
    loop = asyncio.get_running_loop()
    started = loop.time()
    until = started + JOB_SLICE_SECONDS
    passes, actions, outcome, generation = 0, [], "error", None
    recorded = failures = _failures(job)
    # A job retrying failed passes notes the generation it starts from: a
    # member's change made while a failing pass holds the job (its enqueue
    # deduplicated into it) must not wait out the back-off behind it.
    if failures:
        generation = await _generation(deps, notebook_id)
    try:
        while True:
            try:
                result = await reconcile_once(deps, notebook_id)
            except Exception as exc:  # transient: database blip, runtime hiccup
                metrics.RECONCILES.labels("error").inc()  # what NotebooksReconcileErrors watches
                delay = backoff(failures)
                if delay > INLINE_REQUEUE_SECONDS and generation is not None:
                    now = await _generation(deps, notebook_id)
                    if now is not None and now != generation:
                        delay = 0.0  # a member's change: its pass runs at once
                outcome = f"error, retry in {delay:g} s: {exc!r}"
                await _record_failures(deps, job, failures + 1)
                raise RetryRequested(timedelta(seconds=delay), reason=repr(exc)) from exc
            passes += 1
            failures = 0
            outcome, generation = result.outcome, result.generation
            actions += [a.value for a in result.actions if a.value not in actions]
            if result.requeue_after is None:
                return result.generation
            stopping = stop is not None and stop.is_set()
            if (
                result.requeue_after <= INLINE_REQUEUE_SECONDS
                and loop.time() < until
                and not stopping
            ):
                await asyncio.sleep(result.requeue_after)
                continue
            outcome = f"{outcome}, requeued in {result.requeue_after:g} s"
            if recorded:  # a pass went through: the next error backs off from the start
                await _record_failures(deps, job, 0)
            raise RetryRequested(timedelta(seconds=result.requeue_after), reason=result.outcome)
    finally:
        # The canonical line: one per reconcile job.
        log.info(
            "reconcile",
            notebook_id=notebook_id,
            generation=generation,
            action=",".join(actions) or "none",
            outcome=outcome,
            passes=passes,
            attempts=job.attempts,
            duration_ms=round((loop.time() - started) * 1000, 1),
        )


async def recheck_after_release(
    deps: Deps, job: Job, generation: int | None, poked: Callable[[], bool] = lambda: False
) -> None:
    """Catch a change made while the job was held (an enqueue then is skipped
    as a duplicate of the still-picked job): once the job is released, run
    again if the generation moved or the runtime's watch announced a change
    (`poked`) since the job started."""
    notebook_id = _notebook_id(job)
    try:
        await _recheck(deps, job, notebook_id, generation, poked)
    except Exception:  # the sweep repairs whatever this misses
        log.exception("recheck failed", notebook_id=notebook_id)


async def _recheck(
    deps: Deps, job: Job, notebook_id: str, generation: int | None, poked: Callable[[], bool]
) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + 5
    async with deps.pool.connection() as conn:
        while loop.time() < until:
            row = await fetchone(conn, "reconciler_job_held", {"job_id": int(job.id)})
            if not row or not row["held"]:
                break
            await asyncio.sleep(0.02)
        row = await fetchone(conn, "reconciler_get_generation", {"id": notebook_id})
        if row is not None and (row["generation"] != generation or poked()):
            async with conn.transaction():
                # A member's change made while the job was held runs now.
                asked = row["generation"] != generation
                await enqueue_reconcile(conn, [notebook_id], asked=asked)


async def run_worker(
    settings: Settings,
    *,
    metrics_port: int | None = None,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Run until `stop` is set."""
    stop = stop or asyncio.Event()
    clock = clock or SystemClock()
    # The runtime first: a malformed NOTEBOOKS_K8S_* setting (a SettingsError,
    # one line from cli/main.py) stops the worker before it connects anywhere.
    rt = runtime or make_runtime(settings, clock)
    try:
        pool = await open_pool(settings.database_url, min_size=1, max_size=settings.db_pool_max)
    except BaseException:
        if runtime is None:
            await rt.close()
        raise
    deps = Deps(
        pool=pool,
        runtime=rt,
        clock=clock,
        presence_window_seconds=settings.presence_window_seconds,
        start_deadline_seconds=settings.start_deadline_seconds,
        file_copy_seconds=settings.file_copy_seconds,
        trash_days=settings.trash_days,
    )

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[PgQueuer]:
        # asyncpg understands libpq URLs, including ?host=/socket/dir. No JIT,
        # as on every pooled connection (common/db.py, session_options).
        conn = await asyncpg.connect(settings.database_url, server_settings={"jit": "off"})
        pgq = PgQueuer.from_asyncpg_connection(conn)

        @pgq.entrypoint(RECONCILE)
        async def reconcile(job: Job) -> None:
            notebook_id = _notebook_id(job)
            started = loop.time()
            generation = await handle_reconcile(deps, job, stop)

            def poked_since_start() -> bool:
                return announced.get(notebook_id, float("-inf")) >= started

            task = asyncio.create_task(
                recheck_after_release(deps, job, generation, poked_since_start)
            )
            rechecks.add(task)
            task.add_done_callback(rechecks.discard)

        @pgq.entrypoint(CAPTURE_LOGS)
        async def capture_logs(job: Job) -> None:
            await logs.answer_ask(deps, _notebook_id(job))

        try:
            yield pgq
        finally:
            await conn.close()

    rechecks: set[asyncio.Task[None]] = set()
    # When the runtime's watch last announced a change per notebook: every
    # worker watches every pod, so the worker holding a job sees the change too.
    announced: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    sweeps = sweep_loop(pool, settings.sweep_interval_seconds, stop, rt, deps.clock)
    deliveries = webhook_loop(pool, stop, deps.clock, settings.webhooks_allow_insecure)
    delivering = asyncio.create_task(deliveries)
    tasks = [asyncio.create_task(sweeps), delivering]
    run_watch = getattr(rt, "run_watch", None)
    if run_watch is not None:

        async def on_change(notebook_id: str) -> None:
            announced[notebook_id] = loop.time()
            async with pool.connection() as conn, conn.transaction():
                await enqueue_reconcile(conn, [notebook_id])

        tasks.append(asyncio.create_task(run_watch(on_change)))
    runner = (
        await serve_metrics(
            settings.worker_metrics_host, metrics_port, lambda: observe_pool("worker", pool)
        )
        if metrics_port is not None
        else None
    )
    batch = max(1, settings.worker_concurrency // 2)
    heartbeat = timedelta(seconds=settings.heartbeat_timeout_seconds)
    log.info("worker started", runtime=settings.runtime, metrics_port=metrics_port)
    try:
        await pgqueuer.run(
            factory,
            dequeue_timeout=min(timedelta(seconds=5), heartbeat),
            batch_size=batch,
            max_concurrent_tasks=2 * batch,
            heartbeat_timeout=heartbeat,
            # A database restart or failover ends the queue's connection:
            # connect again and go on, rather than end the worker (its sweep,
            # watch and warm pool with it) for a supervisor to restart.
            restart_on_failure=True,
            restart_delay=timedelta(seconds=QUEUE_RESTART_SECONDS),
            shutdown=stop,
        )
    finally:
        stop.set()
        # A batch of webhooks on its way finishes and is recorded (its
        # receivers answer within their timeout): cancelled, it would be
        # sent again once its lease ends, at every deploy.
        await asyncio.wait({delivering}, timeout=WEBHOOK_SHUTDOWN_SECONDS)
        for task in [*tasks, *rechecks]:
            task.cancel()
        await asyncio.gather(*tasks, *rechecks, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        if runtime is None:
            await rt.close()
        await pool.close()
        log.info("worker stopped")


def main(settings: Settings, metrics_port: int | None = None) -> int:
    """Entry point of `notebooks worker`: runs until SIGTERM/SIGINT."""
    configure_logging(settings.log_format, settings.log_level)

    async def _main() -> None:
        await run_worker(settings, metrics_port=metrics_port, stop=stop_on_signals())

    asyncio.run(_main())
    return 0
