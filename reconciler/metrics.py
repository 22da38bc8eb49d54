"""The reconciler's metrics, in one place; label values created up front so
every series exists from the first scrape."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common import notebook_file
from common.statuses import Status

OUTCOMES = (
    "noop",
    "starting",
    "ready",
    "running",
    "idle",
    "detached",
    "saving",
    "stopping",
    "stopped",
    "failed",
    "deadline",
    "repair",
    "unresponsive",
    "auto_stop",
    "deleted",
    "cleanup",
    "replace_session",
    "gone",
    "foreign",
    "conflict",
    "error",
)
AUTO_STOP_REASONS = ("idle", "detached")

RECONCILES = Counter(
    "notebooks_reconciles_completed_total", "Reconcile passes by outcome.", ["outcome"]
)
RECONCILE_SECONDS = Histogram(
    "notebooks_reconcile_duration_seconds",
    "Time one reconcile pass took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
START_TO_RUNNING = Histogram(
    "notebooks_start_running_seconds",
    "From a start request to status running.",
    # Up to past the longest start deadline ops sets (300 s).
    buckets=(0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 180, 300, 600),
)
AUTO_STOPS = Counter("notebooks_autostops_triggered_total", "Auto-stops by reason.", ["reason"])
QUEUE_DEPTH = Gauge("notebooks_queue_jobs_queued", "Reconcile jobs waiting in the queue.")
QUEUE_OLDEST = Gauge(
    "notebooks_queue_oldest_age_seconds", "Age of the oldest queued reconcile job."
)
BY_STATUS = Gauge("notebooks_status_current_count", "Notebooks by status.", ["status"])
SWEEPS = Counter("notebooks_sweeps_completed_total", "Sweeps run by this worker.")
SWEEP_ENQUEUED = Counter("notebooks_sweep_enqueued_total", "Reconciles the sweep asked for.")
PURGED_TABLES = (
    "api_tokens",
    "used_proxy_tokens",
    "notebook_presence",
    "pgqueuer_log",
    "pgqueuer_statistics",
    "notebook_trash",
    "webhook_deliveries",
)
EXECUTING_UNKNOWN = Counter(
    "notebooks_executing_unknown_total",
    "Observations of a ready Marimo that could not say whether a cell runs"
    " (its kernel-status probe failed); such a notebook is not stopped as idle.",
)
FOREIGN_SKIPPED = Counter(
    "notebooks_foreign_jobs_skipped_total",
    "Reconciles for a notebook id this database never had (no row, no event), left"
    " alone: another installation shares the runtime's namespace or data directory.",
)
PURGED = Counter(
    "notebooks_rows_purged_total", "Rows the sweep's housekeeping deleted, by table.", ["table"]
)
LOG_READ_OUTCOMES = ("read", "partial", "unread", "failed")
LOG_READS = Counter(
    "notebooks_log_reads_total",
    "Reads of notebooks' Sail and Marimo output kept for members (as they stop, and when a"
    " member asks), by outcome: read (both), partial (one), unread (neither: no pod, no"
    " output yet), failed (the runtime raised or did not answer).",
    ["outcome"],
)
FILE_COPIES = Counter(
    "notebooks_file_copies_total",
    "Copies of notebooks' files the reconciler tried to keep (as they stop, and every"
    " NOTEBOOKS_FILE_COPY_SECONDS while they run), by outcome: kept, unreadable (no file,"
    " or no ready Marimo to serve it), too_large (over 512 KiB), not_text, failed.",
    ["outcome"],
)
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")
WEBHOOKS_DISABLED = Counter(
    "notebooks_webhooks_disabled_total",
    "Webhooks the workers disabled: none of their deliveries succeeded for days.",
)
WEBHOOK_DELIVERIES = Counter(
    "notebooks_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome: delivered (a 2xx), retry (not delivered, tried"
    " again later), failed (not delivered, given up after a day).",
    ["outcome"],
)

for _o in OUTCOMES:
    RECONCILES.labels(_o)
for _r in AUTO_STOP_REASONS:
    AUTO_STOPS.labels(_r)
for _s in Status:
    BY_STATUS.labels(_s.value)
for _t in PURGED_TABLES:
    PURGED.labels(_t)
for _f in notebook_file.OUTCOMES:
    FILE_COPIES.labels(_f)
for _l in LOG_READ_OUTCOMES:
    LOG_READS.labels(_l)
for _w in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(_w)
