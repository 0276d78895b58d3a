"""Drills from peers in one process: real repositories, real hosts on loopback."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from node.ops import DrillError, DrillOptions, run_drill
from node.p2p import OffsiteCopy, fetch_offsite_copy
from node.repo import Repository, list_snapshots, walk_references
from protocol import BlobId
from tests.p2p.helpers import link, repo_at, running
from tests.p2p.test_heal import backup, flip


def every_blob(repo: Repository) -> set[bytes]:
    return {bytes(r.blob_id) for r in walk_references(repo, list_snapshots(repo))}


async def test_offsite_copy_comes_from_the_holders_and_restores_alone(tmp_path: Path) -> None:
    repo_a, repo_b, repo_c = (repo_at(tmp_path / n) for n in ("a", "b", "c"))
    src = tmp_path / "src"
    snap = backup(repo_a, src)
    wanted = every_blob(repo_a)
    try:
        async with running(repo_a) as a, running(repo_b) as b, running(repo_c) as c:
            link(a, b)
            link(a, c)
            await a.announce(snap)
            await b.sync()
            await c.sync()
            assert sorted(a.replicas()[snap.hex()]) == sorted([b.peer_id, c.peer_id])

            copy = await fetch_offsite_copy(a, repo_a, snap, tmp_path / "scratch")
            try:
                assert copy.report.ok and copy.snapshot is not None
                assert sorted(copy.peers) == sorted([b.peer_id, c.peer_id])
                # Exactly the snapshot's blobs, spread over both holders, sizes counted.
                assert {bytes(i) for i, _ in copy.repo.store.iter_blobs()} == wanted
                assert sum(copy.report.by_peer.values()) == len(wanted)
                assert set(copy.report.by_peer) == {b.peer_id, c.peer_id}
                assert sum(copy.report.bytes_by_peer.values()) == copy.report.bytes
                assert copy.repo.store.root != repo_a.store.root
            finally:
                copy.discard()
            assert not (tmp_path / "scratch").exists()

            # Every blob of the owner's own store damaged: a drill from peers still
            # passes (it reads none of them), a local one cannot even load the snapshot.
            for blob in wanted:
                flip(repo_a, BlobId(blob))

            def fetch(snapshot_id: BlobId, root: Path) -> OffsiteCopy:
                copy: OffsiteCopy = trio.from_thread.run(
                    partial(fetch_offsite_copy, a, repo_a, snapshot_id, root)
                )
                return copy

            drills = tmp_path / "drills"
            drills.mkdir()
            opts = DrillOptions(scratch_parent=drills)
            result = await trio.to_thread.run_sync(
                partial(run_drill, repo_a, opts, from_peers=fetch)
            )
            assert result.ok, [c for c in result.checks if not c.ok]
            assert result.source == "peers" and result.snapshot_id == snap.hex()
            assert result.files > 10 and result.verified == result.files
            assert {p["peer_id"] for p in result.peers} == {b.peer_id, c.peer_id}
            assert sum(p["blobs"] for p in result.peers) == len(wanted)
            assert list(drills.iterdir()) == []  # scratch store and files removed
            with pytest.raises(DrillError, match="damaged"):
                await trio.to_thread.run_sync(partial(run_drill, repo_a, opts))
    finally:
        for repo in (repo_a, repo_b, repo_c):
            repo.close()
