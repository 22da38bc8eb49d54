"""The proxy's aiohttp application: `create_app(settings)`. It answers
everything the express lane (express.py) hands it; serve.py runs both."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import unquote

import aiohttp
import structlog
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from common.clock import Clock, SystemClock
from common.db import UNAVAILABLE, open_pool
from common.ids import is_valid_id
from common.metrics import observe_pool
from common.notebook_origin import notebook_authority
from common.settings import Settings
from proxy import metrics, pages
from proxy.access import AccessCache, Key, listen
from proxy.cookie import CookieCache, cookie_name
from proxy.forward import Proxy, forward_http, forward_websocket
from proxy.headers import cookie_value, security_headers
from proxy.live import SHUTDOWN, UNCONFIRMED, Live, refusal
from proxy.login import (
    LoginRefused,
    check_login,
    login_response,
    refuse_cross_site,
    refused_response,
)
from proxy.policy import decide, normalize

log = structlog.get_logger("proxy")

PROXY = web.AppKey("proxy", Proxy)
CACHE = web.AppKey("cache", AccessCache)
POOL = web.AppKey("pool", AsyncConnectionPool)
LISTENING = web.AppKey("listening", asyncio.Event)
# Called before each scrape of /metrics: figures kept outside Prometheus
# (the express lane's tally) are added to it first.
BEFORE_SCRAPE = web.AppKey("before_scrape", list[Callable[[], None]])
COOKIES = web.AppKey("cookies", CookieCache)
# Re-check lookups given up on at their bound, still finishing their cancellation.
ABANDONED = web.AppKey("abandoned", set[asyncio.Future[Any]])

# refusal() reason → HTTP status, metrics outcome, page text.
_REFUSED = {
    "access": (403, "forbidden", "You no longer have access to this notebook."),
    "edit": (
        403,
        "forbidden",
        "You may no longer edit this notebook; open it again to view it.",
    ),
    "owner": (
        403,
        "forbidden",
        "The notebook's owner is back and edits it now; open it again to view it.",
    ),
    "session": (
        401,
        "unauthenticated",
        "This notebook session has ended; open the notebook again.",
    ),
    "status": (
        503,
        "unavailable",
        "The notebook is not running (it may be stopped or still starting).",
    ),
}


async def handle_open(request: web.Request) -> web.StreamResponse:
    notebook_id = request.match_info["id"]
    proxy = request.app[PROXY]
    now = proxy.clock.now()
    try:
        refuse_cross_site(request.headers.get("Sec-Fetch-Site"))
        session = await check_login(
            request.query.get("token"),
            notebook_id,
            settings=proxy.settings,
            pool=request.app[POOL],
            cache=request.app[CACHE],
            now=now,
        )
    except LoginRefused as exc:
        log.info("proxy.login", notebook_id=notebook_id, outcome=exc.reason)
        return refused_response(exc)
    metrics.LOGINS.labels("ok").inc()
    log.info(
        "proxy.login",
        notebook_id=notebook_id,
        member_id=session.member_id,
        mode=session.mode,
        outcome="ok",
    )
    return login_response(session, proxy.settings, now)


async def handle_notebook(request: web.Request) -> web.StreamResponse:
    notebook_id = request.match_info["id"]
    if not is_valid_id(notebook_id):
        return pages.not_found()
    proxy = request.app[PROXY]
    expected = notebook_authority(proxy.settings.proxy_notebook_url, notebook_id)
    if expected is not None and request.host.lower() != expected:
        # Another notebook's origin (or the bare proxy's): its pages must not reach this one.
        return pages.not_found()
    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    kind = "websocket" if websocket else "http"
    prefix = f"/notebooks/{notebook_id}"
    raw = request.raw_path
    # Absolute-form (`GET http://host/notebooks/…`) is for proxies of proxies:
    # its raw path is the whole URL, no path of ours. A fragment has no place
    # in a request target (RFC 9112 §3.2): Marimo's parser (and the client's)
    # would cut it off, so the path judged here would not be the one it runs
    # (`/api/kernel/shutdown#x` past the refusal of `/api/kernel/shutdown`).
    ours = raw[:1] == "/" and "#" not in raw
    relative = normalize(unquote(raw.partition("?")[0])[len(prefix) :]) if ours else None
    if relative is None:
        metrics.REQUESTS.labels(kind, "bad_path").inc()
        return pages.page(400, "Bad path", "That path is not allowed.")
    if relative == "/_open":
        return await handle_open(request)

    session = request.app[COOKIES].unseal(
        cookie_value(request.headers.get("Cookie", ""), cookie_name(proxy.settings))
    )
    if session is None or session.notebook_id != notebook_id:
        metrics.REQUESTS.labels(kind, "unauthenticated").inc()
        return pages.unauthorized("Open this notebook from the platform to sign in.")
    target = await request.app[CACHE].lookup(session, notebook_id)
    why = refusal(session, target, proxy.clock.now())
    if why is not None or target is None:
        status, outcome, text = _REFUSED[why or "access"]
        metrics.REQUESTS.labels(kind, outcome).inc()
        return pages.page(
            status,
            "Cannot open this notebook",
            text,
            headers={"Retry-After": "5"} if status == 503 else None,
        )
    decision = decide(
        request.method,
        relative,
        mode=session.mode,
        websocket=websocket,
        allow_terminal=proxy.settings.allow_terminal,
    )
    if not decision.allowed:
        metrics.REQUESTS.labels(kind, "forbidden").inc()
        if not websocket and relative.startswith("/api/"):  # the editor's calls, not a page
            return pages.api_refusal(decision.reason, everyone=decision.everyone)
        return pages.forbidden(decision.reason)
    if websocket:
        return await forward_websocket(proxy, request, session, target, relative)
    return await forward_http(proxy, request, session, target)


async def handle_bare_notebook(request: web.Request) -> web.StreamResponse:
    if not is_valid_id(request.match_info["id"]):
        return pages.not_found()
    raise web.HTTPPermanentRedirect(f"/notebooks/{request.match_info['id']}/")


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def finish_answer(response: web.StreamResponse, extra: dict[str, str]) -> None:
    """The proxy's own headers on an answer of this app, once aiohttp has
    set its own (the `Server` banner among them). Idempotent."""
    response.headers.popall("Server", None)
    if not isinstance(response, web.WebSocketResponse):
        # The express lane hands this app one request per connection (a
        # login, a refusal, ...): closing it sends the client's next
        # request down a fresh connection, which the lane can keep.
        response.force_close()
        response.headers["Connection"] = "close"  # the hook runs after aiohttp set it
    for key, value in extra.items():
        if key == "Content-Security-Policy":
            if value not in response.headers.getall(key, ()):
                response.headers.add(key, value)  # beside any upstream CSP; both apply
        else:
            response.headers[key] = value


def _on_prepare(frame_ancestors: str):  # type: ignore[no-untyped-def]
    extra = security_headers(frame_ancestors)

    async def on_prepare(_: web.Request, response: web.StreamResponse) -> None:
        finish_answer(response, extra)

    return on_prepare


# The promise (DESIGN §6, the issue): removing a member's team or stopping
# the notebook ends their proxied connections within this, database or not.
REVOCATION_SECONDS = 10.0
# The periodic re-check, the safety net under NOTIFY: passes start this often.
RECHECK_SECONDS = 3.0
# A pass's one lookup (pool wait and statement together) is bounded: a slow
# database (a pool waiting up to NOTEBOOKS_DB_POOL_WAIT_SECONDS) must not hold
# the pass past the next one's start, nor the NOTIFY listener that runs one.
RECHECK_LOOKUP_SECONDS = 2.0
# Fail closed: a connection whose access cannot be looked up in a pass that
# starts this long or longer after its last good read is ended (UNCONFIRMED).
# One spared is judged again by the next pass, within RECHECK_SECONDS +
# RECHECK_LOOKUP_SECONDS: so every connection ends within REVOCATION_SECONDS
# of its last good read, even while the database cannot say whether a
# revocation happened since. In practice: after two failed passes, ~6-8 s.
# Measured on the monotonic clock: a step of the wall clock neither spares
# connections nor ends them all at once.
UNCONFIRMED_SECONDS = REVOCATION_SECONDS - RECHECK_SECONDS - RECHECK_LOOKUP_SECONDS


T = TypeVar("T")


async def _within(awaitable: Awaitable[T], seconds: float, abandoned: set[asyncio.Future[T]]) -> T:
    """`awaitable`'s result, or TimeoutError after `seconds`, at once: not
    after its cancellation ends, as `asyncio.wait_for` would. psycopg cancels
    a query by asking the server, and on a hung one waits up to 10 s for
    that: the pass, and every revocation it carries, would wait too."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        abandoned.add(task)  # held, so that the event loop does not drop it half-way
        task.add_done_callback(functools.partial(_forget, abandoned))
        raise TimeoutError(f"no answer within {seconds:g} s")
    return task.result()


