"""Webhooks' pure parts (common/webhooks.py, reconciler/webhooks.py): the
signature as Standard Webhooks' own example gives it, the waits between
attempts, which URLs and addresses a delivery may reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common import webhooks
from reconciler.webhooks import retry_at, sign

T0 = datetime(2026, 11, 28, tzinfo=UTC)


def test_the_signature_is_standard_webhooks_own_example() -> None:
    """The specification's example (standardwebhooks.com, "Signature
    scheme"): a receiver's library verifies ours."""
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_new_secret_is_standard_and_random() -> None:
    a, b = webhooks.new_secret(), webhooks.new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(webhooks.secret_key(a)) == 24


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, 10), (2, 30), (3, 90), (4, 270), (5, 810), (6, 2430), (7, 3600), (40, 3600)],
)
def test_waits_grow_to_an_hour(attempts: int, wait: int) -> None:
    assert retry_at(attempts, T0, T0) == T0 + timedelta(seconds=wait)


def test_a_delivery_is_given_up_a_day_after_its_status_change() -> None:
    almost = T0 + timedelta(days=1) - timedelta(seconds=10)
    assert retry_at(1, T0, almost) == T0 + timedelta(days=1)
    assert retry_at(1, T0, almost + timedelta(seconds=1)) is None
    assert retry_at(30, T0, T0 + timedelta(hours=23, minutes=1)) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/notebooks", None),
        ("https://hooks.example.com:8443/x?team=data", None),
        ("https://93.184.215.14/hook", None),  # a public address
        ("http://hooks.example.com/", "must be an https URL"),
        ("ftp://hooks.example.com/", "must be an https URL"),
        ("https:///path", "has no host"),
        ("https://user:pw@hooks.example.com/", "may not hold credentials"),
        ("https://hooks.example.com/#x", "may not have a fragment"),
        ("https://hooks.example.com:99999/", "is not a URL"),
        ("https://127.0.0.1/", "names an address that is not public"),
        ("https://10.0.0.8/", "names an address that is not public"),
        ("https://169.254.169.254/latest/meta-data", "names an address that is not public"),
        ("https://[::1]/", "names an address that is not public"),
        ("https://[::ffff:127.0.0.1]/", "names an address that is not public"),
        ("https://[fd00::1]/", "names an address that is not public"),
        ("https://0.0.0.0/", "names an address that is not public"),
        ("https://" + "a" * 2048 + ".com/", "is longer than 2048 characters"),
    ],
)
def test_which_urls_a_webhook_may_name(url: str, problem: str | None) -> None:
    found = webhooks.url_problem(url, allow_insecure=False)
    assert (found is None) if problem is None else (found or "").startswith(problem), found


def test_insecure_webhooks_take_http_and_any_address() -> None:
    assert webhooks.url_problem("http://127.0.0.1:8000/hook", allow_insecure=True) is None
    assert webhooks.url_problem("http://10.0.0.8/", allow_insecure=True) is None
    assert webhooks.url_problem("ftp://10.0.0.8/", allow_insecure=True) == "must be an http(s) URL"
    assert webhooks.address_allowed("127.0.0.1", allow_insecure=True)
    assert not webhooks.address_allowed("127.0.0.1", allow_insecure=False)
    assert not webhooks.address_allowed("fe80::1%eth0", allow_insecure=False)
    assert not webhooks.address_allowed("224.0.0.1", allow_insecure=False)
    assert webhooks.address_allowed("2606:4700:4700::1111", allow_insecure=False)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:8",  # NAT64: 10.0.0.8 where the network translates
        "2002:a9fe:a9fe::1",  # 6to4: 169.254.169.254
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::ffff:0:a9fe:a9fe",  # IPv4-translated
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "fec0::1",  # site-local
        "fd00::1",
        "::ffff:10.0.0.8",
    ],
)
def test_an_ipv6_address_carrying_a_private_one_is_not_public(address: str) -> None:
    assert not webhooks.address_allowed(address, allow_insecure=False)
    assert webhooks.url_problem(f"https://[{address}]/", allow_insecure=False) == (
        "names an address that is not public"
    )


def test_a_host_name_the_client_cannot_encode_is_refused() -> None:
    """It would raise at each delivery, not as a failed attempt."""
    for url in ("https://a..example.com/", "https://" + "a" * 70 + ".example.com/"):
        assert webhooks.url_problem(url, allow_insecure=False) == (
            "has a host name that is not valid"
        )
