"""Holders honour their owners' forgets, holds and leases (real hosts on loopback).

The owner's notices travel in its signed stream (push, or pull "since N"); the holder's
gc keeps what that stream and the owner's lease say, and nothing else decides it.
"""

from __future__ import annotations

import time

import pytest

from node.ops import ForgetOptions, hold_snapshot, release_snapshot, run_forget, run_gc
from node.p2p import MeshState, PeerRefused, record_notices
from node.repo import Repository, list_audit
from protocol import (
    Ack,
    BlobId,
    Notice,
    PushAnnouncement,
    WireError,
    decode_manifest,
    decode_owner_record,
)
from tests.p2p.helpers import link, repo_at, running, snapshot_of

DAY_NS = 86400 * 10**9


def _blobs_of(holder: Repository, owner: bytes, snap: BlobId) -> set[bytes]:
    """Every blob the holder's copy of ``snap`` has (its manifest's ids and the manifest)."""
    state = MeshState(holder.store)
    [ann] = [a for a in state.announcements(owner) if a.snapshot_id == snap]
    ids = decode_manifest(holder.store.read(ann.manifest_id)).blob_ids
    return {bytes(ann.manifest_id), *map(bytes, ids)}


def _present(repo: Repository, ids: set[bytes]) -> int:
    return sum(repo.store.has(i) for i in ids)


async def test_holder_keeps_a_held_snapshot_through_a_forget_and_drops_it_after_release(tmp_path):
    ra, rb = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    s1 = snapshot_of(ra, tmp_path / "src1", files=4, seed=1)
    s2 = snapshot_of(ra, tmp_path / "src2", files=4, seed=2)
    try:
        async with running(ra) as a, running(rb) as b:
            link(a, b)
            await a.announce(s1)
            await a.announce(s2)
            await b.sync()
            a_raw = a.host.peer_id.to_bytes()
            only1 = _blobs_of(rb, a_raw, s1) - _blobs_of(rb, a_raw, s2)
            only2 = _blobs_of(rb, a_raw, s2) - _blobs_of(rb, a_raw, s1)
            assert only1 and only2 and _present(rb, only1 | only2) == len(only1 | only2)
            held_before = b.state.held_for(a_raw)

            # The owner holds s1 and forgets s2; until the holder hears of it, its gc
            # keeps everything.
            hold_snapshot(ra, str(s1), time.time_ns() + DAY_NS, "legal")
            run_forget(ra, ForgetOptions(snapshots=[str(s2)]))
            report = run_gc(rb)
            assert report.foreign["collectable"] == 0
            assert _present(rb, only1 | only2) == len(only1 | only2)

            # The notices arrive by push; now s2's own blobs go, s1's stay.
            assert await a.push_new() == 2
            report = run_gc(rb)
            assert report.foreign["forgotten"] == 1 and report.foreign["held"] == 1
            assert _present(rb, only2) == 0
            assert _present(rb, only1) == len(only1)
            assert b.state.held_for(a_raw)[0] == held_before[0] - len(only2)  # quota freed
            q = [q.state for o, _, q in b.state.queued() if o == a_raw]
            assert sorted(q) == ["complete", "forgotten"]

            # An owner that forgets a snapshot while it holds it (a bug, or a hostile
            # owner): the holder keeps it until the hold's date regardless.
            record_notices(ra, a.state, "forget", [s1])
            await a.push_new()
            run_gc(rb)
            assert _present(rb, only1) == len(only1)

            # Released: the forget (already there) now takes effect.
            release_snapshot(ra, str(s1))
            await a.push_new()
            report = run_gc(rb)
            assert _present(rb, only1) == 0
            assert report.foreign["held"] == 0
            assert not b.state.held_for(a_raw)[0] or _present(rb, _blobs_of(rb, a_raw, s1)) == 0
    finally:
        ra.close()
        rb.close()


