"""`nrt-alerts serve` as an operator runs it: a process that logs each request and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from conftest import DemoRun, free_port

pytestmark = pytest.mark.slow


def _serve(static_run: DemoRun, *extra_env: tuple[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m server serve` on the shared run's catalog (no scheduler) and wait for /healthz."""
    config = static_run.cfg.output.dir.parent / "nrt-alerts.toml"
    port = free_port()
    env = {**os.environ, **dict(extra_env)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "-c", str(config), "--port", str(port), "--no-scheduler"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503):
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"serve did not start: {proc.communicate()[0]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_logs_requests_and_stops_cleanly(static_run: DemoRun, sig: signal.Signals) -> None:
    proc, url = _serve(static_run)
    assert httpx.get(f"{url}/layers").status_code == 200
    assert httpx.get(f"{url}/layers/no-such-layer/info").status_code == 404
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    # docker stop sends SIGTERM: a stop asked for is a clean exit, not "killed by a signal" (143).
    assert proc.returncode == 0, output
    assert '"GET /layers HTTP/1.1" 200' in output
    assert '"GET /layers/no-such-layer/info HTTP/1.1" 404' in output
    assert "Traceback" not in output


def test_access_log_can_be_turned_off(static_run: DemoRun) -> None:
    proc, url = _serve(static_run, ("NRT_ALERTS_SERVER__ACCESS_LOG", "false"))
    assert httpx.get(f"{url}/layers").status_code == 200
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "GET /layers" not in output
