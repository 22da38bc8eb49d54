"""Session proxy benchmark: our proxy vs straight to the upstream vs
configurable-http-proxy (JupyterHub's) vs a bare TCP relay, same client, same run.

    .venv/bin/python bench/proxy.py [--seconds 3] [--rounds 3] [--soak-seconds 600] [--no-chp]
                                    [--marimo [--path /health]]

Starts its own embedded PostgreSQL, an upstream (a small aiohttp app with a
1 KiB page and a WebSocket echo under /notebooks/{id}/, so the figures show
the proxies, not Marimo; or with --marimo a real `marimo edit`, GET of
--path), our proxy as its own process (`python -m proxy`, logged in through
`_open` like a browser), configurable-http-proxy (npm-installed once into
~/.cache/notebooks-bench/chp, not into the repository), and a TCP relay that
copies bytes and understands no HTTP: the floor any proxy's extra hop costs
here. Then prints HTTP requests/s (the bench's aiohttp client, and wrk when
installed) and WebSocket round-trip latency at concurrency 1 and 16 for every
path, and a soak: 100 WebSockets held open through our proxy (each echoing
once a second, 10 of them replaced every 10 s, plus HTTP traffic) with the
proxy's RSS and open file descriptors sampled along the way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
from yarl import URL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NB = "NBBENCH1"
BODY = b"x" * 1024
PAGE = "/page"  # what the HTTP figures GET; `--marimo` makes it Marimo's `--path`
CHP_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "notebooks-bench" / "chp"


# ---------------------------------------------------------------- upstream


def run_upstream(port: int) -> None:
    from aiohttp import web

    async def page(_: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="text/plain")

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get(f"/notebooks/{NB}/page", page)
    app.router.add_get(f"/notebooks/{NB}/ws", echo)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_loop())


def run_relay(port: int, upstream_port: int) -> None:
    """The floor: a TCP relay that copies bytes both ways and understands no
    HTTP (uvloop protocols, one upstream connection per client connection).
    What the extra hop alone costs: a proxy that also parses, checks and
    rewrites HTTP does more work per request than this."""
    import uvloop

    class Back(asyncio.Protocol):
        def __init__(self, front: asyncio.Transport) -> None:
            self.front = front

        def data_received(self, data: bytes) -> None:
            self.front.write(data)

        def connection_lost(self, exc: BaseException | None) -> None:
            self.front.close()

    class Front(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.back: asyncio.Transport | None = None
            self.early: list[bytes] = []
            asyncio.ensure_future(self.connect())

        async def connect(self) -> None:
            loop = asyncio.get_running_loop()
            back, _ = await loop.create_connection(
                lambda: Back(self.transport), "127.0.0.1", upstream_port
            )
            self.back = back
            for data in self.early:
                back.write(data)

        def data_received(self, data: bytes) -> None:
            if self.back is None:
                self.early.append(data)
            else:
                self.back.write(data)

        def connection_lost(self, exc: BaseException | None) -> None:
            if self.back is not None:
                self.back.close()

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Front, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve())


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop everywhere (client, upstream, our proxy): Marimo's uvicorn uses it too."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def ensure_chp() -> Path | None:
    binary = CHP_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        return None
    CHP_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--silent", "--prefix", str(CHP_DIR), "configurable-http-proxy"],
        check=True,
    )
    return binary if binary.exists() else None


def seed(dsn: str, marimo_url: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("insert into organizations (id, name) values ('ORGX', 'bench')")
        conn.execute(
            "insert into members (id, organization_id, email, name) values "
            "('MEMBERX', 'ORGX', 'bench@example.com', 'bench')"
        )
        conn.execute(
            "insert into api_tokens (id, member_id, name, prefix, secret_hash) values "
            "('TOKENX', 'MEMBERX', 'bench', 'p', 'bench-hash')"
        )
        conn.execute(
            "insert into workload_configs (id, organization_id, name) values "
            "('WCX', 'ORGX', 'default')"
        )
        conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " desired_state, status, session_id, session_token, runtime_state, created_by,"
            " updated_by) values (%s, 'ORGX', 'MEMBERX', 'WCX', 'bench', 'running', 'running',"
            " 'SESSIONX', 'upstream-token', %s::jsonb, 'MEMBERX', 'MEMBERX')",
            (NB, f'{{"marimo_url": "{marimo_url}"}}'),
        )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ---------------------------------------------------------------- load


class Target:
    def __init__(
        self, name: str, base: str, session: aiohttp.ClientSession, cookie: str = ""
    ) -> None:
        self.name = name
        self.base = base
        self.session = session
        self.cookie = cookie  # the Cookie header wrk must send (our proxy's login)

    @property
    def origin(self) -> str:
        return self.base


async def http_rps(t: Target, concurrency: int, seconds: float) -> float:
    url = f"{t.base}/notebooks/{NB}{PAGE}"
    deadline = time.perf_counter() + seconds
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            async with t.session.get(url) as resp:
                body = await resp.read()
                assert resp.status == 200 and (PAGE != "/page" or len(body) == len(BODY))
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def wrk_rps(t: Target, concurrency: int, seconds: float) -> float:
    """requests/s measured by wrk (C, one thread, keep-alive), a load generator
    far cheaper than the servers it drives, so it measures them, not itself."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:.0f}s"]
    if t.cookie:
        command += ["-H", f"Cookie: {t.cookie}"]
    command.append(f"{t.base}/notebooks/{NB}{PAGE}")
    proc = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    text = out.decode()
    assert "Non-2xx" not in text and "Socket errors" not in text, text
    return float(text.split("Requests/sec:")[1].split()[0])


