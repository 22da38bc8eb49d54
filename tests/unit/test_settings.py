"""Settings decided for safety: metrics listeners on loopback unless
configured, and no silent fallback to an embedded database when required."""

from __future__ import annotations

import pytest

from common.settings import Settings, SettingsError, database_url_required, parse_signing_keys

REQUIRED = {
    "DATABASE_URL": "postgresql:///x",
    "NOTEBOOKS_SECRET_KEY": "m" * 40,
    "NOTEBOOKS_SIGNING_KEYS": "k1:" + "s" * 40,
}


def test_metrics_listeners_default_to_loopback_on_their_own_ports() -> None:
    settings = Settings.from_env(REQUIRED)
    assert (settings.api_metrics_host, settings.api_metrics_port) == ("127.0.0.1", 8083)
    assert (settings.proxy_metrics_host, settings.proxy_metrics_port) == ("127.0.0.1", 8084)
    # the dataclass's own defaults (what tests and embedders get) agree
    plain = Settings(database_url="x")
    assert (plain.api_metrics_host, plain.proxy_metrics_host) == ("127.0.0.1", "127.0.0.1")
    assert {settings.api_metrics_port, settings.proxy_metrics_port}.isdisjoint(
        {settings.api_port, settings.proxy_port}
    )


def test_metrics_listeners_are_configurable_or_off() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "NOTEBOOKS_API_METRICS_HOST": "0.0.0.0",
            "NOTEBOOKS_API_METRICS_PORT": "9100",
            "NOTEBOOKS_PROXY_METRICS_PORT": "OFF",
        }
    )
    assert (settings.api_metrics_host, settings.api_metrics_port) == ("0.0.0.0", 9100)
    assert settings.proxy_metrics_port is None


@pytest.mark.parametrize("bad", ["-1", "70000", "http"])
def test_a_bad_metrics_port_is_refused_with_its_variable(bad: str) -> None:
    with pytest.raises(SettingsError, match="NOTEBOOKS_PROXY_METRICS_PORT"):
        Settings.from_env({**REQUIRED, "NOTEBOOKS_PROXY_METRICS_PORT": bad})


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, False), ({"NOTEBOOKS_REQUIRE_DATABASE_URL": "true"}, True)],
)
def test_database_url_required(env: dict[str, str], expected: bool) -> None:
    assert database_url_required(env) is expected


def test_statement_timeout_defaults_to_30_s_zero_is_none_negative_refused() -> None:
    assert Settings.from_env(REQUIRED).db_statement_timeout_seconds == 30
    off = {**REQUIRED, "NOTEBOOKS_DB_STATEMENT_TIMEOUT_SECONDS": "0"}
    assert Settings.from_env(off).db_statement_timeout_seconds == 0
    # A negative value would make every pooled connection fail to configure.
    with pytest.raises(SettingsError, match="NOTEBOOKS_DB_STATEMENT_TIMEOUT_SECONDS"):
        Settings.from_env({**REQUIRED, "NOTEBOOKS_DB_STATEMENT_TIMEOUT_SECONDS": "-1"})


def test_running_limits_default_to_none_and_parse() -> None:
    plain = Settings.from_env(REQUIRED)
    assert (plain.max_running_per_member, plain.max_running_per_org) == (0, 0)
    bare = Settings(database_url="x")  # what tests and embedders get
    assert (bare.max_running_per_member, bare.max_running_per_org) == (0, 0)
    limited = Settings.from_env(
        {
            **REQUIRED,
            "NOTEBOOKS_MAX_RUNNING_PER_MEMBER": "3",
            "NOTEBOOKS_MAX_RUNNING_PER_ORG": "20",
        }
    )
    assert (limited.max_running_per_member, limited.max_running_per_org) == (3, 20)


@pytest.mark.parametrize(
    "name", ["NOTEBOOKS_MAX_RUNNING_PER_MEMBER", "NOTEBOOKS_MAX_RUNNING_PER_ORG"]
)
@pytest.mark.parametrize("bad", ["-1", "two", "1.5"])
def test_a_bad_running_limit_is_refused_with_its_variable(name: str, bad: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**REQUIRED, name: bad})


