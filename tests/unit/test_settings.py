"""Settings decided for safety: metrics listeners on loopback unless
configured, and no silent fallback to an embedded database when required."""

from __future__ import annotations

import pytest

from common.settings import Settings, SettingsError, database_url_required

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
