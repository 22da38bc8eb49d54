"""Every metric (and label) named in the Grafana dashboard and the alert
rules is one the code really exports: the metrics modules of every package
are imported and the Prometheus registry is read."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from test_k8s_ops_manifests import base_documents

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "ops" / "monitoring"
MODULES = ("common.metrics", "api.metrics", "reconciler.metrics", "proxy.metrics")
RUNBOOK = "docs/kubernetes.md#alerts"
# Series Prometheus makes itself for every target, with the target's labels.
SCRAPE_SERIES = {"up": {"job", "instance"}}

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


def sources(*packages: str) -> str:
    return "".join(p.read_text() for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def scraped_jobs() -> set[str]:
    """The pods Prometheus scrapes (prometheus.io/scrape), by app.kubernetes.io/name."""
    return {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for d in base_documents()
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape")
    }


def label_values() -> dict[tuple[str, str], set[str]]:
    """(sample name, label) → every value the code gives it, where the code
    enumerates them: a matcher on any other value selects nothing, forever."""
    for mod in MODULES:
        importlib.import_module(mod)
    reconciler = importlib.import_module("reconciler.metrics")
    proxy = importlib.import_module("proxy.metrics")
    common = sources("common")
    return {
        ("notebooks_reconciles_completed_total", "outcome"): set(reconciler.OUTCOMES),
        ("notebooks_autostops_triggered_total", "reason"): set(reconciler.AUTO_STOP_REASONS),
        ("notebooks_proxy_requests_total", "outcome"): set(proxy.REQUEST_OUTCOMES),
        ("notebooks_proxy_requests_total", "kind"): set(proxy.KINDS),
        ("notebooks_proxy_logins_total", "outcome"): set(proxy.LOGIN_OUTCOMES),
        ("notebooks_proxy_connections_revoked_total", "reason"): set(proxy.REVOKE_REASONS),
        ("notebooks_db_pool_connections", "process"): set(
            re.findall(r'observe_pool\("(\w+)"', sources("api", "proxy", "reconciler"))
        ),
        ("notebooks_db_pool_connections", "state"): set(
            re.findall(r'DB_POOL_CONNECTIONS\.labels\(process, "(\w+)"\)', common)
        ),
        ("up", "job"): scraped_jobs(),
    }


def exported() -> dict[str, set[str]]:
    """Sample name → label names, for every notebooks_* metric in the registry,
    and the series Prometheus adds for every target (`up`)."""
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
    return out | SCRAPE_SERIES


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
    # plain values (`a`, `a|b`) of an enumerated label are values the code sets
    values = label_values()
    for m in SELECTOR.finditer(expr):
        metric, body = m.group(1), m.group(2)
        for label, value in re.findall(r'([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"([^"]*)"', body):
            known = values.get((metric, label))
            if known is not None and re.fullmatch(r"[\w-]+(\|[\w-]+)*", value):
                for v in value.split("|"):
                    assert v in known, f"{where}: {metric}{{{label}}} is never {v!r}"
    # grouping labels belong to at least one metric of the expression
    known = set().union(*(names[n] for n in used))
    for group in GROUPING.findall(expr):
        for label in filter(None, (x.strip() for x in group.split(","))):
            assert label in known, f"{where}: no metric of {sorted(used)} has label {label!r}"


def test_dashboard_covers_what_operators_watch() -> None:
    text = " ".join(e for w, e in expressions() if w.startswith("panel "))
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
        "notebooks_executing_unknown_total",  # the idle auto-stop's probe
    ):
        assert family in text, family
    alerts = {w for w, _ in expressions() if w.startswith("alert ")}
    for alert in (
        "NotebooksQueueStale",
        "NotebooksStartFailures",
        "NotebooksReconcileErrors",
        "NotebooksProxy5xx",
        "NotebooksKernelStatusUnknown",
        "NotebooksComponentAbsent",
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


def test_proxy_5xx_alert_counts_every_failing_5xx_and_not_a_stopped_notebook() -> None:
    """Every outcome the proxy answers with 5xx because something fails, but
    not its 503 page for a notebook that is stopped or starting: a tab left
    open after an auto-stop is a normal state, not an outage."""
    proxy_app = importlib.import_module("proxy.app")
    _, not_running, _ = proxy_app._REFUSED["status"]
    five_xx = {outcome for status, outcome, _ in proxy_app._REFUSED.values() if status >= 500}
    assert five_xx == {not_running}
    # 502 when Marimo fails (proxy/forward.py, proxy/express.py); 503 when the
    # access check cannot reach the database (proxy/app.py's middleware)
    failing = {"upstream_error", "database_unavailable"}
    (matcher,) = re.findall(r'outcome=~"([^"]*)"', rule("NotebooksProxy5xx")["expr"])
    proxy_metrics = importlib.import_module("proxy.metrics")
    for outcome in failing | {not_running}:
        assert outcome in proxy_metrics.REQUEST_OUTCOMES, outcome
    for outcome in failing:
        assert re.fullmatch(matcher, outcome), f"NotebooksProxy5xx misses {outcome}"
    assert not re.fullmatch(matcher, not_running), f"NotebooksProxy5xx counts {not_running}"


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_every_silent_failure_the_code_counts_has_an_alert() -> None:
    """Counters that say a safety net has stopped working (the idle auto-stop,
    a shared namespace, the login signature) each have a rule."""
    exprs = {r["alert"]: r["expr"] for r in rules()}
    watched = " ".join(exprs.values())
    for family in ("notebooks_executing_unknown_total", "notebooks_foreign_jobs_skipped_total"):
        assert f"increase({family}[" in watched, family
    # Links the api signed with a key the proxy does not hold, or another secret.
    (matcher,) = {
        value
        for expr in exprs.values()
        for value in re.findall(r'notebooks_proxy_logins_total\{outcome=~"([^"]*)"', expr)
    }
    proxy_metrics = importlib.import_module("proxy.metrics")
    token = (ROOT / "common" / "session_token.py").read_text()
    for reason in ("unknown_key", "signature"):
        assert f'InvalidSessionToken("{reason}"' in token, reason
        assert reason in proxy_metrics.LOGIN_OUTCOMES and re.fullmatch(matcher, reason), reason
    assert not re.fullmatch(matcher, "expired")  # a member's old link is no mismatch


def test_every_component_down_or_gone_alerts() -> None:
    """`up == 0` for each scraped pod's job, and `absent()` of a series every
    process exports at every scrape (its pool gauge), for each process."""
    exprs = " ".join(r["expr"] for r in rules())
    (jobs,) = re.findall(r'\bup\{job=~"([^"]*)"\}\s*==\s*0', exprs)
    assert (
        set(jobs.split("|"))
        == scraped_jobs()
        == {
            "notebooks-api",
            "notebooks-proxy",
            "notebooks-worker",
        }
    )
    absent = set(re.findall(r'absent\(notebooks_db_pool_connections\{process="(\w+)"\}\)', exprs))
    assert absent == label_values()[("notebooks_db_pool_connections", "process")]
    assert absent == {"api", "proxy", "worker"}


def test_every_rule_has_a_summary_a_runbook_and_a_row_in_it() -> None:
    """The runbook is docs/kubernetes.md's table of alerts: one row per rule
    (what it means, where to look first), and no row for a rule that is gone."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    section = text.split("\n### Alerts\n", 1)[1].split("\n#", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
    names = {r["alert"] for r in rules()}
    for r in rules():
        assert r["annotations"].get("summary"), r["alert"]
        assert r["annotations"].get("runbook") == RUNBOOK, r["alert"]
    assert rows == names, (sorted(names - rows), sorted(rows - names))
