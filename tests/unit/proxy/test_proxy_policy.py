"""The read-only policy, checked against Marimo's own route table."""

from __future__ import annotations

import pytest

from proxy.policy import (
    PACKAGE_INSTALLS,
    RENAME,
    SHUTDOWN,
    VIEW_GET_API,
    VIEW_POST_API,
    decide,
    force_kiosk,
    normalize,
    upstream_target,
)
from proxy.policy_routes import marimo_middleware_paths, marimo_routes, missing_allowlisted

# What a viewer may reach, as (method, Marimo route). Reviewed by hand: when
# Marimo adds or renames a route, this test fails until someone decides.
EXPECTED_VIEW_ALLOWED = {
    ("GET", "/api/version"),
    ("GET", "/api/status/connections"),
    ("GET", "/health"),
    ("GET", "/healthz"),
    ("GET", "/"),
    ("GET", "/@file/{filename_and_length:path}"),
    ("GET", "/public-files-sw.js"),
    ("GET", "/public/{filepath:path}"),
    ("GET", "/{path:path}"),
    ("POST", "/api/kernel/set_ui_element_value"),
    ("POST", "/api/kernel/set_model_value"),
    ("POST", "/api/kernel/function_call"),
    ("WS", "/ws"),
}


def _concrete(path: str) -> str:
    return (
        path.replace("{filename_and_length:path}", "x.png")
        .replace("{filepath:path}", "a.css")
        .replace("{path:path}", "assets/index.js")
    )


def _view_allowed() -> set[tuple[str, str]]:
    allowed = set()
    for route in marimo_routes():
        methods = ("WS",) if route.websocket else tuple(m for m in route.methods if m != "HEAD")
        for method in methods:
            if decide(
                "GET" if method == "WS" else method,
                _concrete(route.path),
                mode="view",
                websocket=method == "WS",
                allow_terminal=True,
            ).allowed:
                allowed.add((method, route.path))
    return allowed


def test_marimo_route_table_is_what_the_policy_was_written_against() -> None:
    routes = marimo_routes()
    assert len(routes) == 106
    assert missing_allowlisted(VIEW_GET_API | VIEW_POST_API) == set()


def test_viewers_reach_exactly_the_allowlist() -> None:
    assert _view_allowed() == EXPECTED_VIEW_ALLOWED


def test_editors_reach_everything_but_the_terminal_sign_in_shutdown_rename_and_installs() -> None:
    """`/auth/token` would hand an editor Marimo's own token, good for the
    whole session after their access ends; the proxy signs members in.
    Marimo's shutdown would end Marimo under a notebook still `running`; its
    rename would leave the work in a file no start opens; its package
    installs would change the platform's own environment (local)."""
    for route in marimo_routes():
        decision = decide(
            "POST",
            _concrete(route.path),
            mode="edit",
            websocket=route.websocket,
            allow_terminal=False,
        )
        reachable = (
            route.path != "/terminal/ws"
            and not route.path.startswith("/auth/")
            and route.path not in ("/api/kernel/shutdown", "/api/home/shutdown_session")
            and route.path != "/api/kernel/rename"
            and route.path not in PACKAGE_INSTALLS
        )
        assert decision.allowed == reachable, route.path
    assert SHUTDOWN.issubset(r.path for r in marimo_routes())  # still Marimo's names
    assert RENAME.issubset(r.path for r in marimo_routes())
    assert PACKAGE_INSTALLS.issubset(r.path for r in marimo_routes())
    auth = {r.path for r in marimo_routes() if r.path.startswith("/auth/")}
    assert "/auth/token" in auth
    for path in auth:
        for variant in (path, path + "/", path.upper().replace("/AUTH", "/auth")):
            assert not decide(
                "GET", variant, mode="edit", websocket=False, allow_terminal=True
            ).allowed


@pytest.mark.parametrize("mode", ["edit", "view"])
def test_terminal_only_when_enabled_and_only_for_editors(mode: str) -> None:
    assert not decide(
        "GET", "/terminal/ws", mode=mode, websocket=True, allow_terminal=False
    ).allowed
    assert decide(
        "GET", "/terminal/ws", mode=mode, websocket=True, allow_terminal=True
    ).allowed == (mode == "edit")


@pytest.mark.parametrize(
    "path",
    [
        "/api/kernel/run/",
        "/api/kernel//run",
        "/ws_sync",
        "/sse",
        "/api/kernel/takeover",
        "/api/files/list_files",
        "/api/packages/add",
        "/auth/login",
        "/og/thumbnail",
    ],
)
def test_view_refusals_with_variants(path: str) -> None:
    assert not decide("POST", path, mode="view", websocket=False, allow_terminal=False).allowed
    if not path.startswith("/api/kernel/run"):
        assert not decide("GET", path, mode="view", websocket=False, allow_terminal=False).allowed


def test_marimo_middleware_paths_are_for_editors_only() -> None:
    # Marimo's language-server proxies are middleware, not routes: the route
    # table walk above never sees them, and a viewer's GET would otherwise
    # fall through to "pages and assets".
    paths = marimo_middleware_paths()
    assert paths and all(p.startswith("/lsp/") for p in paths), paths
    for path in paths:
        for variant in (path, path + "/", path + "/initialize"):
            for method in ("GET", "POST"):
                assert not decide(
                    method, variant, mode="view", websocket=False, allow_terminal=True
                ).allowed, (method, variant)
                assert decide(
                    method, variant, mode="edit", websocket=False, allow_terminal=False
                ).allowed, (method, variant)
            assert not decide(
                "GET", variant, mode="view", websocket=True, allow_terminal=True
            ).allowed, variant


def test_view_websockets_other_than_main_are_refused() -> None:
    for path in ("/ws_sync", "/terminal/ws", "/api/version", "/"):
        assert not decide("GET", path, mode="view", websocket=True, allow_terminal=True).allowed


def test_force_kiosk_replaces_any_kiosk_parameter_and_namespaces_the_session_id() -> None:
    assert force_kiosk("session_id=a&kiosk=false&kiosk=") == "session_id=view-a&kiosk=true"
    assert force_kiosk("") == "kiosk=true"


def test_force_kiosk_keeps_nothing_else_of_the_viewers_query() -> None:
    # `file` could name a new file of Marimo's (a session and a kernel each).
    assert force_kiosk("file=__new__1&session_id=a&x=1") == "session_id=view-a&kiosk=true"


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/", "/"),
        ("/api/version", "/api/version"),
        ("api/x", "/api/x"),
        ("/../OTHER/", None),
        ("/a/./b", None),
        ("/a/..", None),
        ("/a\\..\\b", None),
    ],
)
def test_normalize_rejects_dot_segments(path: str, expected: str | None) -> None:
    assert normalize(path) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/?file=/other/secret.py", "/"),
        ("/?access_token=t", "/"),
        ("/x?a=1&file=%2Fo.py&b=%2F%20", "/x?a=1&b=%2F%20"),  # the rest byte for byte
        ("/?fil%65=/o.py&f%69le=/p.py&file&c=3", "/?c=3"),  # as Marimo decodes keys
        ("/?files=1&profile=2&x=file", "/?files=1&profile=2&x=file"),  # only that key
        ("/?a=%zz&b=+", "/?a=%zz&b=+"),
        ("/public-files-sw.js?v=2", "/public-files-sw.js?v=2"),
    ],
)
def test_marimo_only_query_keys_never_reach_marimo(target: str, expected: str) -> None:
    """`file` makes Marimo (edit mode) register and load any path;
    `access_token` is its own login. Neither is ever the proxy's to pass."""
    assert upstream_target(target) == expected