async def ws_rtt(t: Target, concurrency: int, seconds: float) -> list[float]:
    url = f"{t.base}/notebooks/{NB}/ws"
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        async with t.session.ws_connect(url, origin=t.origin) as ws:
            for _ in range(20):  # warm-up
                await ws.send_str("warm")
                await ws.receive_str()
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await ws.send_str("ping")
                assert await ws.receive_str() == "ping"
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def compare(targets: list[Target], seconds: float, rounds: int) -> None:
    """Paths are interleaved round by round and each figure is the median of
    its rounds, so load from other processes hits every path alike."""
    print(f"\nHTTP GET {PAGE}, requests/s (median of {rounds} rounds of {seconds:.0f} s)")
    await rps_table(targets, seconds, rounds, warm_http_rps)

    if shutil.which("wrk"):
        await compare_wrk(targets, seconds, rounds)
    if PAGE != "/page":
        return  # Marimo has no echo WebSocket

    print(f"\nWebSocket echo round trip, ms ({rounds} rounds of {seconds:.0f} s, pooled)")
    print(
        f"  {'path':<28}{'c=1 p50':>9}{'p99':>8}{'c=16 p50':>10}{'p99':>8}"
        f"{'p50 overhead c=1':>19}{'c=16':>8}"
    )
    lat: dict[tuple[str, int], list[float]] = {}
    for c in (1, 16):
        for _ in range(rounds):
            for t in targets:
                lat.setdefault((t.name, c), []).extend(await ws_rtt(t, c, seconds))
    for t in targets:
        a, b = lat[(t.name, 1)], lat[(t.name, 16)]
        o1 = pct(a, 0.5) - pct(lat[("direct", 1)], 0.5)
        o16 = pct(b, 0.5) - pct(lat[("direct", 16)], 0.5)
        print(
            f"  {t.name:<28}{pct(a, 0.5):>9.3f}{pct(a, 0.99):>8.3f}{pct(b, 0.5):>10.3f}"
            f"{pct(b, 0.99):>8.3f}{o1:>19.3f}{o16:>8.3f}"
        )


async def compare_wrk(targets: list[Target], seconds: float, rounds: int) -> None:
    print(
        f"\nHTTP GET {PAGE} with wrk -t1, requests/s (median of {rounds} rounds of {seconds:.0f} s)"
    )
    await rps_table(targets, seconds, rounds, wrk_rps)


async def warm_http_rps(t: Target, concurrency: int, seconds: float) -> float:
    await http_rps(t, concurrency, 0.3)  # warm-up
    return await http_rps(t, concurrency, seconds)