# Every malformed value is refused with one line naming the variable and what
# it accepts (docs/operations.md: the servers refuse to start), never read as
# the default or passed on to break later (a hot loop, an OverflowError).
REFUSED = [
    ("NOTEBOOKS_API_PORT", "70000", "a port number (0..65535)"),
    ("NOTEBOOKS_API_PORT", "-1", "a port number (0..65535)"),
    ("NOTEBOOKS_API_PORT", "http", "a port number (0..65535)"),
    ("NOTEBOOKS_PROXY_PORT", "65536", "a port number (0..65535)"),
    ("NOTEBOOKS_PROXY_PORT", "-1", "a port number (0..65535)"),
    ("NOTEBOOKS_API_METRICS_PORT", "70000", "a port number (0..65535) or 'off'"),
    ("NOTEBOOKS_PROXY_METRICS_PORT", "-1", "a port number (0..65535) or 'off'"),
    ("NOTEBOOKS_SWEEP_INTERVAL_SECONDS", "0", "an integer of at least 1"),
    ("NOTEBOOKS_SWEEP_INTERVAL_SECONDS", "-5", "an integer of at least 1"),
    ("NOTEBOOKS_HEARTBEAT_TIMEOUT_SECONDS", "0", "an integer of at least 1"),
    ("NOTEBOOKS_PRESENCE_WINDOW_SECONDS", "0", "an integer of at least 1"),
    ("NOTEBOOKS_START_DEADLINE_SECONDS", "0", "an integer of at least 1"),
    ("NOTEBOOKS_FILE_COPY_SECONDS", "59", "an integer of at least 60"),
    ("NOTEBOOKS_TRASH_DAYS", "-1", "an integer of at least 0"),
    ("NOTEBOOKS_TRASH_DAYS", "3651", "an integer of at most 3650"),
    ("NOTEBOOKS_WORKER_CONCURRENCY", "0", "an integer of at least 1"),
    ("NOTEBOOKS_DB_POOL_WAIT_SECONDS", "0", "an integer of at least 1"),
    # the API's pool keeps 2 connections: a maximum of 1 fails at start
    ("NOTEBOOKS_DB_POOL_MAX", "0", "an integer of at least 2"),
    ("NOTEBOOKS_DB_POOL_MAX", "1", "an integer of at least 2"),
    ("NOTEBOOKS_STOP_GRACE_SECONDS", "-1", "an integer of at least 0"),
    ("NOTEBOOKS_LOCAL_WARM_POOL_SIZE", "-1", "an integer of at least 0"),
    ("NOTEBOOKS_DB_STATEMENT_TIMEOUT_SECONDS", "-1", "an integer of at least 0"),
    ("NOTEBOOKS_MAX_RUNNING_PER_MEMBER", "-1", "an integer of at least 0"),
    ("NOTEBOOKS_SWEEP_INTERVAL_SECONDS", "ten", "an integer of at least 1"),
    ("NOTEBOOKS_LOG_FORMAT", "jsonl", "one of auto, json, console"),
    ("NOTEBOOKS_LOG_FORMAT", "text", "one of auto, json, console"),
    ("NOTEBOOKS_LOG_LEVEL", "verbose", "one of debug, info, warning, error, critical"),
    ("NOTEBOOKS_LOG_LEVEL", "warn", "one of debug, info, warning, error, critical"),
]


@pytest.mark.parametrize(("name", "raw", "accepted"), REFUSED)
def test_a_malformed_setting_is_refused_with_its_variable_and_what_it_accepts(
    name: str, raw: str, accepted: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**REQUIRED, name: raw})
    assert str(refused.value) == f"{name} must be {accepted}, got {raw!r}"