def _forget(abandoned: set[asyncio.Future[T]], task: asyncio.Future[T]) -> None:
    abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its failure was the pass's timeout, logged there


async def _recheck(app: web.Application, payload: str) -> None:
    """End live connections whose access, session or status changed, or
    whose access could not be confirmed for too long (UNCONFIRMED_SECONDS)."""
    proxy, cache = app[PROXY], app[CACHE]
    started = proxy.clock.monotonic()
    by_key: dict[Key, list[Live]] = {}
    for live in proxy.registry.matching(payload):
        by_key.setdefault(cache.key(live.session, live.session.notebook_id), []).append(live)
    if not by_key:
        return
    try:
        # One statement for every key, however many: lookups of their own
        # would queue on the small pool past the bound and count as failures.
        if app[ABANDONED]:
            # The database has not finished with the last pass's lookup: asking
            # again would only hold one more pooled connection.
            raise TimeoutError("the last pass's lookup is still unanswered")
        targets = await _within(cache.refresh(by_key), RECHECK_LOOKUP_SECONDS, app[ABANDONED])
    except Exception as exc:  # noqa: BLE001 - unanswered: judged by how long ago it was
        log.warning("proxy.recheck_failed", keys=len(by_key), error=repr(exc))
        for lives in by_key.values():
            for live in lives:
                if started - live.confirmed >= UNCONFIRMED_SECONDS:
                    _end(live, UNCONFIRMED)
        return
    now = proxy.clock.now()  # expiries are dates: the wall clock
    for key, lives in by_key.items():
        target = targets[key]
        for live in lives:
            if target is not None and target.checked_at is not None:
                live.confirmed = max(live.confirmed, target.checked_at)
            why = refusal(live.session, target, now)
            if why is not None:
                _end(live, why)