async def test_an_offline_holder_catches_up_the_hold_and_forget_by_pull(tmp_path):
    ra, rb = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    s1 = snapshot_of(ra, tmp_path / "src1", files=3, seed=1)
    s2 = snapshot_of(ra, tmp_path / "src2", files=3, seed=2)
    try:
        async with running(ra) as a, running(rb) as b:
            link(a, b)
            await a.announce(s1)
            await a.announce(s2)
            await b.sync()
            a_raw = a.host.peer_id.to_bytes()
        only1 = _blobs_of(rb, a_raw, s1) - _blobs_of(rb, a_raw, s2)
        only2 = _blobs_of(rb, a_raw, s2) - _blobs_of(rb, a_raw, s1)
        # While b is down: a holds s1 (seq 3), forgets s2 (seq 4) and announces s3
        # (seq 5), which reaches b alone, as by gossip: a gap the pull must fill.
        hold_snapshot(ra, str(s1), time.time_ns() + DAY_NS)
        run_forget(ra, ForgetOptions(snapshots=[str(s2)]))
        s3 = snapshot_of(ra, tmp_path / "src3", files=2, seed=3)
        async with running(ra) as a:
            ann5 = await a.announce(s3)
        b_state = MeshState(rb.store)
        assert ann5.seq == 5 and b_state.put_announcement(ann5)
        assert b_state.contiguous_seq(a_raw) == 2 and b_state.last_seq(a_raw) == 5
        async with running(ra) as a, running(rb) as b:
            link(a, b)
            await b.sync()
            assert b.state.contiguous_seq(a_raw) == 5
            report = run_gc(rb)
        assert report.foreign["forgotten"] == 1 and report.foreign["held"] == 1
        assert _present(rb, only2) == 0 and _present(rb, only1) == len(only1)
    finally:
        ra.close()
        rb.close()


async def test_forged_tampered_and_other_owners_forgets_are_refused(tmp_path):
    ra, rb, rc = (repo_at(tmp_path / n) for n in "abc")
    s1 = snapshot_of(ra, tmp_path / "src1", files=3, seed=1)
    sc = snapshot_of(rc, tmp_path / "srcc", files=1, seed=9)
    try:
        async with running(ra) as a, running(rb) as b, running(rc) as c:
            link(a, b)
            link(c, b)  # b stores for c too: c is a trusted peer, but not a's owner
            await a.announce(s1)
            await c.announce(sc)
            await b.sync()
            a_raw = a.host.peer_id.to_bytes()
            mine = _blobs_of(rb, a_raw, s1)

            # c signs a forget of a's snapshot under its own name: it is c's stream, so
            # it forgets nothing of a's.
            [own] = record_notices(rc, c.state, "forget", [sc])
            assert await c.push_new() == 1
            forged = Notice.create(
                rc.identity, seq=own.seq + 1, kind="forget", snapshots=(s1,), time=int(time.time())
            )
            await c.client.request(b.host.peer_id, PushAnnouncement(forged.raw), Ack)
            # c cannot put a's name on a notice: the signature is checked against the
            # owner named inside, and a pushed record must be the pusher's own.
            body_swapped = forged.raw.replace(rc_raw := c.host.peer_id.to_bytes(), a_raw)
            assert rc_raw in forged.raw
            with pytest.raises(WireError):
                decode_owner_record(body_swapped)
            with pytest.raises(PeerRefused) as refused:
                await c.client.request(b.host.peer_id, PushAnnouncement(body_swapped), Ack)
            assert refused.value.code.value == "bad_signature"
            a_forget = Notice.create(
                ra.identity, seq=9, kind="forget", snapshots=(s1,), time=int(time.time())
            )
            with pytest.raises(PeerRefused) as refused:
                await c.client.request(b.host.peer_id, PushAnnouncement(a_forget.raw), Ack)
            assert refused.value.code.value == "not_authorised"
            # A tampered notice (one bit of the snapshot id) fails its signature.
            tampered = bytearray(
                Notice.create(
                    ra.identity, seq=2, kind="forget", snapshots=(s1,), time=int(time.time())
                ).raw
            )
            tampered[tampered.index(bytes(s1)) + 3] ^= 1
            with pytest.raises(WireError):
                decode_owner_record(bytes(tampered))
            # An owner b does not store for: not kept at all.
            b.remove_peer(c.peer_id)
            late = Notice.create(
                rc.identity, seq=own.seq + 2, kind="forget", snapshots=(sc,), time=int(time.time())
            )
            assert not b.replicator.accept(late)

            report = run_gc(rb)
            assert report.foreign["forgotten"] == 1  # c's own sc, nothing of a's
            assert _present(rb, mine) == len(mine)
            assert b.state.announcement(a_raw, 2) is None
    finally:
        for r in (ra, rb, rc):
            r.close()


