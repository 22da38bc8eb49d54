"""Where a notebook is served: on the proxy's one public origin, or, when
NOTEBOOKS_PROXY_NOTEBOOK_URL is set (e.g. `https://{id}.nb.example.com`), on
an origin of its own.

An origin per notebook is what keeps one notebook's pages (HTML and scripts
its editors wrote) from reading another notebook the same browser has open:
on a shared origin the browser lets them, whatever the cookie's Path says
(docs/proxy.md, "One origin per notebook"). The id is the template's first
host label, lower-cased (host names ignore case)."""

from __future__ import annotations

from urllib.parse import urlsplit

PLACEHOLDER = "{id}"


def check_template(template: str) -> str | None:
    """Why `template` cannot be a per-notebook URL, or None if it can."""
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.netloc.startswith(PLACEHOLDER + ".") or template.count(PLACEHOLDER) != 1:
        return (
            "must have {id} as the first label of its host, once, e.g. https://{id}.nb.example.com"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be an origin only (no path, query or fragment)"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number"
    if port == {"http": 80, "https": 443}[parts.scheme]:
        # Browsers leave the default port out of Host and Origin: nothing would match.
        return "must not name its scheme's default port"
    return None


def notebook_origin(proxy_public_url: str, template: str, notebook_id: str) -> str:
    """The origin (scheme://host[:port]) a notebook's pages are served from."""
    if not template:
        parts = urlsplit(proxy_public_url)
        return f"{parts.scheme}://{parts.netloc}"
    # Lower-cased as browsers send Host and Origin (scheme and host ignore case).
    return template.rstrip("/").lower().replace(PLACEHOLDER, notebook_id.lower())


def notebook_authority(template: str, notebook_id: str) -> str | None:
    """The `Host` a request for this notebook must name, lower-cased; None
    when notebooks share the proxy's origin (any host will do)."""
    if not template:
        return None
    return urlsplit(notebook_origin("", template, notebook_id)).netloc.lower()


def public_scheme(proxy_public_url: str, template: str) -> str:
    """`http` or `https`: how browsers reach notebooks (the per-notebook
    template's scheme when one is set). The proxy serves plain HTTP behind a
    TLS-terminating ingress, so its own request scheme says nothing; Marimo
    is told this one (X-Forwarded-Proto)."""
    return urlsplit(template or proxy_public_url).scheme or "http"


def frame_source(proxy_public_url: str, template: str) -> str:
    """The CSP source matching every notebook's origin (for the console's frame-src)."""
    if not template:
        return notebook_origin(proxy_public_url, "", "")
    return template.rstrip("/").replace(PLACEHOLDER, "*")
