"""What `notebooks up` (`make run`) hands its children: the proxy's cookie is
Secure unless every public URL is plain http (the local default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.up import stack_env


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({}, "false"),  # the default: http://127.0.0.1:8081
        ({"NOTEBOOKS_PROXY_PUBLIC_URL": "http://notebooks.lan:8081"}, "false"),
        ({"NOTEBOOKS_PROXY_PUBLIC_URL": "https://notebooks.example.com"}, None),
        ({"NOTEBOOKS_PROXY_PUBLIC_URL": "HTTPS://notebooks.example.com"}, None),
        ({"NOTEBOOKS_PROXY_NOTEBOOK_URL": "https://{id}.nb.example.com"}, None),
        (  # the cookie is set on the notebook's own (plain http) host
            {
                "NOTEBOOKS_PROXY_PUBLIC_URL": "https://notebooks.example.com",
                "NOTEBOOKS_PROXY_NOTEBOOK_URL": "http://{id}.nb.lan:8081",
            },
            "false",
        ),
        (
            {
                "NOTEBOOKS_PROXY_PUBLIC_URL": "https://notebooks.example.com",
                "NOTEBOOKS_COOKIE_SECURE": "false",  # said explicitly: kept
            },
            "false",
        ),
    ],
)
def test_the_cookie_is_secure_unless_the_proxy_is_reached_over_plain_http(
    tmp_path: Path, env: dict[str, str], secure: str | None
) -> None:
    out = stack_env(env, tmp_path, "postgresql://unused")
    assert out.get("NOTEBOOKS_COOKIE_SECURE") == secure