async def rps_table(
    targets: list[Target],
    seconds: float,
    rounds: int,
    measure: Callable[[Target, int, float], Awaitable[float]],
) -> None:
    """Median requests/s of each path at c=1 and c=16, printed beside direct."""
    rps: dict[tuple[str, int], float] = {}
    for c in (1, 16):
        samples: dict[str, list[float]] = {t.name: [] for t in targets}
        for _ in range(rounds):
            for t in targets:
                samples[t.name].append(await measure(t, c, seconds))
        for name, values in samples.items():
            rps[(name, c)] = statistics.median(values)
    print(f"  {'path':<28}{'c=1':>10}{'c=16':>10}{'x direct c=1':>14}{'c=16':>8}")
    for t in targets:
        r1, r16 = rps[(t.name, 1)], rps[(t.name, 16)]
        print(
            f"  {t.name:<28}{r1:>10.0f}{r16:>10.0f}"
            f"{r1 / rps[('direct', 1)]:>13.2f}x{r16 / rps[('direct', 16)]:>7.2f}x"
        )


async def soak(t: Target, proxy_pid: int, seconds: float, sockets: int) -> None:
    proc = psutil.Process(proxy_pid)
    url = f"{t.base}/notebooks/{NB}/ws"
    stop = asyncio.Event()
    sent = 0

    async def holder(slot: int, generation: list[int]) -> None:
        nonlocal sent
        while not stop.is_set():
            mine = generation[slot]
            async with t.session.ws_connect(url, origin=t.origin) as ws:
                while not stop.is_set() and generation[slot] == mine:
                    await ws.send_str("soak")
                    assert await ws.receive_str() == "soak"
                    sent += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)

    def sample() -> tuple[float, int]:
        return proc.memory_info().rss / 2**20, proc.num_fds()

    print(
        f"\nSoak: {sockets} WebSockets through our proxy for {seconds:.0f} s "
        "(1 echo/s each, 10 replaced every 10 s, 50 HTTP GETs every 10 s)"
    )
    base_rss, base_fds = sample()
    print(f"  before: rss {base_rss:.1f} MiB, fds {base_fds}")
    generation = [0] * sockets
    tasks = [asyncio.create_task(holder(i, generation)) for i in range(sockets)]
    started = time.monotonic()
    rows: list[tuple[float, float, int]] = []
    tick = 0
    while time.monotonic() - started < seconds:
        await asyncio.sleep(10)
        tick += 1
        for i in range(10):
            generation[(tick * 10 + i) % sockets] += 1
        for _ in range(50):
            async with t.session.get(f"{t.base}/notebooks/{NB}/page") as resp:
                await resp.read()
        rss, fds = sample()
        rows.append((time.monotonic() - started, rss, fds))
        if tick % 6 == 0:
            print(f"  t={rows[-1][0]:>5.0f}s rss {rss:.1f} MiB, fds {fds}, echoes {sent}")
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2)
    end_rss, end_fds = sample()
    first = rows[min(len(rows) - 1, 5)]  # a minute in: the warm baseline
    last = rows[-1]
    print(f"  warm (t={first[0]:.0f}s): rss {first[1]:.1f} MiB, fds {first[2]}")
    print(f"  end  (t={last[0]:.0f}s): rss {last[1]:.1f} MiB, fds {last[2]}")
    print(f"  growth warm->end: rss {last[1] - first[1]:+.1f} MiB, fds {last[2] - first[2]:+d}")
    print(f"  after closing all: rss {end_rss:.1f} MiB, fds {end_fds} (before: {base_fds})")
    print(f"  echoes: {sent}")


# ---------------------------------------------------------------- main


