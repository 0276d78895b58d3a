"""Three real nodes on loopback: A backs up, B and C store for A (issue 5, integration).

One cluster serves the whole module (a node costs ~5 s to make and start on a busy
machine); the tests run in file order and each leaves it as the next one expects: the
recovery test, which deletes A's home, comes last.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration.cluster import Cluster, held_for, metric_value, write_tree

pytestmark = pytest.mark.slow

REFUSED = "shadowvault_p2p_requests_refused_total"
RECEIVED = "shadowvault_p2p_blob_bytes_received_total"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("mesh"))
    try:
        a, b, c = cluster.add_nodes(["A", "B", "C"])
        cluster.store_for(a, [b, c])
        cluster.start_all()
        yield cluster
    finally:
        problems = cluster.stop_all()
    assert not problems, problems


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """What one test leaves for a later one (snapshot lists, the source tree)."""
    return {}


def _holders(cluster: Cluster) -> set[str]:
    return set(cluster.holders_of_latest(cluster["A"]))


def test_backup_is_complete_on_both_holders(
    mesh: Cluster, state: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, b, c = mesh["A"], mesh["B"], mesh["C"]
    src = write_tree(tmp_path_factory.mktemp("src") / "data", files=4, size=300_000)
    (src / "small.txt").write_text("hello mesh\n")
    state["src"] = src
    state["snapshot"] = a.json("backup", src)["snapshot_id"]
    a.run("status", "--wait-replicated", "2", "--timeout", "60")
    status = a.json("status")
    assert status["daemon"] is True
    assert set(status["snapshots"][-1]["holders"]) == {b.peer_id, c.peer_id}
    assert held_for(b, a) > 1_200_000
    assert held_for(c, a) > 1_200_000
    for node in (a, b, c):
        node.run("check", "--read-data")


def test_waiting_for_more_holders_than_exist_times_out(mesh: Cluster) -> None:
    proc = mesh["A"].run("status", "--wait-replicated", "3", "--timeout", "5", expect=1)
    assert "timed out after 5s" in proc.stderr
    assert "complete on 2 of 3 peers" in proc.stderr


def test_an_unauthorised_node_gets_nothing(mesh: Cluster) -> None:
    """D knows A and B (and trusts them) but neither knows D: every request is refused."""
    a, b = mesh["A"], mesh["B"]
    d = mesh.add_node("D")
    d.run("peers", "add", a.peer_id, "--addr", a.addr, "--store-for")
    d.run("peers", "add", b.peer_id, "--addr", b.addr, "--store-for", "--store-at")
    refused_before = metric_value(b.metrics(), REFUSED)
    d.start()
    d.api("POST", "/api/v1/sync")
    assert metric_value(b.metrics(), REFUSED) > refused_before
    assert held_for(d, a) == 0
    assert not d.json("status")["snapshots"]
    d.run("check", "--read-data")
    packs = list((d.home / "store" / "packs").glob("*.pack"))
    assert sum(p.stat().st_size for p in packs) < 1024, "D stored blobs it was never given"
    d.stop()


def _bytes_received(node_url: str, token: str) -> float:
    try:
        text = httpx.get(
            node_url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).text
    except httpx.HTTPError:
        return 0.0
    return metric_value(text, RECEIVED)


def test_holder_killed_mid_transfer_catches_up_after_restart(
    mesh: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, c = mesh["A"], mesh["C"]
    src = write_tree(tmp_path_factory.mktemp("big") / "data", files=12, size=4 * 1024 * 1024)
    before = _bytes_received(c.api_url, c.token())
    a.json("backup", src)
    # Kill C as soon as it has started receiving (or after 20 s in any case).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _bytes_received(c.api_url, c.token()) <= before:
        time.sleep(0.05)
    c.stop(signal.SIGKILL)
    assert c.peer_id not in set(mesh.holders_of_latest(a))
    c.start()
    a.run("status", "--wait-replicated", "2", "--timeout", "90")
    # Not `held_for(c, a)`: blobs C stored before the kill but had not yet recorded as
    # held for A are kept, never fetched again, and so never counted (an under-count
    # the fetcher accepts; see the report of this branch).
    c.run("check", "--read-data")


def test_a_peer_added_while_stopped_is_dialled_at_start(mesh: Cluster) -> None:
    b = mesh["B"]
    e = mesh.add_node("E")
    e.run("peers", "add", b.peer_id, "--addr", b.addr, "--store-at")
    e.start(readd_peers=False)
    try:
        e.api("POST", "/api/v1/sync")
        peers = {p["peer_id"]: p for p in e.json("peers", "list")}
        assert peers[b.peer_id]["connected"]
    finally:
        e.stop()


def test_a_forget_reaches_the_holders_and_their_gc_collects_it(
    mesh: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, b = mesh["A"], mesh["B"]
    src = write_tree(tmp_path_factory.mktemp("brief") / "data", files=2, size=200_000)
    snap = a.json("backup", src)["snapshot_id"]
    a.run("status", "--wait-replicated", "2", "--timeout", "60")
    held = held_for(b, a)
    # Before the forget reaches B, B's gc keeps everything (nothing is collectable).
    assert b.json("gc")["foreign"]["collectable"] == 0
    assert snap in a.json("forget", snap)["removed"]  # pushed to B and C at once
    deadline = time.monotonic() + 60
    while (report := b.json("gc"))["foreign"]["forgotten"] == 0:
        assert time.monotonic() < deadline, "the forget never reached B"
        time.sleep(0.5)
    assert report["blobs_removed"] > 0 and held_for(b, a) < held
    b.run("check", "--read-data")


def test_recover_a_lost_node_from_its_peers(
    mesh: Cluster, state: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, b, c = mesh["A"], mesh["B"], mesh["C"]
    before = a.json("snapshots")
    assert len(before) == 2
    kit = tmp_path_factory.mktemp("kit") / "a.kit"
    a.run("key", "export", "--out", kit)
    assert a.stop() == 0
    shutil.rmtree(a.home)
    a.run("recover", "--kit", kit, "--home", a.home, "--peer", b.full_addr, "--peer", c.full_addr)
    after = a.json("snapshots")
    assert [s["id"] for s in after] == [s["id"] for s in before]
    assert after == before
    state["recovered"] = True


def test_recovered_node_restores_from_peers(
    mesh: Cluster, state: dict[str, Any], tmp_path: Path
) -> None:
    a = mesh["A"]
    assert state.get("recovered"), "the recovery test did not pass"
    a.start()
    target = tmp_path / "restored"
    a.run("restore", state["snapshot"], "--target", target)
    src: Path = state["src"]
    out = target / str(src.resolve()).lstrip("/")
    for f in sorted(src.iterdir()):
        assert (out / f.name).read_bytes() == f.read_bytes()
