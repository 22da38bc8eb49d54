"""Proxy login: every bad token is refused with 401, a short page saying why
and no cookie; a good one sets the cookie once and redirects."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import jwt
import pytest
from proxy_helpers import (
    PAST_STOP,
    ProxyUnderTest,
    api_token_of,
    free_port,
    insert_world,
    serve_proxy,
    sql,
    wait_listening,
)

from common.session_token import AUDIENCE, ISSUER
from common.settings import Settings
from proxy import metrics
from proxy.app import POOL


async def _get(
    p: ProxyUnderTest, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str, list[str], dict[str, str]]:
    async with p.client() as c, c.get(url, allow_redirects=False, headers=headers) as resp:
        return (
            resp.status,
            await resp.text(),
            resp.headers.getall("Set-Cookie", []),
            dict(resp.headers),
        )


async def test_good_token_sets_scoped_cookie_and_redirects(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    status, _, cookies, headers = await _get(proxy, proxy.open_url(proxy.token(proxy.world.owner)))
    assert status == 303
    assert headers["Location"] == f"/notebooks/{proxy.world.notebook}/"
    assert len(cookies) == 1
    attrs = [a.strip().lower() for a in cookies[0].split(";")]
    assert attrs[0].startswith("notebooks_proxy_session=")
    assert f"path=/notebooks/{proxy.world.notebook.lower()}/" in attrs
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert "secure" not in attrs  # cookie_secure=False in the test settings


async def test_cookie_is_secure_unless_switched_off(settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    world = insert_world(settings.database_url, f"http://127.0.0.1:{free_port()}", "unused")
    server, p = await serve_proxy(replace(settings, cookie_secure=True), world)
    try:
        _, _, cookies, _ = await _get(p, p.open_url(p.token(world.owner)))
        assert "secure" in [a.strip().lower() for a in cookies[0].split(";")]
    finally:
        await server.close()


def _refused(status: int, body: str, cookies: list[str], words: str) -> None:
    assert status == 401, body
    assert not cookies
    assert words in body.lower()
    assert "<html" in body.lower()


def _logins() -> dict[str, float]:
    """notebooks_proxy_logins_total by outcome, every label the counter has."""
    return {
        s.labels["outcome"]: s.value
        for m in metrics.LOGINS.collect()
        for s in m.samples
        if s.name == "notebooks_proxy_logins_total"
    }


async def _refused_as(
    p: ProxyUnderTest,
    url: str,
    words: str,
    outcome: str,
    status: int = 401,
    headers: dict[str, str] | None = None,
) -> None:
    """GET `url`: refused with `status`, a page saying `words`, no cookie, and
    counted once under `outcome` and under no other outcome."""
    before = _logins()
    got, body, cookies, _ = await _get(p, url, headers)
    after = _logins()
    if status == 401:
        _refused(got, body, cookies, words)
    else:
        assert got == status, body
        assert not cookies
        assert words in body.lower()
    changed = {o: after.get(o, 0.0) - before.get(o, 0.0) for o in after}
    assert {o: d for o, d in changed.items() if d} == {outcome: 1.0}


async def test_expired_token(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = proxy.token(proxy.world.owner)
    proxy.clock.advance(301)
    await _refused_as(proxy, proxy.open_url(token), "expired", "expired")


async def test_reused_token(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = proxy.token(proxy.world.owner)
    assert (await _get(proxy, proxy.open_url(token)))[0] == 303
    await _refused_as(proxy, proxy.open_url(token), "already used", "reused")


async def test_tampered_token(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    header, payload, sig = proxy.token(proxy.world.viewer, "view").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["mode"] = "edit"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    await _refused_as(proxy, proxy.open_url(f"{header}.{forged}.{sig}"), "signature", "signature")


def _claims(p: ProxyUnderTest, **over: object) -> dict[str, object]:
    now = int(p.clock.now().timestamp())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": p.world.owner,
        "tok": api_token_of(p.world.owner),
        "nbk": p.world.notebook,
        "sid": p.world.session_id,
        "mode": "edit",
        "iat": now,
        "exp": now + 300,
        "jti": "j1",
    }
    claims.update(over)
    return claims


async def test_alg_none_token(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = jwt.encode(_claims(proxy), None, algorithm="none", headers={"kid": "k2"})
    await _refused_as(proxy, proxy.open_url(token), "refused algorithm", "algorithm")


async def test_other_algorithm_with_the_right_key(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = jwt.encode(_claims(proxy), "s" * 40, algorithm="HS512", headers={"kid": "k2"})
    await _refused_as(proxy, proxy.open_url(token), "refused algorithm", "algorithm")


async def test_wrong_audience(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = jwt.encode(
        _claims(proxy, aud="someone-else"), "s" * 40, algorithm="HS256", headers={"kid": "k2"}
    )
    await _refused_as(proxy, proxy.open_url(token), "not meant for this proxy", "audience")


async def test_wrong_issuer(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = jwt.encode(
        _claims(proxy, iss="someone-else"), "s" * 40, algorithm="HS256", headers={"kid": "k2"}
    )
    await _refused_as(proxy, proxy.open_url(token), "not issued by this service", "issuer")


async def test_unknown_key_id(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = jwt.encode(_claims(proxy), "s" * 40, algorithm="HS256", headers={"kid": "k9"})
    await _refused_as(proxy, proxy.open_url(token), "unknown key", "unknown_key")


async def test_previous_key_still_accepted(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = jwt.encode(
        _claims(proxy, jti="rotated"), "r" * 40, algorithm="HS256", headers={"kid": "k1"}
    )
    assert (await _get(proxy, proxy.open_url(token)))[0] == 303


async def test_token_for_another_notebook(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = proxy.token(proxy.world.owner, notebook="OTHERNOTEBOOK")
    await _refused_as(proxy, proxy.open_url(token), "another notebook", "wrong_notebook")


async def test_token_of_an_earlier_session(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = proxy.token(proxy.world.owner, session_id="OLDSESSION")
    await _refused_as(proxy, proxy.open_url(token), "earlier session", "stale_session")


async def test_missing_and_garbage_tokens(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    await _refused_as(proxy, proxy.url("/_open"), "no token", "missing")
    await _refused_as(proxy, proxy.open_url("not.a.jwt"), "not a valid token", "malformed")


async def test_token_without_the_api_token_claim(login_proxy: ProxyUnderTest) -> None:
    """Every login names the API token that asked for it (revoking that
    token ends the session); a signed token without one is refused."""
    proxy = login_proxy
    claims = _claims(proxy, jti="no-tok")
    del claims["tok"]
    token = jwt.encode(claims, "s" * 40, algorithm="HS256", headers={"kid": "k2"})
    await _refused_as(proxy, proxy.open_url(token), "not a valid token", "malformed")


async def test_token_minted_for_a_revoked_api_token(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    sql(
        proxy.settings.database_url,
        "update api_tokens set revoked_at = now() where id = %s",
        (api_token_of(proxy.world.owner),),
    )
    token = proxy.token(proxy.world.owner)
    await _refused_as(proxy, proxy.open_url(token), "do not have access", "no_access")


async def test_member_without_access(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = proxy.token(proxy.world.outsider, "view")
    await _refused_as(proxy, proxy.open_url(token), "do not have access", "no_access")


async def test_edit_token_for_a_team_viewer_is_refused(login_proxy: ProxyUnderTest) -> None:
    """Refused, saying what they still may do: an editor demoted to viewer
    after `open` has access, only not to edit."""
    proxy = login_proxy
    token = proxy.token(proxy.world.viewer, "edit")
    await _refused_as(proxy, proxy.open_url(token), "open it again to view it", "no_edit")


async def test_a_link_followed_from_another_site_is_refused(login_proxy: ProxyUnderTest) -> None:
    """Login CSRF: a page on another site sending the browser into a notebook
    (the attacker's own, on a shared proxy origin) it did not choose. The
    link is not spent: the platform's page (same site) still signs in with it,
    as does a link typed or pasted (`none`) or a browser that sends no
    Fetch Metadata."""
    proxy = login_proxy
    token = proxy.token(proxy.world.owner)
    await _refused_as(
        proxy,
        proxy.open_url(token),
        "followed from another site",
        "cross_site",
        headers={"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/"},
    )
    status, _, cookies, _ = await _get(
        proxy, proxy.open_url(token), {"Sec-Fetch-Site": "same-site"}
    )
    assert status == 303 and cookies
    for site in ("same-origin", "none", None):
        headers = {"Sec-Fetch-Site": site} if site else None
        status, _, _, _ = await _get(proxy, proxy.open_url(proxy.token(proxy.world.owner)), headers)
        assert status == 303, site


async def test_login_to_a_notebook_not_running_gets_503(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    token = proxy.token(proxy.world.owner)
    sql(proxy.settings.database_url, "update notebooks set status = 'starting'")
    await _refused_as(proxy, proxy.open_url(token), "not running", "not_running", status=503)


async def test_token_used_on_one_replica_is_refused_by_another(settings: Settings) -> None:
    """Two proxies sharing only the database (own pools, caches, clocks): the
    jti burnt by A is refused by B, and the other way round."""
    world = insert_world(settings.database_url, f"http://127.0.0.1:{free_port()}", "unused")
    server_a, a = await serve_proxy(settings, world)
    try:
        server_b, b = await serve_proxy(settings, world)
        try:
            assert a.base != b.base
            assert server_a.app[POOL] is not server_b.app[POOL]
            token = a.token(world.owner)
            status, _, cookies, _ = await _get(a, a.open_url(token))
            assert status == 303 and len(cookies) == 1
            await _refused_as(b, b.open_url(token), "already used", "reused")
            # B itself is a working replica: a token of its own is accepted
            # once, then refused by A.
            token = b.token(world.owner)
            assert (await _get(b, b.open_url(token)))[0] == 303
            await _refused_as(a, a.open_url(token), "already used", "reused")
        finally:
            await server_b.close()
    finally:
        await server_a.close()


async def test_jti_is_recorded_in_postgres(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    import psycopg

    assert (await _get(proxy, proxy.open_url(proxy.token(proxy.world.owner))))[0] == 303
    with psycopg.connect(proxy.settings.database_url) as conn:
        rows = conn.execute("select notebook_id, member_id from used_proxy_tokens").fetchall()
    assert rows == [(proxy.world.notebook, proxy.world.owner)]


@pytest.mark.parametrize("status", ["stopped", "starting", "stopping"])
async def test_notebook_not_running_gets_503(login_proxy: ProxyUnderTest, status: str) -> None:
    proxy = login_proxy
    session = await proxy.login(proxy.world.owner)
    try:
        async with session.get(proxy.url("/health")) as resp:
            assert resp.status == 502  # cached as running; nothing listens upstream
        await wait_listening(proxy)
        # a stop's save window (for open editors) over
        sql(
            proxy.settings.database_url, f"update notebooks set status = %s, {PAST_STOP}", (status,)
        )
        # NOTIFY drops the cached row; wait for it rather than sleeping.
        deadline = time.monotonic() + 5
        while True:
            async with session.get(proxy.url("/")) as resp:
                status, body, retry = (
                    resp.status,
                    await resp.text(),
                    resp.headers.get("Retry-After"),
                )
            if status == 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 503
        assert "not running" in body
        assert retry
    finally:
        await session.close()


async def test_a_websocket_to_a_notebook_not_running_gets_503(login_proxy: ProxyUnderTest) -> None:
    """Marimo's page reconnects its socket while a notebook restarts: the
    handshake gets the same 503 (with Retry-After) as a page, not a hang."""
    proxy = login_proxy
    session = await proxy.login(proxy.world.owner)
    try:
        await wait_listening(proxy)
        sql(proxy.settings.database_url, "update notebooks set status = 'starting'")
        deadline = time.monotonic() + 5
        while True:
            try:
                ws = await session.ws_connect(
                    proxy.url("/ws"), headers={"Origin": proxy.origin}, timeout=5
                )
                await ws.close()
                status, retry = 101, None
            except aiohttp.WSServerHandshakeError as e:
                status, retry = e.status, (e.headers or {}).get("Retry-After")
            if status == 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 503
        assert retry
    finally:
        await session.close()


async def test_requests_without_a_valid_cookie_are_refused(login_proxy: ProxyUnderTest) -> None:
    proxy = login_proxy
    async with proxy.client() as c:
        async with c.get(proxy.url("/")) as resp:
            assert resp.status == 401
            assert "open this notebook from the platform" in (await resp.text()).lower()
        c.cookie_jar.update_cookies({"notebooks_proxy_session": "eyJtIjoi.forged"})
        async with c.get(proxy.url("/")) as resp:
            assert resp.status == 401


def _requests() -> float:
    """notebooks_proxy_requests_total, all kinds and outcomes together."""
    return sum(
        s.value
        for m in metrics.REQUESTS.collect()
        for s in m.samples
        if s.name == "notebooks_proxy_requests_total"
    )


async def test_requests_total_counts_requests_to_a_notebook_as_its_help_says(
    login_proxy: ProxyUnderTest,
) -> None:
    """Logins, an invalid id and the bare /notebooks/{id} redirect are not
    counted as requests (a login under its own counter), and the metric's
    help, which a dashboard's reader goes by, says so."""
    p = login_proxy
    before, logins = _requests(), _logins()
    status, *_ = await _get(p, p.open_url("garbage"))
    assert status == 401
    assert (await _get(p, f"{p.base}/notebooks/not-an-id!/"))[0] == 404
    assert (await _get(p, f"{p.base}/notebooks/{p.world.notebook}"))[0] == 308
    assert _requests() == before
    assert sum(_logins().values()) == sum(logins.values()) + 1
    status, *_ = await _get(p, p.url("/"))  # no cookie: a request to the notebook
    assert status == 401
    assert _requests() == before + 1
    async with p.client() as c, c.get(p.metrics_url) as resp:
        scrape = await resp.text()
    (help_line,) = [
        line
        for line in scrape.splitlines()
        if line.startswith("# HELP notebooks_proxy_requests_total ")
    ]
    assert "/notebooks/{id}/" in help_line
    assert "logins (_open)" in help_line.lower() and "notebooks_proxy_logins_total" in help_line
    assert "redirect is not counted" in help_line
