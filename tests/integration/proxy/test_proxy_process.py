"""`proxy.serve.main` as its own process: serves health on the configured
port and metrics on its own listener only, shows no Server banner, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from proxy_helpers import free_port

from common.settings import Settings

SCRIPT = (
    "from common.settings import Settings; from proxy.serve import main; main(Settings.from_env())"
)


def test_main_serves_health_and_metrics_and_stops_on_sigterm(settings: Settings) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "NOTEBOOKS_PROXY_PORT": str(port),
        "NOTEBOOKS_PROXY_METRICS_PORT": str(metrics_port),
        "NOTEBOOKS_SECRET_KEY": "m" * 40,
        "NOTEBOOKS_SIGNING_KEYS": "k2:" + "s" * 40,
        "NOTEBOOKS_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    assert r.headers.get("Server") is None
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        # Not on the public port: answered as any unknown path is.
        with pytest.raises(urllib.error.HTTPError) as public:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert public.value.code == 404
        assert public.value.headers["X-Content-Type-Options"] == "nosniff"
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        for name in (
            "notebooks_proxy_logins_total",
            "notebooks_proxy_bytes_total",
            "notebooks_proxy_websockets_active",
            "notebooks_proxy_upstream_errors_total",
            "notebooks_proxy_requests_total",
        ):
            assert name in text
        assert 'notebooks_proxy_logins_total{outcome="reused"} 0.0' in text
        # the pool's gauges are taken at scrape time
        assert 'notebooks_db_pool_connections{process="proxy",state="max"}' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
