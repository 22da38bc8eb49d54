"""Per-notebook origins: the template's checks and what is derived from it."""

from __future__ import annotations

import pytest

from common.notebook_origin import (
    check_template,
    frame_source,
    notebook_authority,
    notebook_origin,
)
from common.settings import SettingsError

PUBLIC = "https://proxy.example.com"


@pytest.mark.parametrize(
    "template",
    [
        "https://{id}.nb.example.com",
        "http://{id}.nb.localhost:8081",
        "https://{id}.nb.example.com/",
    ],
)
def test_good_templates(template: str) -> None:
    assert check_template(template) is None


@pytest.mark.parametrize(
    "template",
    [
        "ftp://{id}.nb.example.com",
        "https://nb.example.com/{id}",
        "https://x{id}.nb.example.com",
        "https://{id}.{id}.example.com",
        "https://nb.{id}.example.com",
        "https://{id}.nb.example.com/notebooks",
        "https://{id}.nb.example.com?x=1",
        "https://nb.example.com",
    ],
)
def test_bad_templates(template: str) -> None:
    assert check_template(template) is not None


def test_what_is_derived() -> None:
    template = "https://{id}.nb.example.com:8443"
    assert notebook_origin(PUBLIC, template, "NB1ABC") == "https://nb1abc.nb.example.com:8443"
    assert notebook_authority(template, "NB1ABC") == "nb1abc.nb.example.com:8443"
    assert frame_source(PUBLIC, template) == "https://*.nb.example.com:8443"
    # Without a template every notebook is on the proxy's origin, any host goes.
    assert notebook_origin(PUBLIC + "/", "", "NB1ABC") == PUBLIC
    assert notebook_authority("", "NB1ABC") is None
    assert frame_source(PUBLIC, "") == PUBLIC


def test_settings_refuse_a_bad_template() -> None:
    from common.settings import Settings

    env = {
        "DATABASE_URL": "postgresql://x",
        "NOTEBOOKS_SECRET_KEY": "k" * 32,
        "NOTEBOOKS_SIGNING_KEYS": "a:" + "s" * 32,
        "NOTEBOOKS_PROXY_NOTEBOOK_URL": "https://nb.example.com/{id}",
    }
    with pytest.raises(SettingsError, match="NOTEBOOKS_PROXY_NOTEBOOK_URL"):
        Settings.from_env(env)
    env["NOTEBOOKS_PROXY_NOTEBOOK_URL"] = "https://{id}.nb.example.com"
    assert Settings.from_env(env).proxy_notebook_url == "https://{id}.nb.example.com"


def test_the_template_is_compared_as_browsers_send_it() -> None:
    """Browsers send Host and Origin lower-cased and without the scheme's
    default port: a template written otherwise would match neither (every
    WebSocket refused, or every request a 404)."""
    template = "HTTPS://{id}.NB.Example.com"
    assert check_template(template) is None
    assert notebook_origin(PUBLIC, template, "NB1ABC") == "https://nb1abc.nb.example.com"
    assert notebook_authority(template, "NB1ABC") == "nb1abc.nb.example.com"
    for default_port in ("https://{id}.nb.example.com:443", "http://{id}.nb.localhost:80"):
        assert check_template(default_port) is not None
    assert check_template("https://{id}.nb.example.com:notaport") is not None