def _end(live: Live, why: str) -> None:
    log.info(
        "proxy.revoked",
        notebook_id=live.session.notebook_id,
        member_id=live.session.member_id,
        reason=why,
    )
    live.stop(why)


async def _end_websockets(app: web.Application) -> None:
    """On shutdown (serve.py's close, before aiohttp waits for its handlers):
    end every WebSocket now with a code the browser reconnects on, rather
    than hold it until the shutdown timeout cuts it."""
    for live in app[PROXY].registry.websockets():
        live.stop(SHUTDOWN)


def prepare_scrape(app: web.Application) -> None:
    """Before each scrape of the metrics listener (serve.py): the pool's
    gauges, and figures kept outside Prometheus (the lane's tally)."""
    observe_pool("proxy", app[POOL])
    for flush in app[BEFORE_SCRAPE]:
        flush()


@web.middleware
async def database_unavailable(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The access check could not reach Postgres (restart, failover, every
    pooled connection busy): a page saying to retry, not aiohttp's bare 500."""
    try:
        return await handler(request)
    except UNAVAILABLE as exc:
        log.warning("proxy.database_unavailable", error=str(exc))
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        metrics.REQUESTS.labels("websocket" if websocket else "http", "database_unavailable").inc()
        return pages.page(
            503, pages.DB_UNAVAILABLE_TITLE, pages.DB_UNAVAILABLE, headers={"Retry-After": "5"}
        )


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    recheck_seconds: float = RECHECK_SECONDS,
    listen_for_changes: bool = True,
    ws_heartbeat_seconds: float = 20.0,
) -> web.Application:
    """The proxy app. Access is re-checked on NOTIFY (immediately) and every
    `recheck_seconds` (the safety net); `listen_for_changes=False` leaves only
    the latter, for tests of it."""
    app = web.Application(client_max_size=0, middlewares=[database_unavailable])
    app[COOKIES] = CookieCache(settings.secret_key)
    app.on_response_prepare.append(_on_prepare(settings.frame_ancestors))
    app[LISTENING] = asyncio.Event()
    app[ABANDONED] = set()
    app[BEFORE_SCRAPE] = []
    the_clock = clock or SystemClock()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        pool = await open_pool(
            settings.database_url,
            min_size=1,
            max_size=settings.db_pool_max,
            wait_seconds=settings.db_pool_wait_seconds,
            statement_timeout_seconds=settings.db_statement_timeout_seconds,
        )
        # One process-wide client: no total timeout (long streams), no cookies
        # of its own, bodies passed through still compressed.
        client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
        )
        app[POOL] = pool
        app[CACHE] = AccessCache(
            pool,
            clock=the_clock,
            presence_window=timedelta(seconds=settings.presence_window_seconds),
        )
        app[PROXY] = Proxy(
            settings=settings,
            clock=the_clock,
            client=client,
            ws_heartbeat_seconds=ws_heartbeat_seconds,
        )

        async def on_notify(payload: str) -> None:
            app[CACHE].invalidate(payload)
            try:
                await _recheck(app, payload)
            except Exception as exc:  # noqa: BLE001 - the listener must survive
                log.warning("proxy.recheck_failed", error=repr(exc))

        async def periodic() -> None:
            # A safety net under NOTIFY: bounded staleness even if it is lost.
            # Passes start every `recheck_seconds` (not that long after the
            # last one ended): UNCONFIRMED_SECONDS counts on it.
            # (Used jtis are forgotten by the worker's sweep, reconciler/sweep.py.)
            # On the proxy's clock, as the heartbeat and the lane's sweep.
            monotonic, sleep = app[PROXY].monotonic, app[PROXY].sleep
            next_pass = monotonic() + recheck_seconds
            while True:
                await sleep(max(0.0, next_pass - monotonic()))
                next_pass = monotonic() + recheck_seconds
                try:
                    await _recheck(app, "*")
                except Exception as exc:  # noqa: BLE001
                    log.warning("proxy.recheck_failed", error=repr(exc))

        tasks = [asyncio.create_task(periodic())]
        if listen_for_changes:
            tasks.append(
                asyncio.create_task(listen(settings.database_url, on_notify, app[LISTENING]))
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await client.close()
            await pool.close()

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(_end_websockets)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/notebooks/{id}", handle_bare_notebook)
    app.router.add_route("*", "/notebooks/{id}/{tail:.*}", handle_notebook)
    return app
