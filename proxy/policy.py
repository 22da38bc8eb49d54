"""What a `view` (read-only) session may reach, and what nobody may.

Nobody reaches Marimo's own sign-in routes (`/auth/*`), its shutdown, its
rename of the notebook's file, or its package installs. Marimo 0.25 enforces
read-only only partly (a viewer that sends the editor's session id can run
cells; `/api/kernel/takeover` is open to anyone), so the proxy allowlists.
The list is written against Marimo's own route table
(`marimo._server.api.router.build_routes`) and the paths it serves by
middleware instead (its language-server proxies under `/lsp/`); unit tests walk
both and fail when Marimo grows a route this module has not classified.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus, urlencode

# Read-only API routes a viewer needs to watch a notebook (GET/HEAD).
VIEW_GET_API = frozenset({"/api/version", "/api/status/connections"})
# Widget interaction: Marimo itself lets kiosk consumers do these (its
# `read` role), and they cannot change code.
VIEW_POST_API = frozenset(
    {
        "/api/kernel/set_ui_element_value",
        "/api/kernel/set_model_value",
        "/api/kernel/function_call",
    }
)
# Open to everyone, without the session, in Marimo; harmless to a viewer.
VIEW_GET_OPEN = frozenset({"/health", "/healthz"})
# Route prefixes that are never static pages: a GET under them that is not
# allowlisted is refused for viewers rather than falling through to assets.
# `/lsp/` is Marimo's language-server proxy (completions, diagnostics: editing
# tools), served by middleware, so it is not in the route table.
_NON_STATIC_PREFIXES = ("/api/", "/auth/", "/terminal/", "/ws", "/sse", "/og/", "/lsp/")
# Marimo's own shutdown: it ends Marimo (or its session) under a notebook the
# platform still calls running, and the editor is left on "kernel not found".
# Starting and stopping are the platform's (its Stop); Restart stays.
SHUTDOWN = frozenset({"/api/kernel/shutdown", "/api/home/shutdown_session"})
# Marimo's package installs: into the environment the kernel runs in, which
# under the local runtime is the platform's own (every notebook's, and the
# API's, worker's and proxy's): one click of "Install" changed it for all.
# Packages come with the kernel image (a workload config's `marimo.image`).
PACKAGE_INSTALLS = frozenset(
    {
        "/api/packages/add",
        "/api/packages/remove",
        "/api/packages/sync",
        "/api/kernel/install_missing_packages",
        "/api/export/requirements/install",  # what an export needs, into the server's env
    }
)
# Marimo's rename of the notebook's file (its title bar): the platform keeps
# each notebook in one file, opened by that name at every start; renamed, the
# work is left in a file no start opens (a fresh template takes its place).
# The notebook's name is the platform's (Edit in the console).
RENAME = frozenset({"/api/kernel/rename"})
MAIN_WS = "/ws"
TERMINAL_WS = "/terminal/ws"
WEBSOCKETS = frozenset({MAIN_WS, "/ws_sync", TERMINAL_WS})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    # Refused to everyone (not for being read-only): Marimo's editor shows
    # such a refusal of its API, where it keeps a 403 quiet (app.py).
    everyone: bool = False


ALLOW = Decision(True)


def normalize(relative: str) -> str | None:
    """`relative` is the decoded path after `/notebooks/{id}`; None when it
    tries to leave the prefix or hides a route behind dot segments."""
    if not relative.startswith("/"):
        relative = "/" + relative
    segments = relative.split("/")
    if any(s in (".", "..") for s in segments):
        return None
    if "\\" in relative or "\x00" in relative:
        return None
    return relative


def decide(
    method: str, relative: str, *, mode: str, websocket: bool, allow_terminal: bool
) -> Decision:
    """May a session in `mode` send `method relative` to Marimo?"""
    path = relative.rstrip("/") or "/"
    if path == "/auth" or path.startswith("/auth/"):
        # Marimo's own sign-in: the proxy signs members in, and `/auth/token`
        # would hand an editor Marimo's token, which outlives their access.
        return Decision(False, "Marimo's own sign-in is not used here.")
    if path in SHUTDOWN:
        return Decision(
            False,
            "Stop the notebook from the platform: Marimo's own shutdown is not used here.",
            everyone=True,
        )
    if path in RENAME:
        return Decision(
            False,
            "The notebook's file keeps its name here: rename the notebook in the platform instead.",
            everyone=True,
        )
    if path in PACKAGE_INSTALLS:
        return Decision(
            False,
            "Installing packages from the editor is not available here: ask an admin to add"
            " them to the notebook's kernel image.",
            everyone=True,
        )
    if path == TERMINAL_WS or path.startswith("/terminal/"):
        if not allow_terminal:
            return Decision(False, "The terminal is disabled on this service.")
        if mode != "edit":
            return Decision(False, "Read-only sessions cannot open a terminal.")
        return ALLOW
    if mode == "edit":
        return ALLOW
    return _decide_view(method.upper(), path, websocket=websocket)


def _decide_view(method: str, path: str, *, websocket: bool) -> Decision:
    refused = Decision(False, "This notebook is open read-only; that action is not allowed.")
    if websocket:
        return ALLOW if path == MAIN_WS else refused
    if path in WEBSOCKETS:
        return refused
    if method in ("GET", "HEAD"):
        if path in VIEW_GET_API or path in VIEW_GET_OPEN:
            return ALLOW
        if any(path == p.rstrip("/") or path.startswith(p) for p in _NON_STATIC_PREFIXES):
            return refused
        return ALLOW  # pages and assets (`/`, `/assets/*`, `/@file/*`, `/public/*`)
    if method == "POST" and path in VIEW_POST_API:
        return ALLOW
    return refused


# Marimo keys a session's consumers by the client's session id. A kiosk
# consumer that presents the editor's id replaces the editor's registration,
# so the editor's later disconnect is ignored, the session is stuck neither
# open nor orphaned, the next editor gets a second session, and from then on
# every `/ws` fails ("Only one session should exist while editing"). So the
# ids a viewer sends are put in a namespace of their own: never an editor's.
VIEWER_SESSION_PREFIX = "view-"
SESSION_ID_PARAM = "session_id"
SESSION_ID_HEADER = "Marimo-Session-Id"


def viewer_session_id(session_id: str) -> str:
    return VIEWER_SESSION_PREFIX + session_id


# Query keys Marimo acts on that no request through the proxy needs, dropped
# from every request (both modes). `file`: Marimo's edit mode registers and
# loads whatever path it names (marimo/_server/session_manager.py,
# `app_manager`), so it opened another notebook's source, told which files
# exist, or started a kernel on another file; without it Marimo serves the one
# file it was started with. `access_token`: Marimo's own login, which the
# proxy does with its header.
MARIMO_ONLY_PARAMS = frozenset({"file", "access_token"})


def strip_query(query: str) -> str:
    """A raw query string without `MARIMO_ONLY_PARAMS`, the rest kept byte for
    byte. Keys are compared decoded, as Marimo (Starlette's `parse_qsl`)
    reads them, so `fil%65=` is `file=` too."""
    if "%" not in query and not any(name in query for name in MARIMO_ONLY_PARAMS):
        return query  # the common case: nothing to decode
    kept = [
        part
        for part in query.split("&")
        if unquote_plus(part.partition("=")[0]) not in MARIMO_ONLY_PARAMS
    ]
    return "&".join(kept)


def upstream_target(path_qs: str) -> str:
    """A raw request target (path and query) as Marimo may see it."""
    path, sep, query = path_qs.partition("?")
    if not sep:
        return path_qs
    query = strip_query(query)
    return f"{path}?{query}" if query else path


def force_kiosk(query_string: str) -> str:
    """A viewer's `/ws` always asks Marimo for a kiosk (read-only) consumer,
    under a session id that cannot be an editor's, and with nothing else: a
    `file` key could name another (new) file of Marimo's to attach to."""
    pairs = [
        (k, viewer_session_id(v))
        for k, v in parse_qsl(query_string, keep_blank_values=True)
        if k == SESSION_ID_PARAM
    ]
    pairs.append(("kiosk", "true"))
    return urlencode(pairs)
