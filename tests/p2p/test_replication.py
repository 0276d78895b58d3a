"""Announcements and replication with real hosts on loopback, in one trio run."""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY

from node.ops import hold_snapshot
from node.p2p import MeshState, RepoBlobSource, owner_view
from node.repo import BlobKind, check_store
from protocol import BlobId, decode_manifest
from tests.p2p.helpers import know, link, repo_at, running, snapshot_of, wait_until


class CorruptingSource(RepoBlobSource):
    """A hostile holder: serves every blob it has with one bit flipped."""

    def read(self, blob_id: BlobId) -> bytes | None:
        data = super().read(blob_id)
        if data is None:
            return None
        return bytes([data[0] ^ 1]) + data[1:]


def _rejected() -> float:
    return REGISTRY.get_sample_value("shadowvault_p2p_blobs_rejected_total") or 0.0


def _manifest_ids(state, ann) -> list[BlobId]:
    return list(decode_manifest(state.manifest(ann.manifest_id)).blob_ids)


async def test_snapshot_replicates_to_two_holders_with_receipts_despite_a_corrupt_peer(tmp_path):
    repos = {n: repo_at(tmp_path / n) for n in ("a", "b", "c", "m")}
    snap = snapshot_of(repos["a"], tmp_path / "src", files=8)
    try:
        async with (
            running(repos["a"]) as a,
            running(repos["b"]) as b,
            running(repos["c"]) as c,
            running(repos["m"]) as m_honest,
        ):
            # m first replicates honestly, then is restarted as a corrupting holder.
            link(a, m_honest)
            await a.announce(snap)
            await m_honest.sync()
            assert m_honest.state.qstate(a.host.peer_id.to_bytes(), 1).state == "complete"
        source = CorruptingSource(repos["m"], MeshState(repos["m"].store))
        async with (
            running(repos["a"]) as a,
            running(repos["b"]) as b,
            running(repos["c"]) as c,
            running(repos["m"], blobs=source) as m,
        ):
            for holder in (b, c, m):
                link(a, holder)
            # b and c know m, and ask it first: the owner is asked last.
            know(b, m)
            know(c, m)
            rejected = _rejected()
            for holder in (b, c):
                await holder.sync()  # pull the announcement from a, then replicate
            a_raw = a.host.peer_id.to_bytes()
            [ann] = list(a.state.announcements(a_raw))
            ids = _manifest_ids(a.state, ann)
            assert ids[0] == snap  # the sealed snapshot record is part of the copy
            for holder, repo in ((b, repos["b"]), (c, repos["c"])):
                q = holder.state.qstate(a_raw, 1)
                assert q.state == "complete" and q.receipt_sent
                for blob_id in ids:
                    assert repo.store.read(blob_id) == repos["a"].store.read(blob_id)
                    assert repo.store.location(blob_id).kind is BlobKind.FOREIGN
                assert holder.scores.get(m.host.peer_id.to_bytes()) < 0
                report = check_store(repo, read_data=True)
                assert not report.problems
            assert _rejected() > rejected
            replicas = a.replicas()
            assert sorted(replicas[snap.hex()]) == sorted(
                [b.peer_id, c.peer_id, m.peer_id]
            )  # m's receipt came from its honest run
    finally:
        for r in repos.values():
            r.close()


async def test_replication_resumes_after_restart_and_pulls_on_reconnect(tmp_path):
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap1 = snapshot_of(repo_a, tmp_path / "src1", files=3, seed=1)
    snap2 = snapshot_of(repo_a, tmp_path / "src2", files=3, seed=2)
    try:
        async with running(repo_a) as a:
            # b was offline: both announcements are made before it ever connects.
            first = await a.announce(snap1)
            second = await a.announce(snap2)
            assert (first.seq, second.seq) == (1, 2)
            assert (await a.announce(snap1)).seq == 1  # announcing again is idempotent
            async with running(repo_b) as b:
                link(a, b)
                await b.sync()
                a_raw = a.host.peer_id.to_bytes()
                assert [q.state for _, _, q in b.state.queued()] == ["complete", "complete"]
            async with running(repo_b) as b:  # a restart finds its state and fetches nothing
                link(a, b)
                received = REGISTRY.get_sample_value("shadowvault_p2p_blobs_received_total")
                await b.sync()
                assert REGISTRY.get_sample_value("shadowvault_p2p_blobs_received_total") == received
            assert sorted(a.replicas()) == sorted([snap1.hex(), snap2.hex()])
            assert all(v == [b.peer_id] for v in a.replicas().values())
            assert b.state.last_seq(a_raw) == 2
    finally:
        repo_a.close()
        repo_b.close()


