"""The API process: `create_app(settings)` builds the aiohttp application,
`main(settings)` serves it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path

import psycopg
import structlog
from aiohttp import web

from api import metrics
from api.audit import recorder
from api.context import CLOCK, MARKERS, MEMBER_ID, POOL, SETTINGS, endpoint
from api.errors import UNIQUE_CONFLICTS, ApiError, Unavailable, problem_response, to_response
from api.markers import Markers
from api.openapi import build_document
from api.routes import BASE, OPS
from api.sources import converter_ctx
from common import unrouted
from common.clock import Clock, SystemClock
from common.db import UNAVAILABLE, add_options, open_pool
from common.logging import configure_logging
from common.metrics import bound_port, observe_pool, serve_metrics
from common.notebook_origin import frame_source
from common.settings import Settings
from common.signals import stop_on_signals
from sql.migrate import applied_versions, is_current, refuse_newer

log = structlog.get_logger("api")
STATIC_DIR = Path(__file__).parent / "static"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
# On SIGTERM: stop accepting, let requests in flight finish for this long,
# then cancel them (requests are short: a pooled connection is waited for
# NOTEBOOKS_DB_POOL_WAIT_SECONDS at most). ops/k8s's grace period covers it.
SHUTDOWN_TIMEOUT_SECONDS = 10.0
# aiohttp waits that long for handlers, then cancels them and waits as long again.
SHUTDOWN_SECONDS_AT_MOST = 2 * SHUTDOWN_TIMEOUT_SECONDS
METRICS_RUNNER = web.AppKey("metrics_runner", web.AppRunner)
# The console's CSP, made once: every answer carries it (`secure_answer`).
CONSOLE_POLICY = web.AppKey("console_policy", str)


# Database failures that are nothing the client did and worth retrying (the
# transaction was rolled back whole): the first match gives the 503's code,
# detail and Retry-After.
_DATABASE_RETRY: tuple[tuple[tuple[type[BaseException], ...], str, str, str], ...] = (
    (
        # Past the statement timeout (a lock held elsewhere, an overloaded
        # database), or a transaction left idle past it.
        (psycopg.errors.QueryCanceled, psycopg.errors.IdleInTransactionSessionTimeout),
        "database_timeout",
        "The database took too long; retry.",
        "5",
    ),
    (
        # A deadlock or serialization failure with a concurrent request.
        (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure),
        "database_conflict",
        "A concurrent request conflicted; retry.",
        "1",
    ),
    (
        # Every connection busy, or the database unreachable or restarting.
        UNAVAILABLE,
        "database_unavailable",
        "The database is busy or unreachable; retry.",
        "5",
    ),
)


def database_retry(exc: BaseException) -> tuple[str, str, str] | None:
    """(code, detail, Retry-After) of a database failure worth retrying, else None."""
    for classes, code, detail, retry_after in _DATABASE_RETRY:
        if isinstance(exc, classes):
            return code, detail, retry_after
    return None


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def canonical_request(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id, problem+json for every error, one log line and metrics."""
    started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    error_code = None
    try:
        response = await handler(request)
    except ApiError as err:
        response, error_code = to_response(err), err.code
    except web.HTTPException as err:
        error_code = _HTTP_CODES.get(err.status, "http_error")
        response = problem_response(err.status, error_code, err.reason, err.reason)
        if err.status == 405:
            response.headers["Allow"] = err.headers.get("Allow", "")
    except psycopg.errors.UniqueViolation as exc:
        # A concurrent request took the same name first: the code its own
        # check would have given, whichever request got there first.
        taken = UNIQUE_CONFLICTS.get(exc.diag.constraint_name or "")
        if taken is None:
            error_code = "already_exists"
            response = problem_response(
                409, error_code, "Conflict", "A concurrent request created the same resource."
            )
        else:
            conflict = taken()
            response, error_code = to_response(conflict), conflict.code
    except psycopg.errors.ForeignKeyViolation:
        # A concurrent request removed what this one refers to.
        error_code = "reference_gone"
        response = problem_response(
            409, error_code, "Conflict", "A concurrent request removed a resource this one uses."
        )
    except Exception as exc:
        retry = database_retry(exc)
        if retry is None:
            log.exception("unhandled")
            error_code = "internal_error"
            response = problem_response(
                500, error_code, "Internal error", f"Unexpected error; request id {request_id}."
            )
        else:
            error_code, detail, retry_after = retry
            log.warning(error_code, error=str(exc))
            response = to_response(Unavailable(detail, code=error_code, retry_after=retry_after))
    elapsed = time.perf_counter() - started
    route = _route_of(request)
    metrics.REQUESTS.labels(route, request.method, str(response.status)).inc()
    metrics.REQUEST_DURATION.labels(route, request.method).observe(elapsed)
    response.headers["X-Request-Id"] = request_id
    fields = {
        "request_id": request_id,
        "method": request.method,
        "route": route,
        "path": request.path,
        "status": response.status,
        "duration_ms": round(elapsed * 1000, 2),
    }
    if MEMBER_ID in request:
        fields["member_id"] = request[MEMBER_ID]
    if "id" in request.match_info:
        fields["notebook_id"] = request.match_info["id"]
    if error_code:
        fields["code"] = error_code
    log.info("request", **fields)
    return response


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.app[POOL].connection(timeout=2) as conn:
            current = await is_current(conn)
    except Exception as err:  # any failure to reach the database means not ready
        # The reason goes to the log, not to an unauthenticated caller.
        log.warning("readyz.unavailable", error=repr(err))
        return web.json_response({"status": "unavailable"}, status=503)
    if not current:
        return web.json_response({"status": "migrations_pending"}, status=503)
    return web.json_response({"status": "ready"})