async def run(
    args: argparse.Namespace,
    ports: dict[str, int],
    proxy_pid: int,
    settings_keys: tuple[tuple[str, str], ...],
    chp: bool,
) -> None:
    from datetime import UTC, datetime

    from common.session_token import mint

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        token, _ = mint(
            settings_keys,
            member_id="MEMBERX",
            token_id="TOKENX",
            notebook_id=NB,
            session_id="SESSIONX",
            mode="edit",
            now=datetime.now(UTC),
        )
        ours = f"http://127.0.0.1:{ports['proxy']}"
        async with session.get(
            f"{ours}/notebooks/{NB}/_open?token={token}", allow_redirects=False
        ) as resp:
            assert resp.status == 303, await resp.text()
        cookie = "; ".join(
            f"{k}={m.value}"
            for k, m in session.cookie_jar.filter_cookies(URL(f"{ours}/notebooks/{NB}/")).items()
        )
        targets = [
            Target("direct", f"http://127.0.0.1:{ports['upstream']}", session),
            Target("TCP relay (floor)", f"http://127.0.0.1:{ports['relay']}", session),
            Target("our proxy", ours, session, cookie),
        ]
        if chp:
            targets.append(
                Target("configurable-http-proxy", f"http://127.0.0.1:{ports['chp']}", session)
            )
        await compare(targets, args.seconds, args.rounds)
        if args.soak_seconds > 0:
            await soak(targets[2], proxy_pid, args.soak_seconds, args.soak_sockets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-sockets", type=int, default=100)
    parser.add_argument("--no-chp", action="store_true")
    parser.add_argument(
        "--marimo",
        action="store_true",
        help="upstream = a real `marimo edit` (GET of --path; no WebSocket or soak)",
    )
    parser.add_argument(
        "--path",
        default="/health",
        help="with --marimo: the path under /notebooks/{id} to GET (/health, / for the page)",
    )
    parser.add_argument("--profile", help="write a cProfile of the proxy process here")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--relay", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        run_upstream(args.upstream)
        return
    if args.relay:
        run_relay(*args.relay)
        return

    from common.embedded_db import database_url, start_embedded
    from sql.migrate import migrate

    root = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    server = start_embedded(root / "pg", cleanup="stop")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dsn = database_url(server)
        asyncio.run(migrate(dsn))
        ports = {
            "upstream": free_port(),
            "proxy": free_port(),
            "chp": free_port(),
            "relay": free_port(),
        }
        seed(dsn, f"http://127.0.0.1:{ports['upstream']}")
        keys = (("bench", "b" * 40),)
        if args.marimo:
            global PAGE
            PAGE = args.path
            args.soak_seconds = 0
            (root / "nb.py").write_text("import marimo\n\napp = marimo.App()\n")
            marimo = [str(Path(sys.executable).parent / "marimo"), "edit", "nb.py", "--headless"]
            marimo += ["--host", "127.0.0.1", "--port", str(ports["upstream"])]
            marimo += ["--base-url", f"/notebooks/{NB}", "--no-token", "--skip-update-check"]
            procs.append(subprocess.Popen(marimo, cwd=root, stderr=subprocess.DEVNULL))
        else:
            upstream = [sys.executable, __file__, "--upstream", str(ports["upstream"])]
            procs.append(subprocess.Popen(upstream))
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "NOTEBOOKS_PROXY_PORT": str(ports["proxy"]),
            "NOTEBOOKS_PROXY_METRICS_PORT": "off",  # not scraped; 8084 may be taken
            "NOTEBOOKS_SECRET_KEY": "k" * 40,
            "NOTEBOOKS_SIGNING_KEYS": "bench:" + "b" * 40,
            "NOTEBOOKS_COOKIE_SECURE": "false",
            "NOTEBOOKS_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }
        command = [sys.executable, "-m", "proxy"]
        if args.profile:  # cProfile the proxy process (written when it stops)
            command[1:1] = ["-m", "cProfile", "-o", args.profile]
        proxy = subprocess.Popen(command, env=env, cwd=ROOT)
        procs.append(proxy)
        relay_cmd = [sys.executable, __file__, "--relay", str(ports["relay"])]
        relay_cmd.append(str(ports["upstream"]))
        relay = subprocess.Popen(relay_cmd)
        procs.append(relay)
        chp_bin = None if args.no_chp else ensure_chp()
        if chp_bin is not None:
            procs.append(
                subprocess.Popen(
                    [
                        str(chp_bin),
                        "--ip",
                        "127.0.0.1",
                        "--port",
                        str(ports["chp"]),
                        "--api-port",
                        str(free_port()),
                        "--default-target",
                        f"http://127.0.0.1:{ports['upstream']}",
                        "--log-level",
                        "warn",
                    ],
                    env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": "bench"},
                )
            )
            wait_port(ports["chp"], procs[-1])
        wait_port(ports["upstream"], procs[0])
        wait_port(ports["proxy"], proxy)
        wait_port(ports["relay"], relay)
        print(
            f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, "
            f"{os.cpu_count()} cores; configurable-http-proxy: "
            f"{'yes' if chp_bin else 'not available'}"
        )
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(run(args, ports, proxy.pid, keys, chp_bin is not None))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
