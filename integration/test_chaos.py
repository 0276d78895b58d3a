"""Chaos in network namespaces: five real nodes on five "hosts" (issue 7).

Node 1 backs up; nodes 2-5 store for it. Each node runs in its own network namespace
(integration/netns.sh, a copy of ../shared/tools/netns-cluster.sh) on 10.79.X.i, and every
CLI call for it runs there too. Faults come from the same script: `partition` (nftables or
iptables DROP in the node's namespace), `delay` (a userspace relay: this kernel has no
netem) and `loss` (random drop of the node's egress). After each scenario every holder
has the snapshot complete and `check --read-data` is clean on all five.

Needs root and `ip netns`; skipped otherwise (CI runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster import Cluster, ClusterNode, write_tree

NETNS = Path(__file__).resolve().parent / "netns.sh"
NODES = 5


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


class Net:
    """integration/netns.sh with this run's own prefix, subnet and state directory."""

    def __init__(self, state: Path) -> None:
        tag = os.getpid() % 200 + 20
        self.env = {
            **os.environ,
            "NETNS_PREFIX": f"svc{tag}",
            "NETNS_SUBNET": f"10.79.{tag}",
            "NETNS_STATE": str(state),
        }

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


def _all_clean(cluster: Cluster) -> None:
    for node in cluster.nodes.values():
        node.run("check", "--read-data")


def _backup(owner: ClusterNode, root: Path, files: int) -> str:
    src = write_tree(root, files=files, size=2 * 1024 * 1024)
    return str(owner.json("backup", src)["snapshot_id"])


def test_partitioned_holder_catches_up_after_heal(net: Net, chaos: Cluster, tmp_path: Path) -> None:
    owner, cut = chaos["n1"], chaos["n2"]
    # Cut off before the backup: the announcement push and every fetch must miss n2.
    net("partition", 2)
    try:
        snap = _backup(owner, tmp_path / "data", files=8)
        owner.run("status", "--wait-replicated", str(NODES - 2), "--timeout", "90")
        assert cut.peer_id not in chaos.holders_of_latest(owner)
    finally:
        net("heal", 2)
    owner.run("status", "--wait-replicated", str(NODES - 1), "--timeout", "100")
    rows = {r["id"]: r for r in owner.json("status")["snapshots"]}
    assert cut.peer_id in rows[snap]["holders"]
    _all_clean(chaos)


def test_replication_completes_over_a_slow_lossy_link(
    net: Net, chaos: Cluster, tmp_path: Path
) -> None:
    owner = chaos["n1"]
    net("delay", 3, 200)
    net("loss", 3, 5)
    try:
        snap = _backup(owner, tmp_path / "data", files=4)
        owner.run("status", "--wait-replicated", str(NODES - 1), "--timeout", "100")
    finally:
        net("heal", 3)
    rows = {r["id"]: r for r in owner.json("status")["snapshots"]}
    assert chaos["n3"].peer_id in rows[snap]["holders"]
    _all_clean(chaos)