async def test_holder_pulls_and_replicates_on_connect_without_a_sync_round(tmp_path):
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = snapshot_of(repo_a, tmp_path / "src", files=3)
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b)
            await a.announce(snap)  # pushed to b: b replicates in the background
            await wait_until(lambda: a.replicas().get(snap.hex()) == [b.peer_id])
            snap2 = snapshot_of(repo_a, tmp_path / "src2", files=2, seed=9)
        # b offline while a announces; b's next connection pulls and replicates.
        async with running(repo_a) as a:
            await a.announce(snap2)
            async with running(repo_b) as b:
                link(a, b)
                await b.connect(a.peer_id)
                await wait_until(lambda: a.replicas().get(snap2.hex()) == [b.peer_id])
    finally:
        repo_a.close()
        repo_b.close()


async def test_announcement_reaches_an_indirect_holder_by_gossip(tmp_path):
    """a - b - c in a line: a does not know c, yet c learns a's announcement at once
    (relayed by b) and replicates it from b."""
    repos = {n: repo_at(tmp_path / n) for n in ("a", "b", "c")}
    snap = snapshot_of(repos["a"], tmp_path / "src", files=3)
    try:
        async with (
            running(repos["a"]) as a,
            running(repos["b"]) as b,
            running(repos["c"]) as c,
        ):
            link(a, b)
            c.add_peer(a.peer_id, store_for=True)  # c stores for a, with no address for it
            know(b, c)
            await b.connect(a.peer_id)
            await c.connect(b.peer_id)
            await wait_until(lambda: _subscribed(a, b) and _subscribed(b, c))
            await a.announce(snap)
            a_raw = a.host.peer_id.to_bytes()
            await wait_until(lambda: b.state.qstate(a_raw, 1) is not None)
            await wait_until(lambda: c.state.qstate(a_raw, 1) is not None)
            # c's first try may come before b is complete; its retry fetches from b.
            await wait_until(lambda: c.state.qstate(a_raw, 1).state == "complete")
            assert repos["c"].store.read(snap) == repos["a"].store.read(snap)
            # A hold notice travels the same way.
            hold_snapshot(repos["a"], str(snap), time.time_ns() + 86400 * 10**9)
            assert await a.push_new() == 1
            await wait_until(lambda: owner_view(c.state, a_raw).held(snap, time.time()))
    finally:
        for r in repos.values():
            r.close()


def _subscribed(x, y) -> bool:
    """Both see each other in the announcement topic."""
    from node.p2p._gossip import ANNOUNCE_TOPIC

    px = x._gossip._pubsub
    py = y._gossip._pubsub
    return y.host.peer_id in px.peer_topics.get(ANNOUNCE_TOPIC, set()) and (
        x.host.peer_id in py.peer_topics.get(ANNOUNCE_TOPIC, set())
    )


class CountingSource(RepoBlobSource):
    """An honest holder that counts the blobs it serves."""

    served = 0

    def read(self, blob_id: BlobId) -> bytes | None:
        data = super().read(blob_id)
        if data is not None:
            self.served += 1
        return data


async def test_a_new_holder_fetches_batches_from_several_holders_at_once(tmp_path):
    repos = {n: repo_at(tmp_path / n) for n in ("a", "b", "c", "d")}
    # ~700 small chunks: three batches of 256 ids
    snap = snapshot_of(repos["a"], tmp_path / "src", files=36, seed=3)
    try:
        async with running(repos["a"]) as a, running(repos["b"]) as b, running(repos["c"]) as c:
            link(a, b)
            link(a, c)
            await a.announce(snap)
            await b.sync()
            await c.sync()
        counters = {n: CountingSource(repos[n], MeshState(repos[n].store)) for n in ("a", "b", "c")}
        async with (
            running(repos["a"], blobs=counters["a"]) as a,
            running(repos["b"], blobs=counters["b"]) as b,
            running(repos["c"], blobs=counters["c"]) as c,
            running(repos["d"]) as d,
        ):
            link(a, d)
            know(d, b)
            know(d, c)
            await d.sync()
            a_raw = a.host.peer_id.to_bytes()
            [ann] = list(a.state.announcements(a_raw))
            ids = _manifest_ids(a.state, ann)
            assert len(ids) > 2 * 256
            assert d.state.qstate(a_raw, 1).state == "complete"
            assert all(repos["d"].store.has(i) for i in ids)
            assert counters["b"].served > 0 and counters["c"].served > 0
            assert counters["a"].served == 0  # the owner is asked last: holders sufficed
    finally:
        for r in repos.values():
            r.close()


