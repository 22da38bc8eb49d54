"""Pure header filtering, the signed cookie and the refusal rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from common.statuses import SAVE_WINDOW_SECONDS
from proxy.access import Target, target_from_row
from proxy.cookie import MAX_SEALED_CHARS, CookieCache, ProxySession, seal, unseal
from proxy.headers import (
    cookie_value,
    downstream_response_headers,
    request_pairs,
    response_pairs,
    security_headers,
    upstream_request_headers,
)
from proxy.live import refusal

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _h(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_upstream_headers_drop_hop_by_hop_and_credentials() -> None:
    out = upstream_request_headers(
        _h(
            ("Host", "proxy"),
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Authorization", "Bearer user"),
            ("Cookie", "a=1; notebooks_proxy_session=s; b=2"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("Marimo-Server-Token", "t"),
            ("Accept", "*/*"),
        ),
        marimo_token="MT",
        client_ip="1.2.3.4",
        proto="https",
        host="nb.example",
    )
    assert dict(out) == {
        "Marimo-Server-Token": "t",
        "Accept": "*/*",
        "X-Forwarded-For": "10.0.0.1, 1.2.3.4",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "nb.example",
        "Authorization": "Bearer MT",
    }


def test_upstream_websocket_headers_drop_the_handshake_and_origin() -> None:
    out = upstream_request_headers(
        _h(
            ("Sec-WebSocket-Key", "k"),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "x"),
            ("Cookie", "notebooks_proxy_session=s"),
        ),
        marimo_token="MT",
        client_ip=None,
        proto="http",
        host="h",
        websocket=True,
    )
    assert set(out) == {"X-Forwarded-Proto", "X-Forwarded-Host", "Authorization"}


def test_downstream_headers_hide_the_upstream() -> None:
    out = downstream_response_headers(
        _h(
            ("Server", "uvicorn"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "text/html"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Content-Type-Options", "bogus"),
        )
    )
    assert list(out.items()) == [
        ("Content-Type", "text/html"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert security_headers("https://app.example")["Content-Security-Policy"] == (
        "frame-ancestors https://app.example"
    )


@pytest.mark.parametrize(
    ("location", "browser_gets"),
    [
        ("http://127.0.0.1:46469/notebooks/N/api/x", "/notebooks/N/api/x"),
        ("HTTP://127.0.0.1:46469/notebooks/N/?a=1", "/notebooks/N/?a=1"),
        ("http://127.0.0.1:46469", "/"),
        ("http://127.0.0.1:46469?x", "/?x"),
        ("http://127.0.0.1:46469#top", "/#top"),
        ("http://127.0.0.1:464690/elsewhere", "http://127.0.0.1:464690/elsewhere"),
        ("https://example.org/docs", "https://example.org/docs"),
        ("/notebooks/N/", "/notebooks/N/"),
    ],
)
def test_marimos_own_address_is_cut_from_a_redirect(location: str, browser_gets: str) -> None:
    out = downstream_response_headers(_h(("Location", location)), "http://127.0.0.1:46469")
    assert out["Location"] == browser_gets


def test_content_length_named_in_connection_is_kept_both_ways() -> None:
    """`Connection: Content-Length` must not unframe a body: upstream would
    read the body the express lane relays as it came as a request of its own."""
    out = request_pairs(
        [("Host", "h"), ("Content-Length", "42"), ("Connection", "keep-alive, Content-Length")],
        marimo_token="MT",
        client_ip=None,
        proto="http",
        host="h",
    )
    assert ("Content-Length", "42") in out
    back = response_pairs([("Content-Length", "5"), ("Connection", "content-length, X-Hop")])
    assert back == [("Content-Length", "5")]


def test_marimos_login_cookie_never_reaches_a_browser() -> None:
    """Marimo's `session_<port>_<base>` cookie is worth its token: never set
    in a browser. Other cookies pass."""
    back = response_pairs(
        [
            ("Set-Cookie", "session_2718_notebooks_NB1=abc; path=/notebooks/NB1; httponly"),
            ("Set-Cookie", "session=abc; path=/"),
            ("Set-Cookie", "theme=dark; path=/"),
            ("Set-Cookie", "sessionid=x"),
        ]
    )
    assert back == [("Set-Cookie", "theme=dark; path=/"), ("Set-Cookie", "sessionid=x")]


@pytest.mark.parametrize("viewer", [False, True], ids=["edit", "view"])
@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
def test_no_cookie_reaches_marimo(viewer: bool, websocket: bool) -> None:
    """Marimo shows a request's cookies to notebook code (`mo.app_meta()`):
    none of the browser's, ours, Marimo's or any other, in either mode."""
    out = request_pairs(
        [("Cookie", "theme=dark; notebooks_proxy_session=s"), ("cookie", "session_1=m")],
        marimo_token="MT",
        client_ip=None,
        proto="http",
        host="h",
        websocket=websocket,
        viewer=viewer,
    )
    assert [k for k, _ in out if k.lower() == "cookie"] == []


def test_a_viewers_notebook_id_header_is_pinned_an_editors_kept() -> None:
    """Marimo serves `/public/*` from the directory of whichever notebook
    `X-Notebook-Id` names: a viewer's names this notebook's file as the
    runtime recorded it (URI-encoded, as Marimo decodes it), or is dropped
    when no path is known."""
    incoming = [("X-Notebook-Id", "%2Fother%2Fsecret.py"), ("Accept", "*/*")]

    def sent(viewer: bool, path: str | None = None) -> list[tuple[str, str]]:
        pairs = request_pairs(
            incoming,
            marimo_token="MT",
            client_ip=None,
            proto="http",
            host="h",
            viewer=viewer,
            notebook_path=path,
        )
        return [(k, v) for k, v in pairs if k in ("X-Notebook-Id", "Accept")]

    assert sent(viewer=True) == [("Accept", "*/*")]
    own = "/data/nb 1/notebook.py"
    assert sent(viewer=True, path=own) == [
        ("X-Notebook-Id", "/data/nb%201/notebook.py"),
        ("Accept", "*/*"),
    ]
    assert sent(viewer=False, path=own) == incoming


def _session(**over: object) -> ProxySession:
    base = dict(
        member_id="M",
        token_id="T",
        notebook_id="N",
        session_id="S",
        mode="view",
        expires_at=int(NOW.timestamp()) + 60,
    )
    base.update(over)
    return ProxySession(**base)  # type: ignore[arg-type]


def test_cookie_round_trip_and_forgery() -> None:
    value = seal(_session(), "k" * 40)
    assert unseal(value, "k" * 40) == _session()
    assert unseal(value, "x" * 40) is None
    payload, mac = value.split(".")
    assert unseal(payload[:-2] + "xx." + mac, "k" * 40) is None
    assert unseal("garbage", "k" * 40) is None
    assert unseal("\udcff.x", "k" * 40) is None  # bytes aiohttp could not decode
    assert unseal(value + "\u00e9", "k" * 40) is None
    assert unseal(seal(_session(mode="admin"), "k" * 40), "k" * 40) is None


def test_a_sealed_value_longer_than_ours_is_refused_unread() -> None:
    long = seal(_session(member_id="M" * 2000), "k" * 40)
    assert len(long) > MAX_SEALED_CHARS and unseal(long, "k" * 40) is None


def test_the_cookie_cache_remembers_sessions_not_refusals() -> None:
    """Invented values must not fill the cache (or memory), nor push real
    sessions out of it."""
    cache = CookieCache("k" * 40, size=4)
    real = seal(_session(), "k" * 40)
    assert cache.unseal(real) == _session()
    for i in range(100):
        assert cache.unseal(f"forged{i}." + "x" * 900) is None
    assert cache.remembered == 1
    assert cache.unseal(real) == _session()


def _target(**over: object) -> Target:
    base = dict(
        notebook_id="N",
        status="running",
        session_id="S",
        session_token="T",
        marimo_url="http://127.0.0.1:1",
        can_view=True,
        can_edit=False,
    )
    base.update(over)
    return Target(**base)  # type: ignore[arg-type]


def test_refusal_reasons() -> None:
    assert refusal(_session(), _target(), NOW) is None
    assert refusal(_session(), None, NOW) == "access"
    assert refusal(_session(), _target(can_view=False), NOW) == "access"
    assert refusal(_session(mode="edit"), _target(), NOW) == "edit"  # may still view
    assert refusal(_session(mode="edit"), _target(can_edit=True), NOW) is None
    owner_back = _target(can_edit=True, owner_present_until=NOW + timedelta(seconds=1))
    assert refusal(_session(mode="edit"), owner_back, NOW) == "owner"
    assert refusal(_session(), owner_back, NOW) is None  # a viewer watches on
    # What else is wrong is said first: a stopping notebook, an earlier session.
    assert refusal(_session(mode="edit"), replace(owner_back, status="stopping"), NOW) == "status"
    assert refusal(_session(mode="edit"), replace(owner_back, session_id="S2"), NOW) == "session"
    owner_gone = _target(can_edit=True, owner_present_until=NOW)
    assert refusal(_session(mode="edit"), owner_gone, NOW) is None
    assert refusal(_session(), _target(status="stopping"), NOW) == "status"
    assert refusal(_session(), _target(marimo_url=None), NOW) == "status"
    assert refusal(_session(), _target(session_id="S2"), NOW) == "session"
    assert refusal(_session(expires_at=int(NOW.timestamp())), _target(), NOW) == "session"
    for status in ("idle", "detached"):
        assert refusal(_session(), _target(status=status), NOW) is None


def test_a_stop_spares_an_open_editor_for_its_save_window_only() -> None:
    """An editor open when a stop began may save what it typed last (Marimo
    saves 1 s after the last keystroke); a viewer, a login, or the same
    editor once the window is over: "status"."""
    stopping = _target(can_edit=True, status="stopping", saving_until=NOW + timedelta(seconds=1))
    editor = _session(mode="edit")
    assert refusal(editor, stopping, NOW) is None
    assert refusal(editor, stopping, NOW, login=True) == "status"
    assert refusal(_session(), stopping, NOW) == "status"
    assert refusal(editor, stopping, NOW + timedelta(seconds=1)) == "status"
    assert refusal(editor, replace(stopping, marimo_url=None), NOW) == "status"
    assert refusal(editor, replace(stopping, session_id="S2"), NOW) == "session"
    # Stamped by a clock far ahead of this one: no window (it would last that long).
    ahead = replace(stopping, saving_until=NOW + timedelta(seconds=60))
    assert refusal(editor, ahead, NOW) == "status"
    slightly = replace(stopping, saving_until=NOW + timedelta(seconds=SAVE_WINDOW_SECONDS + 0.5))
    assert refusal(editor, slightly, NOW) is None
    # From the row: the window counts from the status change, stopping only.
    row = {**ROW, "is_owner": True, "status_changed_at": NOW}
    assert target_from_row({**row, "status": "stopping"}).saving_until == NOW + timedelta(
        seconds=SAVE_WINDOW_SECONDS
    )
    for status in ("running", "stopped", "starting"):
        assert target_from_row({**row, "status": status}).saving_until is None


# A proxy_targets row of a member with no role on the notebook.
ROW: dict[str, object] = dict(
    notebook_id="N",
    status="running",
    session_id="S",
    session_token="T",
    marimo_url="u",
    member_ok=True,
    is_owner=False,
    is_org_admin=False,
    team_roles=[],
)


def test_the_owners_presence_counts_for_the_window() -> None:
    row = {**ROW, "team_roles": ["editor"]}
    assert target_from_row(row).owner_present_until is None
    seen = NOW - timedelta(seconds=100)
    window = timedelta(seconds=150)
    target = target_from_row({**row, "owner_seen_at": seen}, presence_window=window)
    assert target.owner_present_until == seen + window
    assert target.owner_present(NOW) and not target.owner_present(seen + window)


def test_access_from_roles() -> None:
    row = ROW
    assert not target_from_row(row).can_view
    assert target_from_row({**row, "team_roles": ["viewer"]}).can_view
    assert not target_from_row({**row, "team_roles": ["viewer"]}).can_edit
    assert target_from_row({**row, "team_roles": ["editor", "viewer"]}).can_edit
    assert target_from_row({**row, "is_owner": True}).can_edit
    assert target_from_row({**row, "is_org_admin": True}).can_edit
    assert not target_from_row({**row, "is_owner": True, "member_ok": False}).can_view


def test_only_sendable_close_codes_are_passed_on() -> None:
    from proxy.forward import sendable

    assert sendable(4001, 1011) == 4001
    assert sendable(1000, 1011) == 1000
    for reserved in (None, 1005, 1006, 1015, 999, 5000):
        assert sendable(reserved, 1011) == 1011


def test_cookie_value_finds_ours_among_others() -> None:
    assert cookie_value("a=1; nb=v.mac; b=2", "nb") == "v.mac"
    assert cookie_value("nb=first; nb=second", "nb") == "first"
    assert cookie_value("xnb=1; nbx=2", "nb") == ""
    assert cookie_value("", "nb") == ""
    assert cookie_value("a=1;nb = spaced ", "nb") == "spaced"
