"""The API's Prometheus metrics (exposed with the shared registry at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "notebooks_api_requests_total",
    "API requests by route template, method and status code.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "notebooks_api_request_duration_seconds",
    "API request latency by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def create_series(routes: list[tuple[str, str]]) -> None:
    """Create every (route, method) series up front so dashboards see zeros."""
    for route, method in routes:
        REQUEST_DURATION.labels(route, method)
        REQUESTS.labels(route, method, "200")
