"""One frozen settings object per process, read from the environment once.

Every knob is an environment variable (12-factor); defaults suit one machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from common.images import parse_allowlist
from common.notebook_origin import check_template


class SettingsError(ValueError):
    pass


def int_setting(
    env: dict[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    """An integer setting of at least `minimum` (every one has a floor: a zero
    interval spins, a zero pool cannot serve, a negative grace kills at once)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise SettingsError(f"{name} must be an integer of at least {minimum}, got {raw!r}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be an integer of at most {maximum}, got {raw!r}")
    return value


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, case-insensitive, returned in lower case."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return choice(raw, name, choices)


def allowed_images(env: dict[str, str]) -> tuple[str, ...]:
    """NOTEBOOKS_ALLOWED_IMAGES, parsed (common/images.py)."""
    try:
        return parse_allowlist(env.get("NOTEBOOKS_ALLOWED_IMAGES", ""))
    except ValueError as e:
        raise SettingsError(f"NOTEBOOKS_ALLOWED_IMAGES: {e}") from None


def choice(raw: str, what: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{what} must be one of {', '.join(choices)}, got {raw!r}")
    return value


# NOTEBOOKS_LOG_FORMAT (auto: console on a terminal, JSON lines otherwise) and
# NOTEBOOKS_LOG_LEVEL; anything else is refused, not read as the default.
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

PORT_MAX = 65535
# The API keeps two pooled connections open (api/app.py: min_size=2), and a
# pool's maximum below its minimum is refused at start.
DB_POOL_MIN = 2


_PORT_RANGE = f"a port number (0..{PORT_MAX})"


def port_number(raw: str, what: str, *, accepted: str = _PORT_RANGE) -> int:
    """Every port setting goes through here: 0..65535 (0: any free port, the
    OS picks). `what` names the variable in the refusal."""
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > PORT_MAX:
        raise SettingsError(f"{what} must be {accepted}, got {raw!r}")
    return int(value)


def port_or_off(raw: str, what: str) -> int | None:
    """A port number, or None for `off` (nothing listens)."""
    if raw.strip().lower() == "off":
        return None
    return port_number(raw, what, accepted=f"{_PORT_RANGE} or 'off'")


def _port(env: dict[str, str], name: str, default: int) -> int:
    return port_number(env.get(name) or str(default), name)


def _port_or_off(env: dict[str, str], name: str, default: int) -> int | None:
    return port_or_off(env.get(name) or str(default), name)


def checked_database_url(url: str) -> str:
    """DATABASE_URL as libpq will read it, or a SettingsError that does not
    quote it back (it may hold a password)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise SettingsError(
            "DATABASE_URL is not a PostgreSQL URL or connection string "
            "(e.g. postgresql://user:password@host:5432/notebooks)"
        ) from None
    if "@" in str(parts.get("host") or ""):
        # `user:p@ss@host`: libpq would take `ss@host` for the host and quote
        # it (half the password) in its error.
        raise SettingsError("DATABASE_URL: percent-encode an @ in the password as %40")
    return url


def database_url_required(env: dict[str, str]) -> bool:
    """NOTEBOOKS_REQUIRE_DATABASE_URL: never fall back to an embedded
    PostgreSQL (a deployment whose Secret lacks DATABASE_URL must fail, not
    migrate and serve a throwaway database)."""
    return _bool(env, "NOTEBOOKS_REQUIRE_DATABASE_URL", False)


def listen_url(host: str, port: int) -> str:
    """The URL of a listener on this machine: an IPv6 host in brackets, a
    wildcard one (listening on every address) as the loopback."""
    match host:
        case "" | "0.0.0.0":
            host = "127.0.0.1"
        case "::":
            host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _public_url(env: dict[str, str], name: str, host: str, port: int) -> str:
    """A server root as browsers reach it: set, it must be an http(s) URL
    with a host (it goes into redirects, CSP and cookie checks); unset, the
    listen address, an IPv6 one in brackets, a wildcard one (listening on
    every address) as this machine's loopback, which a browser can open."""
    raw = env.get(name, "").strip()
    if not raw:
        return listen_url(host, port)
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an http:// or https:// URL with a host, not {raw!r}")
    return raw.rstrip("/")


def parse_signing_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """`kid1:secret1,kid2:secret2` → ((kid, secret), ...); the first signs."""
    keys = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        kid, sep, secret = part.partition(":")
        if not sep or not kid or len(secret) < 32:
            raise SettingsError(
                "NOTEBOOKS_SIGNING_KEYS must be kid:secret pairs, secrets at least 32 characters"
            )
        if any(kid == known for known, _ in keys):
            # The proxy looks a login's key up by its id: with two secrets
            # under one id, links signed with the first failed to verify.
            raise SettingsError(
                f"NOTEBOOKS_SIGNING_KEYS names key id {kid!r} twice: give the new key an id of "
                "its own when rotating"
            )
        keys.append((kid, secret))
    return tuple(keys)


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path = Path(".data")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 8081
    api_public_url: str = "http://127.0.0.1:8080"
    proxy_public_url: str = "http://127.0.0.1:8081"
    # An origin per notebook, e.g. "https://{id}.nb.example.com" ("" = all share
    # proxy_public_url); see common/notebook_origin.py.
    proxy_notebook_url: str = ""
    runtime: str = "local"
    # JWT keys for proxy login tokens: first signs, all verify (rotation).
    signing_keys: tuple[tuple[str, str], ...] = ()
    # HMAC key for pagination markers and the proxy's cookie (purpose-separated).
    secret_key: str = ""
    cookie_secure: bool = True
    frame_ancestors: str = "'self'"
    allow_terminal: bool = False
    log_format: str = "auto"
    log_level: str = "info"
    presence_window_seconds: int = 150
    start_deadline_seconds: int = 120
    # A running notebook's file is copied to the database this often.
    file_copy_seconds: int = 600
    # A deleted notebook can be brought back this long (0: not at all).
    trash_days: int = 30
    sweep_interval_seconds: int = 10
    stop_grace_seconds: int = 10
    worker_concurrency: int = 16
    heartbeat_timeout_seconds: int = 15
    db_pool_max: int = 10
    # How long a request waits for a pooled connection before a 503 (API).
    db_pool_wait_seconds: int = 10
    # The API's and the proxy's statements (and idle transactions): past this,
    # cancelled and answered 503 (0: no limit).
    db_statement_timeout_seconds: int = 30
    # Loopback unless configured (a pod sets 0.0.0.0 so Prometheus can scrape).
    worker_metrics_host: str = "127.0.0.1"
    # The API's and the proxy's /metrics: listeners of their own, never the
    # public ports; loopback unless configured (None: no metrics listener).
    api_metrics_host: str = "127.0.0.1"
    api_metrics_port: int | None = 8083
    proxy_metrics_host: str = "127.0.0.1"
    proxy_metrics_port: int | None = 8084
    # Pre-started Sail servers per workload shape in the local runtime (0 = off).
    local_warm_pool_size: int = 0
    # Notebooks that may run at once (starting, running, idle, detached) per
    # owner and per organization; a start beyond either is a 409 (0 = no limit).
    max_running_per_member: int = 0
    max_running_per_org: int = 0
    # WebSockets one member may hold open through one proxy process (each is
    # two sockets there): a runaway script or page cannot take its file
    # descriptors from everyone else (0 = no limit).
    proxy_max_websockets_per_member: int = 64
    # Images a workload config may name (common/images.py; empty: any).
    allowed_images: tuple[str, ...] = ()
    # Webhooks to http URLs and non-public addresses (a local install, tests);
    # off, https to public addresses only (common/webhooks.py).
    webhooks_allow_insecure: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        database_url = env.get("DATABASE_URL", "")
        if not database_url:
            raise SettingsError("DATABASE_URL is not set")
        checked_database_url(database_url)
        api_port = _port(env, "NOTEBOOKS_API_PORT", 8080)
        proxy_port = _port(env, "NOTEBOOKS_PROXY_PORT", 8081)
        api_host = env.get("NOTEBOOKS_API_HOST", "127.0.0.1")
        proxy_host = env.get("NOTEBOOKS_PROXY_HOST", "127.0.0.1")
        runtime = env.get("NOTEBOOKS_RUNTIME", "local")
        if runtime not in ("local", "kubernetes"):
            raise SettingsError(f"NOTEBOOKS_RUNTIME must be local or kubernetes, got {runtime!r}")
        secret_key = env.get("NOTEBOOKS_SECRET_KEY", "")
        if len(secret_key) < 32:
            raise SettingsError("NOTEBOOKS_SECRET_KEY must be at least 32 characters")
        signing_keys = parse_signing_keys(env.get("NOTEBOOKS_SIGNING_KEYS", ""))
        if not signing_keys:
            raise SettingsError("NOTEBOOKS_SIGNING_KEYS is not set")
        proxy_notebook_url = env.get("NOTEBOOKS_PROXY_NOTEBOOK_URL", "").strip()
        if proxy_notebook_url and (why := check_template(proxy_notebook_url)):
            raise SettingsError(f"NOTEBOOKS_PROXY_NOTEBOOK_URL {why}")
        api_public_url = _public_url(env, "NOTEBOOKS_API_PUBLIC_URL", api_host, api_port)
        return cls(
            database_url=database_url,
            data_dir=Path(env.get("NOTEBOOKS_DATA_DIR", ".data")).resolve(),
            api_host=api_host,
            api_port=api_port,
            proxy_host=proxy_host,
            proxy_port=proxy_port,
            api_public_url=api_public_url,
            proxy_public_url=_public_url(env, "NOTEBOOKS_PROXY_PUBLIC_URL", proxy_host, proxy_port),
            proxy_notebook_url=proxy_notebook_url,
            runtime=runtime,
            signing_keys=signing_keys,
            secret_key=secret_key,
            cookie_secure=_bool(env, "NOTEBOOKS_COOKIE_SECURE", True),
            # The console (served by the API) embeds notebooks, so its origin may frame them.
            frame_ancestors=env.get("NOTEBOOKS_FRAME_ANCESTORS", f"'self' {api_public_url}"),
            allow_terminal=_bool(env, "NOTEBOOKS_ALLOW_TERMINAL", False),
            log_format=_choice(env, "NOTEBOOKS_LOG_FORMAT", "auto", LOG_FORMATS),
            log_level=_choice(env, "NOTEBOOKS_LOG_LEVEL", "info", LOG_LEVELS),
            presence_window_seconds=int_setting(
                env, "NOTEBOOKS_PRESENCE_WINDOW_SECONDS", 150, minimum=1
            ),
            start_deadline_seconds=int_setting(
                env, "NOTEBOOKS_START_DEADLINE_SECONDS", 120, minimum=1
            ),
            file_copy_seconds=int_setting(env, "NOTEBOOKS_FILE_COPY_SECONDS", 600, minimum=60),
            trash_days=int_setting(env, "NOTEBOOKS_TRASH_DAYS", 30, minimum=0, maximum=3650),
            sweep_interval_seconds=int_setting(
                env, "NOTEBOOKS_SWEEP_INTERVAL_SECONDS", 10, minimum=1
            ),
            stop_grace_seconds=int_setting(env, "NOTEBOOKS_STOP_GRACE_SECONDS", 10, minimum=0),
            worker_concurrency=int_setting(env, "NOTEBOOKS_WORKER_CONCURRENCY", 16, minimum=1),
            heartbeat_timeout_seconds=int_setting(
                env, "NOTEBOOKS_HEARTBEAT_TIMEOUT_SECONDS", 15, minimum=1
            ),
            db_pool_max=int_setting(env, "NOTEBOOKS_DB_POOL_MAX", 10, minimum=DB_POOL_MIN),
            db_pool_wait_seconds=int_setting(env, "NOTEBOOKS_DB_POOL_WAIT_SECONDS", 10, minimum=1),
            db_statement_timeout_seconds=int_setting(
                env, "NOTEBOOKS_DB_STATEMENT_TIMEOUT_SECONDS", 30, minimum=0
            ),
            worker_metrics_host=env.get("NOTEBOOKS_WORKER_METRICS_HOST", "127.0.0.1"),
            api_metrics_host=env.get("NOTEBOOKS_API_METRICS_HOST", "127.0.0.1"),
            api_metrics_port=_port_or_off(env, "NOTEBOOKS_API_METRICS_PORT", 8083),
            proxy_metrics_host=env.get("NOTEBOOKS_PROXY_METRICS_HOST", "127.0.0.1"),
            proxy_metrics_port=_port_or_off(env, "NOTEBOOKS_PROXY_METRICS_PORT", 8084),
            local_warm_pool_size=int_setting(env, "NOTEBOOKS_LOCAL_WARM_POOL_SIZE", 0, minimum=0),
            max_running_per_member=int_setting(
                env, "NOTEBOOKS_MAX_RUNNING_PER_MEMBER", 0, minimum=0
            ),
            max_running_per_org=int_setting(env, "NOTEBOOKS_MAX_RUNNING_PER_ORG", 0, minimum=0),
            proxy_max_websockets_per_member=int_setting(
                env, "NOTEBOOKS_PROXY_MAX_WEBSOCKETS_PER_MEMBER", 64, minimum=0
            ),
            allowed_images=allowed_images(env),
            webhooks_allow_insecure=_bool(env, "NOTEBOOKS_WEBHOOKS_ALLOW_INSECURE", False),
        )
