"""Marimo's own route table, flattened, and the paths it serves by middleware,
so the read-only policy can be checked against them by the tests when Marimo
changes."""

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


@cache
def marimo_middleware_paths() -> tuple[str, ...]:
    """Paths Marimo answers in middleware, before its routes: one proxy per
    language server it can run (`/lsp/pylsp`, ...), HTTP and WebSocket."""
    from marimo._server.api.middleware import ProxyMiddleware
    from marimo._server.lsp import CompositeLspServer
    from marimo._server.main import create_starlette_app

    servers = [server(0) for server in CompositeLspServer.LANGUAGE_SERVERS.values()]
    app = create_starlette_app(base_url="", lsp_servers=servers)
    return tuple(m.kwargs["proxy_path"] for m in app.user_middleware if m.cls is ProxyMiddleware)


def missing_allowlisted(paths: frozenset[str]) -> set[str]:
    """Allowlisted paths Marimo no longer has (a renamed endpoint)."""
    return set(paths) - {r.path for r in marimo_routes()}
