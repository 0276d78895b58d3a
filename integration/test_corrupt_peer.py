"""A peer serving corrupted blobs does not poison anyone (issue 5, integration).

Real processes on loopback: A backs up, B and C store for A. C is stopped and a byte of
every blob it holds is flipped on disk. C then runs as a lying peer
(``integration/lying_peer.py``: it serves the damaged bytes unchecked; the node's own
server would check them and answer "missing"). A loses its disk, is recovered from its
kit with B and C as peers and restores: every blob C sends is rejected against its id,
C is scored down, the blobs come from B, and A's store checks clean. Finally C, running
the real node again, finds its damage with ``check --read-data`` and heals it from A
with ``check --read-data --repair``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster import Cluster, ClusterNode, metric_value, write_tree
from node.repo import BlobKind, Store

pytestmark = pytest.mark.slow

LYING_PEER = Path(__file__).resolve().parent / "lying_peer.py"
REJECTED = "shadowvault_p2p_blobs_rejected_total"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "cluster")
    try:
        yield cluster
    finally:
        problems = cluster.stop_all()
    assert not problems, problems


def _flip_every_blob(node: ClusterNode) -> int:
    """Flip one byte in the middle of every blob the (stopped) node holds for others."""
    store = Store.open(node.home / "store")
    try:
        blobs = [(b, loc) for b, loc in store.iter_blobs() if loc and loc.kind is BlobKind.FOREIGN]
        for _, loc in blobs:
            with open(store.pack_path(loc.pack), "r+b") as f:
                f.seek(loc.offset + loc.stored_len // 2)
                byte = f.read(1)
                f.seek(loc.offset + loc.stored_len // 2)
                f.write(bytes([byte[0] ^ 0x20]))
    finally:
        store.close()
    return len(blobs)


def _score(node: ClusterNode, peer: ClusterNode) -> int:
    rows = {p["peer_id"]: p for p in node.json("peers", "list")}
    return int(rows[peer.peer_id]["score"])


def test_a_peer_serving_corrupt_blobs_poisons_nobody_and_heals_itself(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b, c = cluster.add_nodes(["A", "B", "C"])
    cluster.store_for(a, [b, c])
    cluster.start_all()
    src = write_tree(tmp_path / "src", files=10, size=300_000)
    (src / "small.txt").write_text("not poisoned\n")
    snap = a.json("backup", src)["snapshot_id"]
    a.run("status", "--wait-replicated", "2", "--timeout", "60")

    c.stop()
    assert _flip_every_blob(c) > 10
    assert c.run("check", "--read-data", expect=1).returncode == 1
    c.daemon_wrap = (sys.executable, str(LYING_PEER))
    c.start()

    kit = tmp_path / "a.kit"
    a.run("key", "export", "--out", kit)
    a.stop()
    shutil.rmtree(a.home)
    a.run("recover", "--kit", kit, "--home", a.home, "--peer", b.full_addr, "--peer", c.full_addr)
    a.start()
    target = tmp_path / "restored"
    a.run("restore", snap, "--target", target)
    out = target / str(src.resolve()).lstrip("/")
    for f in sorted(src.iterdir()):
        assert (out / f.name).read_bytes() == f.read_bytes(), f.name
    a.run("check", "--read-data")
    assert metric_value(a.metrics(), REJECTED) > 0, "C was never asked: the test proves nothing"
    assert _score(a, c) < 0 <= _score(a, b)
    b.run("check", "--read-data")

    # C, the real node again, finds its damage and heals it from A.
    c.stop()
    c.daemon_wrap = ()
    c.start()
    assert c.run("check", "--read-data", expect=1).returncode == 1
    c.run("check", "--read-data", "--repair")
    c.run("check", "--read-data")
