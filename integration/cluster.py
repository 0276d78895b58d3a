"""A small multi-process cluster harness: N real ``shadowvault node run`` processes.

Each node is a home made by ``shadowvault init`` (cheap KDF), with fixed ports for the
libp2p listener and the HTTP API, peers configured with ``shadowvault peers add`` before
the node starts (the ids come from ``shadowvault id --json``, which works offline), and
its daemon's output captured to ``<root>/<name>.log``. ``Cluster.logs()`` gathers those
logs for a failure message; ``Cluster.stop_all()`` stops every node with SIGTERM.

Nodes run on loopback (``host="127.0.0.1"``) or, with ``prefix=("ip", "netns", "exec",
NS)`` and the node's own address, inside a network namespace: then every CLI call for
that node runs in the namespace too, since it talks to the daemon's 127.0.0.1 API.

Used by integration/test_mesh.py, integration/test_chaos.py and bench/mesh_scale.py. The
passphrase goes by environment only, never in argv.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHADOWVAULT = Path(sys.executable).parent / "shadowvault"
CLI_TIMEOUT = 120
START_TIMEOUT = 60.0

# Peers added with `peers add` while a node is stopped are dialled by `node run` from its
# peer book. Before main's fix (Mesh loading the book's addresses into libp2p's
# peerstore) they were not; `start(readd_peers=True)` still re-adds each known peer
# through the live daemon, for trying an older node.
READD_PEERS_AFTER_START = False


class ClusterError(AssertionError):
    """A cluster step failed (an assertion, so pytest shows the message as is)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def cli_env(home: Path, passphrase: str) -> dict[str, str]:
    """The environment of every run for a node: ours minus SHADOWVAULT_*, plus its home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWVAULT_")}
    env.update(
        SHADOWVAULT_HOME=str(home),
        SHADOWVAULT_PASSWORD=passphrase,
        SHADOWVAULT_KDF_PROFILE="testing-only-insecure",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
    )
    return env


@dataclass
class ClusterNode:
    """One node: its home, its ports, its ``node run`` process and its log."""

    name: str
    home: Path
    host: str
    p2p_port: int
    api_port: int
    passphrase: str
    prefix: tuple[str, ...] = ()
    daemon_wrap: tuple[str, ...] = ()
    """Put before the console script for ``node run`` only (a profiler, ``nice``)."""
    peer_id: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    # -- the CLI ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return cli_env(self.home, self.passphrase)

    def run(
        self, *args: str | os.PathLike[str], expect: int | None = 0, timeout: float = CLI_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """``shadowvault *args`` for this node; asserts the exit code unless ``expect`` is None."""
        argv = [*self.prefix, str(SHADOWVAULT), *(os.fspath(a) for a in args)]
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if self.passphrase in proc.stdout or self.passphrase in proc.stderr:
            raise ClusterError(f"{self.name}: the CLI printed the passphrase")
        if expect is not None and proc.returncode != expect:
            raise ClusterError(
                f"{self.name}: `shadowvault {' '.join(map(os.fspath, args))}` exited "
                f"{proc.returncode}, expected {expect}\n--- stdout\n{proc.stdout[-3000:]}"
                f"\n--- stderr\n{proc.stderr[-3000:]}"
            )
        return proc

    def json(self, *args: str | os.PathLike[str], **kw: Any) -> Any:
        """Run with ``--json`` and parse standard output."""
        out = self.run(*args, "--json", **kw).stdout
        try:
            return json.loads(out)
        except ValueError:
            raise ClusterError(f"{self.name}: not JSON: {out[:2000]!r}") from None

    # -- addresses -------------------------------------------------------------------------

    @property
    def addr(self) -> str:
        """Where peers dial this node (no /p2p/ part)."""
        return f"/ip4/{self.host}/tcp/{self.p2p_port}"

    @property
    def full_addr(self) -> str:
        return f"{self.addr}/p2p/{self.peer_id}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # -- the daemon ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *extra: str, readd_peers: bool = READD_PEERS_AFTER_START) -> None:
        """Start ``node run`` and wait until its API answers (the daemon prints its token);
        then, with ``readd_peers``, hand the daemon its peers' addresses (see above)."""
        if self.running:
            raise ClusterError(f"{self.name} is already running")
        listen = f"/ip4/{'0.0.0.0' if self.prefix else self.host}/tcp/{self.p2p_port}"
        argv = [
            *self.prefix,
            *self.daemon_wrap,
            str(SHADOWVAULT),
            "node",
            "run",
            "--api",
            f"127.0.0.1:{self.api_port}",
            "--listen",
            listen,
            *extra,
        ]
        with self.log.open("ab") as out:
            out.write(f"\n=== start {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        marker = f"token     {self.home / 'api.token'}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ClusterError(f"{self.name}: node run exited {self.proc.returncode}")
            text = self.log.read_text(errors="replace")
            if marker in text.rpartition("=== start")[2]:
                if readd_peers:
                    self.readd_peers()
                return
            time.sleep(0.1)
        raise ClusterError(f"{self.name}: node run did not start in {START_TIMEOUT:g}s")

    def readd_peers(self) -> None:
        """Re-add every known peer through the running daemon (same roles and addresses)."""
        for peer in self.json("peers", "list"):
            argv = ["peers", "add", peer["peer_id"], "--name", peer["name"]]
            argv += ["--quota", f"{int(peer.get('quota', 0))}B"]
            argv += [a for addr in peer["addrs"] for a in ("--addr", addr)]
            argv += ["--store-for"] if peer["store_for"] else []
            argv += ["--store-at"] if peer["store_at"] else []
            self.run(*argv)

    def stop(self, sig: int | None = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal the daemon (``sig`` None: it was signalled already; a second SIGTERM
        would make it exit at once) and wait for it (SIGKILL if it does not go); its exit
        code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ClusterError(f"{self.name}: did not stop within {timeout:g}s of {sig}") from None

    def token(self) -> str:
        return (self.home / "api.token").read_text().strip()

    def api(self, method: str, path: str) -> str:
        """One authenticated call to the daemon's API (from inside its namespace, if any);
        the response body."""
        code = (
            "import sys, urllib.request\n"
            "req = urllib.request.Request(sys.argv[2], method=sys.argv[1], headers={\n"
            "    'Authorization': 'Bearer ' + open(sys.argv[3]).read().strip()})\n"
            "sys.stdout.write(urllib.request.urlopen(req, timeout=150).read().decode())\n"
        )
        argv = [*self.prefix, sys.executable, "-c", code, method, self.api_url + path]
        argv.append(str(self.home / "api.token"))
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        if proc.returncode != 0:
            raise ClusterError(f"{self.name}: {method} {path} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def metrics(self) -> str:
        """The daemon's Prometheus text."""
        return self.api("GET", "/metrics")


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


class Cluster:
    """Nodes under one root directory; stopped (SIGTERM) by ``stop_all``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: dict[str, ClusterNode] = {}
        root.mkdir(parents=True, exist_ok=True)

    def __getitem__(self, name: str) -> ClusterNode:
        return self.nodes[name]

    def add_node(
        self,
        name: str,
        *,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
    ) -> ClusterNode:
        """Make a node home with ``init`` (each node needs its own identity, so homes are
        never copied) and learn its peer id offline."""
        home = self.root / name / "home"
        home.parent.mkdir(parents=True, exist_ok=True)
        port_host = "127.0.0.1" if prefix else host
        node = ClusterNode(
            name=name,
            home=home,
            host=host,
            p2p_port=free_port(port_host),
            api_port=free_port("127.0.0.1"),
            passphrase="sv-cluster-" + secrets.token_hex(12),
            prefix=tuple(prefix),
            log=self.root / f"{name}.log",
        )
        node.run("init")
        node.peer_id = node.json("id")["peer_id"]
        self.nodes[name] = node
        return node

    def add_nodes(self, names: Sequence[str], workers: int = 4) -> list[ClusterNode]:
        """``add_node`` for each name on loopback, ``workers`` at a time (each is a few
        CLI runs, mostly start-up time)."""
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(self.add_node, names))

    def store_for(
        self, owner: ClusterNode, holders: Iterable[ClusterNode], workers: int = 4
    ) -> None:
        """``holders`` keep copies of ``owner``'s snapshots (peers added on both sides;
        the owner's own adds one after another, since each opens its store)."""
        holders = list(holders)
        for holder in holders:
            owner.run(
                "peers", "add", holder.peer_id, "--addr", holder.addr, "--name", holder.name,
                "--store-at",
            )  # fmt: skip

        def add_owner(holder: ClusterNode) -> None:
            holder.run(
                "peers", "add", owner.peer_id, "--addr", owner.addr, "--name", owner.name,
                "--store-for",
            )  # fmt: skip

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(add_owner, holders))

    def start_all(self, workers: int = 4) -> None:
        """Start every node not running, ``workers`` at a time."""
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda n: n.start(), [n for n in self.nodes.values() if not n.running]))

    def stop_all(self) -> list[str]:
        """Stop every running node (all signalled first, then each awaited); the problems
        seen (a node that would not stop)."""
        signalled = []
        for node in self.nodes.values():
            if node.running and node.proc is not None:
                node.proc.send_signal(signal.SIGTERM)
                signalled.append(node.name)
        problems = []
        for node in self.nodes.values():
            try:
                node.stop(None if node.name in signalled else signal.SIGTERM)
            except ClusterError as exc:
                problems.append(str(exc))
        return problems

    def logs(self, tail: int = 4000) -> str:
        """The end of every node's log, for a failure report."""
        parts = []
        for node in self.nodes.values():
            with contextlib.suppress(OSError):
                parts.append(
                    f"--- {node.name} ({node.peer_id[-8:]})\n{node.log.read_text()[-tail:]}"
                )
        return "\n".join(parts)

    def holders_of_latest(self, owner: ClusterNode) -> list[str]:
        rows = owner.json("status")["snapshots"]
        return list(rows[-1]["holders"]) if rows else []


def held_for(holder: ClusterNode, owner: ClusterNode) -> int:
    """Bytes ``holder`` says it keeps for ``owner`` (its ``peers list --json``)."""
    for peer in holder.json("peers", "list"):
        if peer["peer_id"] == owner.peer_id:
            return int(peer.get("held_for", 0))
    return 0


def write_tree(root: Path, files: int, size: int, seed: str = "") -> Path:
    """``files`` random (incompressible) files of ``size`` bytes under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"{seed}f{i:03d}.bin").write_bytes(os.urandom(size))
    return root
