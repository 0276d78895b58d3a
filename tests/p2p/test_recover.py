"""An owner that lost its disk gets its snapshots back from its holders; quotas hold."""

from __future__ import annotations

import shutil

from node.ops import ForgetOptions, run_forget
from node.repo import BlobKind, HomePaths, list_snapshots, load_tree, open_repository
from protocol import blob_id_of, decode_manifest
from tests.p2p.helpers import link, repo_at, running, snapshot_of


async def test_owner_recovers_snapshot_records_and_blobs_from_a_holder(tmp_path):
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = snapshot_of(repo_a, tmp_path / "src", files=4)
    [original] = list_snapshots(repo_a)
    gone = snapshot_of(repo_a, tmp_path / "src2", files=1, seed=5)
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b)
            ann = await a.announce(snap)
            await a.announce(gone)
            # A snapshot forgotten on purpose stays forgotten after a recovery.
            run_forget(repo_a, ForgetOptions(snapshots=[str(gone)]))
            await b.sync()
            assert a.replicas()[snap.hex()] == [b.peer_id]
        repo_a.close()
        # The disk is lost; a new home gets the same keys back (what the recovery kit holds).
        old, new = HomePaths(tmp_path / "a"), HomePaths(tmp_path / "a2")
        repo_at(new.root).close()
        for path in ("master_key", "identity_key"):
            shutil.copyfile(getattr(old, path), getattr(new, path))
        shutil.rmtree(old.root)
        repo_a = open_repository(new, "test passphrase")
        assert list_snapshots(repo_a) == []
        async with running(repo_a) as a2, running(repo_b) as b:
            link(a2, b)
            assert await a2.recover_snapshots() == [snap]
            assert await a2.recover_snapshots() == []  # idempotent
            # The manifest is back too: we serve it again (to a holder healing its copy).
            assert blob_id_of(a2.state.manifest(ann.manifest_id) or b"") == ann.manifest_id
            [back] = list_snapshots(repo_a)
            assert (back.id, back.tree, back.time_ns, back.paths) == (
                original.id,
                original.tree,
                original.time_ns,
                original.paths,
            )
            # The manifest (held by b as a foreign blob) lists everything to fetch back.
            got = await a2.fetch_blobs([ann.manifest_id], kind=BlobKind.FOREIGN, owner=a2.peer_id)
            assert got.fetched == 1
            ids = decode_manifest(repo_a.store.read(ann.manifest_id)).blob_ids
            assert ids[0] == snap
            got = await a2.fetch_blobs([back.tree], kind=BlobKind.TREE)
            assert got.fetched == 1 and not got.missing
            assert load_tree(repo_a, back.tree)  # opens with the recovered keys
    finally:
        repo_a.close()
        repo_b.close()


async def test_holder_stops_at_the_owner_quota(tmp_path):
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = snapshot_of(repo_a, tmp_path / "src", files=6)
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b, quota=20_000)
            await a.announce(snap)
            await b.sync()
            a_raw = a.host.peer_id.to_bytes()
            assert b.state.qstate(a_raw, 1).state == "quota_exceeded"
            assert b.state.held_for(a_raw)[1] <= 20_000
            assert a.replicas()[snap.hex()] == []
    finally:
        repo_a.close()
        repo_b.close()
