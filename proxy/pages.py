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
