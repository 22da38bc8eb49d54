"""Every metric (and label) named in the Grafana dashboard and the alert
rules is one the code really exports: the metrics modules of every package
are imported and the Prometheus registry is read."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "ops" / "monitoring"
MODULES = ("common.metrics", "api.metrics", "reconciler.metrics", "proxy.metrics")

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "le",
}


def exported() -> dict[str, set[str]]:
    """Sample name → label names, for every notebooks_* metric in the registry."""
    for mod in MODULES:
        importlib.import_module(mod)
    out: dict[str, set[str]] = {}
    collectors = REGISTRY._collector_to_names  # label names even before a child exists
    for collector in list(collectors):
        labelnames = set(getattr(collector, "_labelnames", ()))
        describe = getattr(collector, "describe", None)
        for family in (describe() if describe else None) or collector.collect():
            if not family.name.startswith("notebooks_"):
                continue
            for suffix in SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                out[family.name + suffix] = labelnames | extra
    return out


def expressions() -> list[tuple[str, str]]:
    exprs: list[tuple[str, str]] = []
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r}", target["expr"]))
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            exprs.append((f"alert {rule['alert']}", rule["expr"]))
    return exprs


SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def metric_names(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that are metric names: not
    functions, keywords, label names, strings or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = GROUPING.sub("", e)  # by (...), without (...)
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        ident, call = m.group(1), m.group(2)
        if call or ident.lower() in KEYWORDS:
            continue
        names.add(ident)
    return names


def test_parser_finds_metric_names_only() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, route) (rate(foo_bucket{a="x", b=~"y|z"}[5m])))'
        " / clamp_min(sum(bar_total), 1e-9) > 0.2 and on (x) baz"
    )
    assert metric_names(expr) == {"foo_bucket", "bar_total", "baz"}


def test_registry_exports_the_families_the_dashboard_needs() -> None:
    names = exported()
    for needed in (
        "notebooks_api_requests_total",
        "notebooks_api_request_duration_seconds_bucket",
        "notebooks_queue_jobs_queued",
        "notebooks_queue_oldest_age_seconds",
        "notebooks_status_current_count",
        "notebooks_start_running_seconds_bucket",
        "notebooks_autostops_triggered_total",
        "notebooks_proxy_bytes_total",
        "notebooks_reconciles_completed_total",
    ):
        assert needed in names, needed


@pytest.mark.parametrize(("where", "expr"), expressions())
def test_every_expression_uses_exported_metrics_and_labels(where: str, expr: str) -> None:
    names = exported()
    used = metric_names(expr)
    assert used, f"{where}: no metric found in {expr!r}"
    for name in used:
        assert name in names, f"{where}: {name} is not exported by {', '.join(MODULES)}"
    # label names in selectors belong to the selected metric
    for m in SELECTOR.finditer(re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        metric, body = m.group(1), m.group(2)
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body):
            assert label in names[metric], f"{where}: {metric} has no label {label!r}"
    # grouping labels belong to at least one metric of the expression
    known = set().union(*(names[n] for n in used))
    for group in GROUPING.findall(expr):
        for label in filter(None, (x.strip() for x in group.split(","))):
            assert label in known, f"{where}: no metric of {sorted(used)} has label {label!r}"


def test_dashboard_covers_what_operators_watch() -> None:
    text = " ".join(e for _, e in expressions())
    for family in (
        "notebooks_api_requests_total",  # requests
        "notebooks_api_request_duration_seconds_bucket",  # latencies
        "notebooks_queue_jobs_queued",  # queue depth
        "notebooks_queue_oldest_age_seconds",  # queue age
        "notebooks_status_current_count",  # notebooks by status
        "notebooks_start_running_seconds_bucket",  # start to running
        "notebooks_autostops_triggered_total",  # auto-stops
        "notebooks_proxy_bytes_total",  # proxy traffic
        "notebooks_proxy_websockets_active",
    ):
        assert family in text, family
    alerts = {w for w, _ in expressions() if w.startswith("alert ")}
    for alert in (
        "NotebooksQueueStale",
        "NotebooksStartFailures",
        "NotebooksReconcileErrors",
        "NotebooksProxy5xx",
    ):
        assert f"alert {alert}" in alerts


def bucket_bounds() -> dict[str, list[float]]:
    """Histogram sample name (`…_bucket`) → its finite upper bounds."""
    for mod in MODULES:
        importlib.import_module(mod)
    out: dict[str, list[float]] = {}
    for collector in list(REGISTRY._collector_to_names):
        bounds = getattr(collector, "_upper_bounds", None)
        name = getattr(collector, "_name", "")
        if bounds and name.startswith("notebooks_"):
            out[f"{name}_bucket"] = [b for b in bounds if b != float("inf")]
    return out


QUANTILE_OVER = re.compile(
    r"histogram_quantile\(\s*[0-9.]+\s*,.*?([a-z_:]+_bucket).*\)\s*>\s*([0-9.e+-]+)", re.S
)


@pytest.mark.parametrize(("where", "expr"), expressions())
def test_quantile_thresholds_are_reachable_and_bucket_bounds_exist(where: str, expr: str) -> None:
    """histogram_quantile never returns more than the last finite bucket bound
    (a quantile in +Inf comes back as that bound), so `> bound` can never fire;
    and an `le` matcher that names no bucket selects nothing."""
    bounds = bucket_bounds()
    for metric, threshold in QUANTILE_OVER.findall(expr):
        assert float(threshold) < max(bounds[metric]), (
            f"{where}: {metric} tops out at {max(bounds[metric])}, the alert needs > {threshold}"
        )
    for metric, value in re.findall(r'([a-z_:]+_bucket)\{[^}]*\ble="([^"]*)"', expr):
        # prometheus_client writes bounds as Go floats: 120 → "120.0"
        assert value in {repr(float(b)) for b in bounds[metric]} | {"+Inf"}, (where, value)


def rule(name: str) -> dict[str, str]:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    (found,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == name]
    return found


def test_sweep_alert_fires_when_no_worker_reports_at_all() -> None:
    """With every worker down the counter has no series; `sum(...) == 0` over
    nothing is nothing, so the expression needs a fallback for that case."""
    expr = rule("NotebooksSweepStopped")["expr"]
    assert "or vector(0)" in expr or "absent(" in expr, expr


def test_proxy_5xx_alert_counts_every_outcome_the_proxy_answers_5xx() -> None:
    proxy_app = importlib.import_module("proxy.app")
    five_xx = {outcome for status, outcome, _ in proxy_app._REFUSED.values() if status >= 500}
    # 502 when Marimo fails (proxy/forward.py, proxy/express.py); 503 when the
    # access check cannot reach the database (proxy/app.py's middleware)
    five_xx |= {"upstream_error", "database_unavailable"}
    (matcher,) = re.findall(r'outcome=~"([^"]*)"', rule("NotebooksProxy5xx")["expr"])
    proxy_metrics = importlib.import_module("proxy.metrics")
    for outcome in five_xx:
        assert outcome in proxy_metrics.REQUEST_OUTCOMES, outcome
        assert re.fullmatch(matcher, outcome), f"NotebooksProxy5xx misses {outcome}"
