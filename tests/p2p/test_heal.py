"""Restore from peers and healing, with real repositories and real hosts on loopback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from node.ops import BackupOptions, RestoreOptions, run_backup, run_check, run_restore
from node.p2p import MeshState, fetch_snapshot, heal_problems, missing_blobs
from node.repo import (
    BlobKind,
    HomePaths,
    Repository,
    list_snapshots,
    load_snapshot,
    open_repository,
    walk_references,
)
from node.repo._pack import entry_header
from protocol import BlobId
from tests.ops.helpers import tree_state
from tests.p2p.helpers import link, repo_at, running
from tests.p2p.test_replication import CorruptingSource


def corpus(src: Path) -> BlobId | None:
    """Nested directories of random files, ~1.5 MB: a few hundred small chunks."""
    for d in range(3):
        sub = src / f"d{d}" / "inner"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(4):
            (src / f"d{d}" / f"top{i}.bin").write_bytes(os.urandom(40_000 + 9_000 * i))
            (sub / f"f{i}.bin").write_bytes(os.urandom(50_000 + 11_000 * i))
    (src / "empty").mkdir(exist_ok=True)
    (src / "small.txt").write_bytes(b"hello")
    return None


def backup(repo: Repository, src: Path) -> BlobId:
    corpus(src)
    summary = run_backup(repo, BackupOptions(paths=[src]))
    return BlobId(bytes.fromhex(summary.snapshot_id))


def rebuild(tmp_path: Path, repo: Repository, name: str) -> Repository:
    """The disk is lost; a new home with the same keys (what the recovery kit holds)."""
    old = HomePaths(repo.store.root.parent)
    repo.close()
    new = HomePaths(tmp_path / name)
    repo_at(new.root).close()
    for path in ("master_key", "identity_key"):
        shutil.copyfile(getattr(old, path), getattr(new, path))
    shutil.rmtree(old.root)
    return open_repository(new, "test passphrase")


def restored_equal(repo: Repository, snap: BlobId, src: Path, target: Path) -> None:
    summary = run_restore(repo, load_snapshot(repo, snap), RestoreOptions(target=target))
    assert summary.errors == []
    assert tree_state(target / str(src).lstrip("/")) == tree_state(src)


def flip(repo: Repository, blob_id: BlobId) -> None:
    loc = repo.store.location(blob_id)
    with open(repo.store.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + loc.stored_len // 2)
        byte = f.read(1)
        f.seek(loc.offset + loc.stored_len // 2)
        f.write(bytes([byte[0] ^ 0x40]))


async def test_rebuilt_owner_gets_every_blob_back_from_one_holder(tmp_path):
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    src = tmp_path / "src"
    snap = backup(repo_a, src)
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b)
            await a.announce(snap)
            await b.sync()
            assert a.replicas()[snap.hex()] == [b.peer_id]
        repo_a = rebuild(tmp_path, repo_a, "a2")
        async with running(repo_a) as a2, running(repo_b) as b:
            link(a2, b)
            assert await a2.recover_snapshots() == [snap]
            [back] = list_snapshots(repo_a)
            # Only the tree root is known before the network: it is missing.
            assert [(m.blob_id, m.kind) for m in missing_blobs(repo_a, back)] == [
                (back.tree, BlobKind.TREE)
            ]
            levels = []
            report = await fetch_snapshot(a2, repo_a, snap, progress=lambda r: levels.append(r))
            assert report.ok and report.replaced == 0
            assert report.fetched > 100 and report.by_peer == {b.peer_id: report.fetched}
            assert len(levels) >= 4  # root, d*, inner, and the data of the last level
            assert missing_blobs(repo_a, back) == []
            assert not run_check(repo_a, read_data=True).problems
            restored_equal(repo_a, snap, src, tmp_path / "restored")
            # The fetched chunks and trees got their dedup records: backing up the same
            # files again stores only the trees of the parents of src (their mtimes moved).
            again_summary = run_backup(repo_a, BackupOptions(paths=[src]))
            assert again_summary.bytes_processed > 1_000_000
            assert again_summary.bytes_added < 2_000
            # (e) everything is local now: nothing is fetched.
            again = await fetch_snapshot(a2, repo_a, snap)
            assert (again.fetched, again.replaced, again.by_peer) == (0, 0, {})
    finally:
        repo_a.close()
        repo_b.close()


async def test_restore_from_two_holders_uses_both_and_names_lost_files(tmp_path):
    repos = {n: repo_at(tmp_path / n) for n in ("a", "b", "c")}
    src = tmp_path / "src"
    snap = backup(repos["a"], src)
    try:
        async with running(repos["a"]) as a, running(repos["b"]) as b, running(repos["c"]) as c:
            link(a, b)
            link(a, c)
            await a.announce(snap)
            await b.sync()
            await c.sync()
            assert sorted(a.replicas()[snap.hex()]) == sorted([b.peer_id, c.peer_id])
        repos["a"] = repo_a = rebuild(tmp_path, repos["a"], "a2")
        async with running(repo_a) as a2, running(repos["b"]) as b, running(repos["c"]) as c:
            link(a2, b)
            link(a2, c)
            assert await a2.recover_snapshots() == [snap]
            report = await fetch_snapshot(a2, repo_a, snap)
            assert report.ok
            assert set(report.by_peer) == {b.peer_id, c.peer_id}
            assert all(n > 0 for n in report.by_peer.values())
            assert sum(report.by_peer.values()) == report.fetched
            restored_equal(repo_a, snap, src, tmp_path / "restored")
        # A chunk that no peer holds any more (b's copy rots, c is gone) is named with
        # its file; everything else still comes back.
        victim = next(
            ref.blob_id
            for ref in walk_references(repo_a, [load_snapshot(repo_a, snap)])
            if ref.path.endswith(b"d1/inner/f2.bin")
        )
        flip(repos["b"], victim)
        repos["a"] = repo_a = rebuild(tmp_path, repo_a, "a3")
        async with running(repo_a) as a3, running(repos["b"]) as b:
            link(a3, b)
            await a3.recover_snapshots()
            report = await fetch_snapshot(a3, repo_a, snap)
            assert [m.blob_id for m in report.unavailable] == [victim]
            assert report.affected == [str(src / "d1" / "inner" / "f2.bin")]
            assert report.fetched > 100
    finally:
        for r in repos.values():
            r.close()


async def test_check_finds_flipped_bytes_and_healing_replaces_them_from_a_holder(tmp_path):
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    src = tmp_path / "src"
    snap = backup(repo_a, src)
    back = load_snapshot(repo_a, snap)
    chunks = [(b, loc) for b, loc in repo_a.store.iter_blobs() if loc and loc.kind is BlobKind.DATA]
    (data, data_loc), (lost, _), (lost2, _) = chunks[:3]
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b)
            await a.announce(snap)
            await b.sync()
            flip(repo_a, data)
            flip(repo_a, back.tree)
            # A lost index record, hidden from check under the corrupt root tree.
            repo_a.store.put_records([(b"b" + bytes(lost), None)])
            report = run_check(repo_a, read_data=True)
            assert {(p.what, p.blob) for p in report.problems} == {
                ("corrupt_blob", data.hex()),
                ("corrupt_blob", back.tree.hex()),
            }
            healed = await heal_problems(a, repo_a, report.problems)
            assert not healed.unavailable and not healed.skipped
            # Two copies replaced, and the chunk the healed root revealed missing fetched.
            assert healed.replaced == 2 and healed.fetched == 1
            assert set(healed.healed) == {data, back.tree, lost}
            assert repo_a.store.location(data).plain_len == data_loc.plain_len
            assert repo_a.store.location(lost).kind is BlobKind.DATA
            # A lost index record that check names: only the snapshots say it is data.
            repo_a.store.put_records([(b"b" + bytes(lost2), None)])
            report = run_check(repo_a, read_data=True)
            assert [(p.what, p.blob) for p in report.problems] == [("missing_blob", lost2.hex())]
            healed2 = await heal_problems(a, repo_a, report.problems)
            assert healed2.healed == [lost2] and healed2.fetched == 1
            assert repo_a.store.location(lost2).kind is BlobKind.DATA
            assert healed.by_peer == {b.peer_id: 3}
            assert not run_check(repo_a, read_data=True).problems
            restored_equal(repo_a, snap, src, tmp_path / "restored")
        # The healed copies survive a restart (they are indexed, durable).
        repo_a.close()
        repo_a = open_repository(HomePaths(tmp_path / "a"), "test passphrase")
        assert not run_check(repo_a, read_data=True).problems
    finally:
        repo_a.close()
        repo_b.close()


async def test_a_holder_serving_corrupt_blobs_is_not_trusted(tmp_path):
    repos = {n: repo_at(tmp_path / n) for n in ("a", "b", "m")}
    src = tmp_path / "src"
    snap = backup(repos["a"], src)
    try:
        async with running(repos["a"]) as a, running(repos["b"]) as b, running(repos["m"]) as m:
            link(a, b)
            link(a, m)
            await a.announce(snap)
            await b.sync()
            await m.sync()
        repos["a"] = repo_a = rebuild(tmp_path, repos["a"], "a2")
        bad = CorruptingSource(repos["m"], MeshState(repos["m"].store))
        async with (
            running(repo_a) as a2,
            running(repos["b"]) as b,
            running(repos["m"], blobs=bad) as m,
        ):
            link(a2, b)
            link(a2, m)
            await a2.recover_snapshots()
            # The corrupting holder is asked first.
            a2.scores.penalise(b.host.peer_id.to_bytes(), 1)
            report = await fetch_snapshot(a2, repo_a, snap)
            assert report.ok
            assert report.by_peer == {b.peer_id: report.fetched}
            assert a2.scores.get(m.host.peer_id.to_bytes()) < 0
            assert not run_check(repo_a, read_data=True).problems
            restored_equal(repo_a, snap, src, tmp_path / "restored")
    finally:
        for r in repos.values():
            r.close()


def test_a_replacement_cut_off_by_a_crash_is_adopted_on_open(tmp_path):
    repo = repo_at(tmp_path / "a")
    backup(repo, tmp_path / "src")
    blob, loc = next((b, loc) for b, loc in repo.store.iter_blobs() if loc)
    good = repo.store.read(blob)
    last = max(repo.store.pack_files())
    path = repo.store.pack_path(last)
    repo.close()
    # What healing appends before its index commit; then the crash.
    with open(path, "ab") as f:
        f.write(entry_header(blob, None, len(good), loc.plain_len, loc.kind))
        f.write(good)
    repo = open_repository(HomePaths(tmp_path / "a"), "test passphrase")
    try:
        # The old copy still reads back: the tail copy is a stale duplicate.
        assert repo.store.location(blob) == loc
    finally:
        repo.close()
    flip_at = loc
    with open(repo.store.pack_path(flip_at.pack), "r+b") as f:
        f.seek(flip_at.offset + 3)
        b = f.read(1)
        f.seek(flip_at.offset + 3)
        f.write(bytes([b[0] ^ 1]))
    # Again, with the indexed copy corrupt: the appended good copy wins on open.
    with open(path, "ab") as f:
        f.write(entry_header(blob, None, len(good), loc.plain_len, loc.kind))
        f.write(good)
    repo = open_repository(HomePaths(tmp_path / "a"), "test passphrase")
    try:
        assert repo.store.location(blob) != loc
        assert repo.store.read(blob) == good
        assert not run_check(repo, read_data=True).problems
    finally:
        repo.close()


async def test_a_holder_heals_its_corrupt_copies_of_an_owners_blobs(tmp_path):
    """Another owner's blobs (FOREIGN) come back from that owner, and are not counted
    against its quota a second time."""
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = backup(repo_a, tmp_path / "src")
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b)
            await a.announce(snap)
            await b.sync()
            owner = a.host.peer_id.to_bytes()
            held = b.state.held_for(owner)
            foreign = [i for i, loc in repo_b.store.iter_blobs() if loc.kind is BlobKind.FOREIGN]
            for blob_id in foreign[:3]:
                flip(repo_b, blob_id)
            report = run_check(repo_b, read_data=True)
            assert {(p.what, p.blob) for p in report.problems} == {
                ("corrupt_blob", i.hex()) for i in foreign[:3]
            }
            healed = await heal_problems(b, repo_b, report.problems)
            assert not healed.unavailable and not healed.skipped
            assert sorted(healed.healed) == sorted(foreign[:3]) and healed.replaced == 3
            assert healed.by_peer == {a.peer_id: 3}
            assert not run_check(repo_b, read_data=True).problems
            assert b.state.held_for(owner) == held
            assert all(repo_b.store.location(i).kind is BlobKind.FOREIGN for i in foreign[:3])
    finally:
        repo_a.close()
        repo_b.close()
