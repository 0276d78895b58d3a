"""`shadowvault node run` as a real process: init, serve, authenticate, stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from node.repo import HomePaths, Store

CLI = str(Path(sys.executable).parent / "shadowvault")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def daemon(tmp_path: Path):
    home = tmp_path / "home"
    port = free_port()
    env = {
        **os.environ,
        "SHADOWVAULT_HOME": str(home),
        "SHADOWVAULT_KDF_PROFILE": "testing-only-insecure",
    }
    env.pop("SHADOWVAULT_PASSWORD", None)
    proc = subprocess.Popen(
        [
            CLI,
            "node",
            "run",
            "--init",
            "--api",
            f"127.0.0.1:{port}",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("token"):
            break
    assert any(line.startswith("api") for line in lines), (lines, proc.stderr.read())
    yield proc, home, f"http://127.0.0.1:{port}", lines
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_node_run_initialises_and_prints_identity(daemon) -> None:
    _proc, home, url, lines = daemon
    text = "".join(lines)
    assert "peer id   12D3KooW" in text
    assert f"api       {url}/api/v1" in text
    assert (home / "passphrase").stat().st_mode & 0o777 == 0o600
    assert (home / "api.token").stat().st_mode & 0o777 == 0o600
    passphrase = (home / "passphrase").read_text().strip()
    assert passphrase not in text


def test_node_run_api_needs_a_token(daemon) -> None:
    _, home, url, _ = daemon
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/live").status_code == 200
    assert httpx.get(f"{url}/ready").status_code == 200
    for route in ("/api/v1/status", "/api/v1/snapshots", "/api/v1/stats"):
        assert httpx.get(url + route).status_code == 401
        bad = httpx.get(url + route, headers={"Authorization": "Bearer svt_wrong"})
        assert bad.status_code == 401
    token = (home / "api.token").read_text().strip()
    ok = httpx.get(f"{url}/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["peer_id"].startswith("12D3KooW")


def test_node_run_sigterm_stops_cleanly_and_releases_the_store(daemon) -> None:
    proc, home, _, _ = daemon
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    Store.open(HomePaths(home).store).close()  # the lock was released, the store is valid