def _metrics_listener(host: str, port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """/metrics on a listener of its own (common.metrics.serve_metrics), up
    while the app is: after the pool opens, closed before it closes."""

    async def listener(app: web.Application) -> AsyncIterator[None]:
        runner = await serve_metrics(host, port, lambda: observe_pool("api", app[POOL]))
        app[METRICS_RUNNER] = runner
        log.info("api_metrics_serving", host=host, port=bound_port(runner))
        try:
            yield
        finally:
            await runner.cleanup()

    return listener


def _openapi_handler() -> Callable[[web.Request], Awaitable[web.Response]]:
    body = json.dumps(build_document())

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    return openapi


def console_policy(proxy_public_url: str, proxy_notebook_url: str = "") -> str:
    """The console page's CSP: its own scripts and styles only, frames only
    from the proxy (an open notebook, on its own origin when there is one per
    notebook), and never framed itself."""
    frames = frame_source(proxy_public_url, proxy_notebook_url)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; frame-src {frames}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


async def _index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


def _static_files() -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    """The console's files, known at start: any other name is the API's own
    404 (problem+json), where aiohttp's static route answered an empty
    octet-stream. Conditional and range requests stay aiohttp's (304, 412,
    416, as RFC 9110 has them)."""
    names = frozenset(f.name for f in STATIC_DIR.iterdir() if f.is_file())

    async def static_file(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if name not in names:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC_DIR / name)

    return static_file


def secure_answer(headers: MutableMapping[str, str], policy: str, *, api: bool) -> None:
    """The headers every answer of the API carries: the console's files and
    the API's JSON alike (the console's page is also served as
    /static/index.html, which must not be framed or run foreign scripts
    either, nor be reachable from a window it did not open), and aiohttp's
    own answers to what it cannot parse (common.unrouted). No `Server`
    banner: the version of aiohttp is nobody's business."""
    headers.pop("Server", None)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Content-Security-Policy"] = policy
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    # The API's answers never stay on disk (names, emails, tokens); the
    # console's files are revalidated every time (304s), so a deploy
    # never pairs a new page with old modules.
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store" if api else "no-cache"


def _on_prepare(policy: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        secure_answer(response.headers, policy, api=request.path.startswith(BASE + "/"))

    return on_prepare


def unparsed_problem(plain: web.Response) -> web.Response:
    """aiohttp's plain-text answer to a request it could not parse, as
    problem+json. Its text is not passed on: it quotes the request's bytes."""
    if plain.status == 400:
        return problem_response(
            400, "malformed_request", "Malformed request", "The request is not valid HTTP/1.1."
        )
    return problem_response(plain.status, "internal_error", "Internal error", "Internal error.")


def create_app(
    settings: Settings, *, clock: Clock | None = None, metrics_port: int | None = None
) -> web.Application:
    """`metrics_port`: serve /metrics there, on settings.api_metrics_host
    (None: nowhere; the public routes never serve it)."""
    app = web.Application(middlewares=[canonical_request], client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[MARKERS] = Markers(settings.secret_key)

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        # Times render as RFC 3339 UTC from PostgreSQL's JSON functions.
        dsn = add_options(settings.database_url, "-c TimeZone=UTC")
        pool = await open_pool(
            dsn,
            min_size=2,
            max_size=settings.db_pool_max,
            wait_seconds=settings.db_pool_wait_seconds,
            statement_timeout_seconds=settings.db_statement_timeout_seconds,
        )
        app[POOL] = pool
        try:
            async with pool.connection() as conn:
                refuse_newer(await applied_versions(conn))  # a rollback: not served
            yield
        finally:
            await pool.close()

    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(converter_ctx)
    if metrics_port is not None:
        app.cleanup_ctx.append(_metrics_listener(settings.api_metrics_host, metrics_port))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(BASE + "/openapi.json", _openapi_handler())
    for op in OPS:
        if op.method == "GET":  # every GET answers HEAD too (RFC 9110 9.3.2)
            app.router.add_get(BASE + op.path, endpoint(op.checked_handler))
        else:
            record = recorder(op.audit) if op.audit else None
            app.router.add_route(op.method, BASE + op.path, endpoint(op.checked_handler, record))
    policy = app[CONSOLE_POLICY] = console_policy(
        settings.proxy_public_url, settings.proxy_notebook_url
    )
    app.on_response_prepare.append(_on_prepare(policy))
    if STATIC_DIR.is_dir():
        app.router.add_get("/", _index)
        app.router.add_get("/static/{name}", _static_files())
    metrics.create_series([(BASE + op.path, op.method) for op in OPS])
    return app


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, asyncio.Server]:
    """`app` on host:port (the OS's choice when 0), with aiohttp's own answers
    finished like the app's (common.unrouted). Close the server, then clean
    the runner up."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
    )
    await runner.setup()
    assert runner.server is not None
    policy = app[CONSOLE_POLICY]
    protocol = unrouted.handlers(
        runner.server,
        lambda answer: secure_answer(answer.headers, policy, api=True),
        unparsed_problem,
    )
    try:
        server = await asyncio.get_running_loop().create_server(
            protocol, host, port, reuse_address=True
        )
    except BaseException:
        await runner.cleanup()
        raise
    return runner, server


async def _serve(settings: Settings) -> None:
    runner, server = await start(
        create_app(settings, metrics_port=settings.api_metrics_port),
        settings.api_host,
        settings.api_port,
    )
    stop = stop_on_signals()
    try:
        await stop.wait()
    finally:
        server.close()  # no new connections; those open finish (runner.cleanup)
        await runner.cleanup()


def main(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM: requests in flight get SHUTDOWN_TIMEOUT_SECONDS."""
    configure_logging(settings.log_format, settings.log_level)
    log.info("api_starting", host=settings.api_host, port=settings.api_port)
    asyncio.run(_serve(settings))