ACCEPTED = [
    ("NOTEBOOKS_API_PORT", "65535", "api_port", 65535),
    ("NOTEBOOKS_API_PORT", "1", "api_port", 1),
    ("NOTEBOOKS_API_PORT", "0", "api_port", 0),  # any free port (tests)
    ("NOTEBOOKS_PROXY_PORT", " 9081 ", "proxy_port", 9081),
    ("NOTEBOOKS_SWEEP_INTERVAL_SECONDS", "1", "sweep_interval_seconds", 1),
    ("NOTEBOOKS_HEARTBEAT_TIMEOUT_SECONDS", "1", "heartbeat_timeout_seconds", 1),
    ("NOTEBOOKS_DB_POOL_MAX", "2", "db_pool_max", 2),
    ("NOTEBOOKS_STOP_GRACE_SECONDS", "0", "stop_grace_seconds", 0),
    ("NOTEBOOKS_LOCAL_WARM_POOL_SIZE", "0", "local_warm_pool_size", 0),
    ("NOTEBOOKS_LOG_FORMAT", "JSON", "log_format", "json"),
    ("NOTEBOOKS_LOG_FORMAT", "console", "log_format", "console"),
    ("NOTEBOOKS_LOG_FORMAT", "", "log_format", "auto"),
    ("NOTEBOOKS_LOG_LEVEL", "Warning", "log_level", "warning"),
    ("NOTEBOOKS_LOG_LEVEL", "debug", "log_level", "debug"),
    ("NOTEBOOKS_LOG_LEVEL", "CRITICAL", "log_level", "critical"),
]


@pytest.mark.parametrize(("name", "raw", "field", "expected"), ACCEPTED)
def test_settings_at_their_bounds_are_accepted(
    name: str, raw: str, field: str, expected: object
) -> None:
    assert getattr(Settings.from_env({**REQUIRED, name: raw}), field) == expected


@pytest.mark.parametrize(
    ("fmt", "level", "name"),
    [("jsonl", "info", "NOTEBOOKS_LOG_FORMAT"), ("json", "verbose", "NOTEBOOKS_LOG_LEVEL")],
)
def test_logging_refuses_what_it_would_misread(fmt: str, level: str, name: str) -> None:
    """`notebooks up` and `migrate` configure logging from the raw variables."""
    from common.logging import configure_logging

    with pytest.raises(SettingsError, match=f"^{name} must be one of "):
        configure_logging(fmt, level)


def test_allowed_images_parse_and_a_bad_entry_is_refused() -> None:
    assert Settings.from_env(REQUIRED).allowed_images == ()
    raw = " registry.example.com:5000/notebooks/ , lakehq/sail ,"
    parsed = Settings.from_env({**REQUIRED, "NOTEBOOKS_ALLOWED_IMAGES": raw})
    assert parsed.allowed_images == ("registry.example.com:5000/notebooks/", "lakehq/sail")
    for bad in ("lakehq/sail:0.7.2", "a b", "repo@sha256:" + "a" * 64):
        with pytest.raises(SettingsError, match="NOTEBOOKS_ALLOWED_IMAGES"):
            Settings.from_env({**REQUIRED, "NOTEBOOKS_ALLOWED_IMAGES": bad})


def test_a_signing_key_id_named_twice_is_refused() -> None:
    """Rotating by prepending a new secret under the same id signed links
    with the first secret while the proxy, looking the id up, verified with
    the last: every open failed."""
    new, old = "n" * 32, "o" * 32
    with pytest.raises(SettingsError, match="key id 'main' twice"):
        parse_signing_keys(f"main:{new},main:{old}")
    assert parse_signing_keys(f"k2:{new},k1:{old}") == (("k2", new), ("k1", old))


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8081"),
        ("::1", "http://[::1]:8081"),  # bracketed, or no URL parser reads it
        ("::", "http://[::1]:8081"),  # a wildcard: this machine's loopback
        ("0.0.0.0", "http://127.0.0.1:8081"),  # browsers refuse 0.0.0.0
    ],
)
def test_the_default_public_url_is_one_a_browser_can_open(host: str, url: str) -> None:
    settings = Settings.from_env({**REQUIRED, "NOTEBOOKS_PROXY_HOST": host})
    assert settings.proxy_public_url == url


@pytest.mark.parametrize("bad", ["nb.example.com:8081", "ftp://nb.example.com", "https://"])
def test_a_public_url_without_scheme_or_host_is_refused(bad: str) -> None:
    """It goes into the proxy's redirects and the console's CSP: a URL
    without a scheme made `frame-src nb.example.com://`."""
    for name in ("NOTEBOOKS_API_PUBLIC_URL", "NOTEBOOKS_PROXY_PUBLIC_URL"):
        with pytest.raises(SettingsError, match=f"{name} must be an http:// or https:// URL"):
            Settings.from_env({**REQUIRED, name: bad})
