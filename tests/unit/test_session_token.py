"""The proxy login token's times are judged on the injected clock alone: the
API and the proxy run on different hosts, whose clocks differ."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from common.session_token import CLOCK_SKEW, InvalidSessionToken, mint, verify

KEYS = (("k1", "a-secret-long-enough-for-hs256-0123456789"),)


def _mint(now: datetime) -> str:
    token, _ = mint(
        KEYS, member_id="M", token_id="T", notebook_id="NB", session_id="S", mode="edit", now=now
    )
    return token


def test_an_api_clock_ahead_of_the_wall_clock_is_no_reason_to_refuse() -> None:
    # Minted by an API whose clock runs 1.5 s ahead of this host's, checked
    # by a proxy at that same instant: PyJWT's own `iat` check (the wall
    # clock, no leeway) refused it as issued in the future.
    ahead = datetime.fromtimestamp(time.time() + 1.5, tz=UTC)
    claims = verify(_mint(ahead), KEYS, now=ahead)
    assert claims.notebook_id == "NB"


def test_issue_time_is_judged_on_the_injected_clock_with_a_skew_allowance() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)  # far from the wall clock either way
    assert verify(_mint(now + CLOCK_SKEW - timedelta(seconds=1)), KEYS, now=now).member_id == "M"
    with pytest.raises(InvalidSessionToken) as refused:
        verify(_mint(now + CLOCK_SKEW + timedelta(seconds=2)), KEYS, now=now)
    assert refused.value.reason == "not_yet_valid"
    with pytest.raises(InvalidSessionToken) as late:
        verify(_mint(now - timedelta(minutes=5)), KEYS, now=now)
    assert late.value.reason == "expired"


def test_the_expiry_the_api_answers_is_the_tokens_own() -> None:
    """`expiresAt` comes from the claims; the JWT's `exp` is whole seconds, so
    the claims are too: a link never promised 0.9 s more than it gets."""
    now = datetime(2030, 1, 1, 12, 0, 0, 900_000, tzinfo=UTC)
    token, claims = mint(
        KEYS, member_id="M", token_id="T", notebook_id="NB", session_id="S", mode="edit", now=now
    )
    assert claims.expires_at == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    assert verify(token, KEYS, now=claims.expires_at - timedelta(microseconds=1))
    with pytest.raises(InvalidSessionToken):
        verify(token, KEYS, now=claims.expires_at)