class OverlapSource(RepoBlobSource):
    """A holder that serves only if two requests are in progress at once: the first two
    stored blobs it is asked for each wait (in the server's worker threads) for the
    other; requests sent one at a time break the barrier and get an error."""

    def __init__(self, repo, state) -> None:
        super().__init__(repo, state)
        self.barrier = threading.Barrier(2, timeout=30)
        self._lock = threading.Lock()
        self._waits = 0

    def read(self, blob_id: BlobId) -> bytes | None:
        if self._repo.store.has(blob_id):  # not the manifest, which comes first, alone
            with self._lock:
                wait = self._waits < 2
                self._waits += 1
            if wait:
                self.barrier.wait()
        return super().read(blob_id)


async def test_a_single_holder_serves_several_requests_at_once(tmp_path):
    """With one source, batches still go out side by side (a stream each), so the source
    reads the next reply while the last is on the wire."""
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = snapshot_of(repo_a, tmp_path / "src", files=36, seed=4)
    source = OverlapSource(repo_a, MeshState(repo_a.store))
    try:
        async with running(repo_a, blobs=source) as a, running(repo_b) as b:
            link(a, b)
            await a.announce(snap)
            await b.sync()
            assert not source.barrier.broken
            assert b.state.qstate(a.host.peer_id.to_bytes(), 1).state == "complete"
    finally:
        repo_a.close()
        repo_b.close()


async def test_config_sections_drive_the_mesh(tmp_path):
    """The node config's p2p and peers sections become settings and trusted peers; two
    meshes configured this way replicate (request window, timeout, concurrency applied)."""
    from node.config import load_config_text
    from node.p2p import open_mesh, settings_from_config

    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = snapshot_of(repo_a, tmp_path / "src", files=2)
    text = """
p2p:
  listen: [/ip4/127.0.0.1/tcp/0]
  dht: false
  request_window: 30s
  request_timeout: 10s
  fetch_concurrency: 2
"""
    cfg = load_config_text(text).config
    settings = settings_from_config(cfg.p2p, sync_interval=3600)
    assert (settings.request_window, settings.request_timeout, settings.fetch_concurrency) == (
        30.0,
        10.0,
        2,
    )
    try:
        async with open_mesh(repo_a, settings) as a, open_mesh(repo_b, settings) as b:
            peers_b = load_config_text(
                text
                + f"peers:\n  - id: {a.peer_id}\n    addrs: [{a.addrs[0].rsplit('/p2p/', 1)[0]}]\n"
                "    store_for: true\n    quota: 10MiB\n"
            ).config.peers
            [rec] = b.add_configured_peers(peers_b)
            assert (rec.store_for, rec.store_at, rec.quota) == (True, False, 10 * 1024 * 1024)
            a.add_peer(b.peer_id, addrs=b.addrs, store_at=True)
            await a.announce(snap)
            await b.sync()
            assert a.replicas()[snap.hex()] == [b.peer_id]
    finally:
        repo_a.close()
        repo_b.close()


async def test_blobs_stored_but_not_counted_before_a_crash_are_counted_on_the_next_pass(tmp_path):
    """A crash between a holder's write and its accounting leaves blobs stored but not
    counted as held for their owner; the next pass over that snapshot counts them."""
    from node.p2p import QState
    from node.p2p._state import OWNED_PREFIX

    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = snapshot_of(repo_a, tmp_path / "src", files=4)
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b)
            await a.announce(snap)
            await wait_until(lambda: a.replicas().get(snap.hex()) == [b.peer_id])
            a_raw = a.host.peer_id.to_bytes()
            count, held = b.state.held_for(a_raw)
            assert count > 0 and held > 0
            # The crash: the accounting records are gone, the blobs and the queue entry
            # (not yet complete) are left.
            keys = [k for k, _ in repo_b.store.iter_records(OWNED_PREFIX + a_raw)]
            repo_b.store.put_records([(k, None) for k in keys])
            b.state.queue(a_raw, 1, QState())
            assert b.state.held_for(a_raw) == (0, 0)
            await b.replicator.run_pass()
            assert b.state.held_for(a_raw) == (count, held)
    finally:
        repo_a.close()
        repo_b.close()
