"""Marimo's own route table, flattened, so the read-only policy can be
checked against it by the tests when Marimo changes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class MarimoRoute:
    path: str  # relative to the notebook's base URL, e.g. "/api/kernel/run"
    methods: tuple[str, ...]  # empty for WebSockets
    websocket: bool


@cache
def marimo_routes() -> tuple[MarimoRoute, ...]:
    from marimo._server.api.router import build_routes
    from starlette.routing import Mount, Route, WebSocketRoute

    out: list[MarimoRoute] = []

    def walk(routes: list, prefix: str) -> None:  # type: ignore[type-arg]
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            elif isinstance(route, WebSocketRoute):
                out.append(MarimoRoute(prefix + route.path, (), True))
            elif isinstance(route, Route):
                out.append(
                    MarimoRoute(prefix + route.path, tuple(sorted(route.methods or ())), False)
                )

    walk(build_routes(""), "")
    return tuple(out)


def missing_allowlisted(paths: frozenset[str]) -> set[str]:
    """Allowlisted paths Marimo no longer has (a renamed endpoint)."""
    return set(paths) - {r.path for r in marimo_routes()}
