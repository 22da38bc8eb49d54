"""Short HTML pages for refusals: a person reads these inside an iframe."""

from __future__ import annotations

from html import escape

from aiohttp import web

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:3rem;color:#222}}</style>
</head><body><h1>{title}</h1><p>{detail}</p></body></html>
"""


def html(title: str, detail: str) -> str:
    return _TEMPLATE.format(title=escape(title), detail=escape(detail))


def page(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    resp = web.Response(
        status=status, text=html(title, detail), content_type="text/html", headers=headers
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


def unauthorized(detail: str) -> web.Response:
    return page(401, "Cannot open this notebook", detail)


def forbidden(detail: str) -> web.Response:
    return page(403, "Not allowed", detail)


# What Marimo's editor shows of a refused call to its API: a JSON `detail`
# (its own errors' shape, read by its toasts), never an HTML page.
NOT_HERE = "Not available on this platform"


def api_refusal(detail: str, *, everyone: bool) -> web.Response:
    """A refused Marimo API call, as Marimo's editor reads one. Refused to
    everyone: 405 with no method allowed, which the editor shows in a toast
    (and its rename alert, by the reason phrase); refused to a read-only
    session: 403, which it keeps quiet, as its own read-only refusals (a
    viewer's page would otherwise toast on every background call)."""
    resp = web.json_response(
        {"detail": detail},
        status=405 if everyone else 403,
        reason=NOT_HERE if everyone else None,
    )
    resp.headers["Cache-Control"] = "no-store"
    if everyone:
        resp.headers["Allow"] = ""
    return resp


def unavailable(detail: str) -> web.Response:
    # Retry-After lets a platform page poll instead of spinning.
    return page(503, "Notebook not available", detail, headers={"Retry-After": "5"})


BAD_GATEWAY_TITLE = "Notebook not reachable"
NO_ANSWER = "The notebook's server did not answer; try again shortly."


def bad_gateway(detail: str = NO_ANSWER) -> web.Response:
    return page(502, BAD_GATEWAY_TITLE, detail)


DB_UNAVAILABLE_TITLE = "Try again in a moment"
DB_UNAVAILABLE = "The service cannot check your access right now. Reload the page shortly."


def not_found() -> web.Response:
    return page(404, "Not found", "There is nothing here.")
