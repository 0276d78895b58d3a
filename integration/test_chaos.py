"""Chaos in network namespaces: five real nodes on five "hosts" (issue 7).

Node 1 backs up; nodes 2-5 store for it. Each node runs in its own network namespace
(integration/netns.sh, a copy of ../shared/tools/netns-cluster.sh) on 10.79.X.i, and every
CLI call for it runs there too. Faults come from the same script: `partition` (nftables or
iptables DROP in the node's namespace), `delay` (a userspace relay: this kernel has no
netem) and `loss` (random drop of the node's egress); and from the harness: a holder
SIGKILLed while it receives, then restarted, and the owner SIGKILLed while the holders
fetch from it, then restarted. After each scenario (`_after_each`): every
snapshot node 1 ever made is still listed and complete on all four holders (signed
receipts), and `check --read-data` is clean on all five.

Needs root and `ip netns`; skipped otherwise (CI runs as root).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import pytest

from integration.cluster import Cluster, ClusterNode, metric_value, write_tree

NETNS = Path(__file__).resolve().parent / "netns.sh"
NODES = 5
HOLDERS = NODES - 1
RECEIVED = "shadowvault_p2p_blob_bytes_received_total"


def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.decode(errors='replace').strip()}"
    if shutil.which("iptables") is None and shutil.which("nft") is None:
        return "partitions need nftables or iptables"
    return None


_PROBLEM = _netns_problem()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")]


def _claim_tag() -> tuple[int, IO[bytes]]:
    """A network tag no other run on this machine uses: its lock file held (until the
    returned file is closed) and no namespace of that prefix left over. Several worktrees
    run this suite at once; two runs on one prefix would delete each other's nodes."""
    for k in range(200):
        tag = (os.getpid() + k) % 200 + 20
        lock = open(Path(tempfile.gettempdir()) / f"shadowvault-netns-{tag}.lock", "wb")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        if f"svc{tag}-" in names:  # a crashed run's leftovers: not ours to remove
            lock.close()
            continue
        return tag, lock
    raise AssertionError("no free network tag (200 chaos runs at once?)")