async def test_a_lapsed_lease_collects_unheld_data_and_keeps_held(tmp_path):
    ra, rb = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    s1 = snapshot_of(ra, tmp_path / "src1", files=3, seed=1)
    s2 = snapshot_of(ra, tmp_path / "src2", files=3, seed=2)
    try:
        async with running(ra) as a, running(rb) as b:
            link(a, b)
            await a.announce(s1)
            await a.announce(s2)
            hold_snapshot(ra, str(s1), time.time_ns() + DAY_NS)
            await b.sync()
            a_raw = a.host.peer_id.to_bytes()
            assert b.state.last_heard(a_raw) > 0  # a's pull and records renewed it
        only1 = _blobs_of(rb, a_raw, s1) - _blobs_of(rb, a_raw, s2)
        only2 = _blobs_of(rb, a_raw, s2) - _blobs_of(rb, a_raw, s1)
        # Within the lease nothing goes, and a dry run changes nothing either way.
        assert run_gc(rb, owner_lease_s=3600).foreign["lapsed"] == []
        time.sleep(1.1)  # the lease below is shorter than the silence since
        assert run_gc(rb, owner_lease_s=0).foreign["lapsed"] == []  # 0s: never lapses
        dry = run_gc(rb, dry_run=True, owner_lease_s=0.5)
        assert dry.foreign["lapsed"] == [a.peer_id] and _present(rb, only2) == len(only2)
        report = run_gc(rb, owner_lease_s=0.5)
        assert report.foreign["lapsed"] == [a.peer_id]
        assert _present(rb, only2) == 0 and _present(rb, only1) == len(only1)
        gc_entries = [e for e in list_audit(rb) if e.action == "gc"]
        assert gc_entries[-1].details["owners_lapsed"] == [a.peer_id]
    finally:
        ra.close()
        rb.close()


async def test_refused_requests_and_peer_changes_are_audited(tmp_path):
    ra, rb, rd = (repo_at(tmp_path / n) for n in "abd")
    try:
        async with running(ra) as a, running(rb) as b, running(rd) as d:
            link(a, b)
            b.add_peer(a.peer_id, addrs=a.addrs, store_for=True, quota=10**9)  # quota change
            b.add_peer(a.peer_id, addrs=a.addrs, store_for=True, quota=10**9)  # no change
            d.add_peer(b.peer_id, addrs=b.addrs, store_at=True)  # b does not know d
            for _ in range(5):
                with pytest.raises(PeerRefused):
                    await d.client.request(b.host.peer_id, PushAnnouncement(b"\x80"), Ack)
            b.remove_peer(a.peer_id)
        entries = list_audit(rb)
        actions = [e.action for e in entries]
        assert actions.count("peer_add") == 1 and actions.count("peer_change") == 1
        assert actions.count("peer_remove") == 1
        change = next(e for e in entries if e.action == "peer_change")
        assert change.details["before"]["quota"] == 0 and change.details["after"]["quota"] == 10**9
        refused = [e for e in entries if e.action == "refused"]
        # Five refusals (and d's own pull on connect) of one peer for one reason in one
        # minute: one entry with the count (two if a minute boundary fell in between).
        assert sum(e.details["count"] for e in refused) >= 5
        assert {e.details["source"] for e in refused} == {d.peer_id}
        assert {e.details["reason"] for e in refused} == {"not_authorised"}
        assert len(refused) <= 2  # at most a minute boundary apart
    finally:
        for r in (ra, rb, rd):
            r.close()


def test_a_hold_set_before_the_announcement_follows_it(tmp_path):
    from node.p2p._replicate import build_announcement

    ra = repo_at(tmp_path / "a")
    try:
        s1 = snapshot_of(ra, tmp_path / "src1", files=1, seed=1)
        until_ns = time.time_ns() + DAY_NS
        hold_snapshot(ra, str(s1), until_ns)  # not announced yet: no notice
        state = MeshState(ra.store)
        assert state.owners() == []
        ann = build_announcement(ra, state, s1)
        records = list(state.records(ann.owner))
        assert [type(r).__name__ for r in records] == ["Announcement", "Notice"]
        notice = records[1]
        assert isinstance(notice, Notice) and notice.kind == "hold" and notice.seq == 2
        assert notice.snapshots == (s1,) and notice.until * 10**9 >= until_ns
        assert build_announcement(ra, state, s1) == ann  # idempotent: nothing more
        assert len(list(state.records(ann.owner))) == 2
    finally:
        ra.close()


def test_held_owners_finds_every_owner_by_seeking(tmp_path):
    repo = repo_at(tmp_path / "n")
    try:
        state = MeshState(repo.store)
        owners = sorted(bytes([0, 0x24]) + bytes([i]) * 36 for i in (1, 2, 255))
        for i, owner in enumerate(owners):
            state.record_held(owner, [(bytes([j, i]) * 16, 10) for j in range(50)])
        assert state.held_owners() == owners
        state.drop_held(owners[1], [bytes([j, 1]) * 16 for j in range(50)])
        assert state.held_owners() == [owners[0], owners[2]]
    finally:
        repo.close()