class Net:
    """integration/netns.sh with this run's own prefix, subnet and state directory."""

    def __init__(self, state: Path) -> None:
        tag, self._lock = _claim_tag()
        self.env = {
            **os.environ,
            "NETNS_PREFIX": f"svc{tag}",
            "NETNS_SUBNET": f"10.79.{tag}",
            "NETNS_STATE": str(state),
        }

    def release(self) -> None:
        """Give the tag back (after `down`)."""
        self._lock.close()

    def __call__(self, *args: str | int) -> str:
        proc = subprocess.run(
            ["bash", str(NETNS), *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"netns.sh {' '.join(map(str, args))}: {proc.stderr}")
        return proc.stdout.strip()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    net = Net(tmp_path_factory.mktemp("netns-state"))
    net("up", NODES)
    try:
        yield net
    finally:
        net("down")
        net.release()


@pytest.fixture(scope="module")
def chaos(net: Net, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("chaos"))
    try:
        for i in range(1, NODES + 1):
            cluster.add_node(
                f"n{i}", host=net("addr", i), prefix=("ip", "netns", "exec", net("ns", i))
            )
        owner = cluster["n1"]
        cluster.store_for(owner, [cluster[f"n{i}"] for i in range(2, NODES + 1)])
        cluster.start_all()
        yield cluster
    finally:
        problems = cluster.stop_all()
    assert not problems, problems


@pytest.fixture(scope="module")
def made() -> list[str]:
    """Every snapshot node 1 made in this module, in order."""
    return []


def _after_each(cluster: Cluster, made: list[str], timeout: float = 120) -> None:
    """Every snapshot of node 1 ever made still listed and complete on every holder (each
    holder's receipt; waits for stragglers), then `check --read-data` clean on
    all five nodes."""
    owner = cluster["n1"]
    holders = {cluster[f"n{i}"].peer_id for i in range(2, NODES + 1)}
    deadline = time.monotonic() + timeout
    while True:
        rows = {r["id"]: set(r["holders"]) for r in owner.json("status")["snapshots"]}
        missing = {s: holders - rows.get(s, set()) for s in made if holders - rows.get(s, set())}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert set(made) <= set(rows), f"snapshots lost: {set(made) - set(rows)}"
    assert not missing, f"snapshots not complete on every holder after {timeout:g}s: {missing}"
    # Each check is a job in its own daemon: the five run at once.
    with ThreadPoolExecutor(NODES) as pool:
        list(pool.map(lambda node: node.run("check", "--read-data"), cluster.nodes.values()))


def _backup(
    cluster: Cluster, made: list[str], root: Path, files: int, size: int = 2 * 1024 * 1024
) -> str:
    src = write_tree(root, files=files, size=size)
    snap = str(cluster["n1"].json("backup", src)["snapshot_id"])
    made.append(snap)
    return snap


def test_partitioned_holder_catches_up_after_heal(
    net: Net, chaos: Cluster, made: list[str], tmp_path: Path
) -> None:
    owner, cut = chaos["n1"], chaos["n2"]
    # Cut off before the backup: the announcement push and every fetch must miss n2.
    net("partition", 2)
    try:
        snap = _backup(chaos, made, tmp_path / "data", files=8)
        owner.run("status", "--wait-replicated", str(NODES - 2), "--timeout", "90")
        assert cut.peer_id not in chaos.holders_of_latest(owner)
    finally:
        net("heal", 2)
    owner.run("status", "--wait-replicated", str(NODES - 1), "--timeout", "100")
    rows = {r["id"]: r for r in owner.json("status")["snapshots"]}
    assert cut.peer_id in rows[snap]["holders"]
    _after_each(chaos, made)


def test_replication_completes_over_a_slow_lossy_link(
    net: Net, chaos: Cluster, made: list[str], tmp_path: Path
) -> None:
    owner = chaos["n1"]
    net("delay", 3, 200)
    net("loss", 3, 5)
    try:
        snap = _backup(chaos, made, tmp_path / "data", files=4)
        owner.run("status", "--wait-replicated", str(NODES - 1), "--timeout", "100")
    finally:
        net("heal", 3)
    rows = {r["id"]: r for r in owner.json("status")["snapshots"]}
    assert chaos["n3"].peer_id in rows[snap]["holders"]
    _after_each(chaos, made)


def _received(node: ClusterNode) -> float:
    return metric_value(node.metrics(), RECEIVED)


def test_holder_sigkilled_mid_transfer_completes_after_restart(
    chaos: Cluster, made: list[str], tmp_path: Path
) -> None:
    owner, victim = chaos["n1"], chaos["n5"]
    before = _received(victim)
    snap = _backup(chaos, made, tmp_path / "data", files=12, size=4 * 1024 * 1024)
    # SIGKILL as soon as it receives blobs of this snapshot (or after 30 s in any case).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _received(victim) <= before:
        time.sleep(0.05)
    assert _received(victim) > before, "n5 never started receiving"
    victim.stop(signal.SIGKILL)
    rows = {r["id"]: r for r in owner.json("status")["snapshots"]}
    assert victim.peer_id not in rows[snap]["holders"], "n5 finished before the kill"
    # Killed mid-transfer: the others go on, and n5 resumes where it was after a restart.
    victim.start()
    owner.run("status", "--wait-replicated", str(HOLDERS), "--timeout", "120")
    _after_each(chaos, made)


def test_owner_sigkilled_mid_transfer_every_holder_completes_after_restart(
    chaos: Cluster, made: list[str], tmp_path: Path
) -> None:
    owner, watched = chaos["n1"], chaos["n2"]
    holders = [chaos[f"n{i}"] for i in range(2, NODES + 1)]
    before = _received(watched)
    _backup(chaos, made, tmp_path / "data", files=12, size=4 * 1024 * 1024)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _received(watched) <= before:
        time.sleep(0.05)
    assert _received(watched) > before, "n2 never started receiving"
    owner.stop(signal.SIGKILL)
    # Mid-transfer: some holder has not delivered its receipt for the new snapshot (nor
    # can it while n1 is down, so this reads the state at the kill).
    undelivered = [
        h.name
        for h in holders
        for q in json.loads(h.api("GET", "/api/v1/replication"))["replication"]
        if q["owner"] == owner.peer_id and not q["receipt_sent"]
    ]
    assert undelivered, "every holder had finished before the kill"
    owner.start()
    owner.run("status", "--wait-replicated", str(HOLDERS), "--timeout", "120")
    _after_each(chaos, made)
