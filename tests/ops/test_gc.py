"""gc on a real store: what goes, what stays, pins, holds, sparse packs, and a running backup."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import node.repo._marks as marks_module
import node.repo._store as store_module
from node.ops import BackupOptions, RestoreOptions, run_backup, run_check, run_restore
from node.repo import (
    BlobKind,
    Repository,
    Sealer,
    SnapshotHeld,
    collect_garbage,
    delete_snapshot_record,
    list_snapshots,
    release_hold,
    resolve_snapshot,
    set_hold,
    walk_references,
)
from node.repo._pack import FILE_HEADER, scan_pack
from tests.ops.helpers import make_repo, tree_state


@pytest.fixture
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    # 64 KiB packs: a few files spread over many packs, so gc deletes and rewrites some.
    monkeypatch.setattr(store_module, "PACK_TARGET_SIZE", 64 * 1024)


def _fill(src: Path, seed: int, files: int = 6) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (src / f"f{i}.bin").write_bytes(os.urandom(12_000 + (seed * 7919 + i * 104729) % 20_000))


def _backup(repo: Repository, src: Path, tags: tuple[str, ...] = ()) -> str:
    return run_backup(repo, BackupOptions(paths=[src], tags=tags)).snapshot_id


def _refs(repo: Repository, snap_id: str) -> set[bytes]:
    snap = resolve_snapshot(repo, snap_id)
    return {bytes(r.blob_id) for r in walk_references(repo, [snap])}


def _restore_equals(repo: Repository, snap_id: str, expected: dict, target: Path) -> None:
    summary = run_restore(repo, resolve_snapshot(repo, snap_id), RestoreOptions(target=target))
    assert not summary.errors
    got = tree_state(target / Path(*Path(expected["__root__"]).parts[1:]))
    assert {k: v[:4] for k, v in got.items()} == expected["state"]


def _state(src: Path) -> dict:
    return {"__root__": str(src), "state": {k: v[:4] for k, v in tree_state(src).items()}}


@pytest.mark.parametrize("mark_limit", [None, 3], ids=["marks-in-memory", "marks-spilled"])
def test_gc_removes_only_forgotten_data(
    tmp_path: Path, small_packs: None, monkeypatch: pytest.MonkeyPatch, mark_limit: int | None
) -> None:
    if mark_limit is not None:  # past this many ids the mark set moves to its LevelDB
        monkeypatch.setattr(marks_module, "MEMORY_LIMIT", mark_limit)
    src = tmp_path / "src"
    repo = make_repo(tmp_path / "home")
    try:
        _fill(src, 1)
        old = _backup(repo, src)
        old_refs = _refs(repo, old)
        _fill(src, 2)  # every file new
        new = _backup(repo, src)
        expected = _state(src)
        new_refs = _refs(repo, new)
        gone = old_refs - new_refs
        assert gone

        dry = collect_garbage(repo, dry_run=True)
        assert dry.blobs_removed == 0 and dry.blobs_total == dry.blobs_live

        delete_snapshot_record(repo, resolve_snapshot(repo, old).id)  # type: ignore[arg-type]
        dry = collect_garbage(repo, dry_run=True)
        assert dry.blobs_removed == len(gone)
        assert all(repo.store.has(b) for b in gone)  # a dry run changes nothing

        packs_before = set(repo.store.pack_files())
        report = collect_garbage(repo)
        assert (report.marks_spilled > 0) == (mark_limit is not None)
        assert report.blobs_removed == len(gone)
        assert report.bytes_removed > 0
        assert report.packs_deleted > 0
        assert report.bytes_freed > 0
        assert not any(repo.store.has(b) for b in gone)
        assert all(repo.store.has(b) for b in new_refs)
        assert set(repo.store.pack_files()) != packs_before
        # Wholly dead packs are read for their headers only, and their dedup records go
        # with them: a record outlives its blob only while the blob's entry is in a kept
        # (mostly live, not rewritten) pack.
        stale = {blob for _, blob in repo.store.iter_records(b"d") if not repo.store.has(blob)}
        assert stale <= _ids_in_packs(repo)
        _restore_equals(repo, new, expected, tmp_path / "r1")
        check = run_check(repo, read_data=True)
        assert check.ok, [str(p) for p in check.problems]
    finally:
        repo.close()

    # Swept blobs stay gone after a re-open (recovery must not re-index them).
    repo = make_repo_reopen(tmp_path / "home")
    try:
        assert not repo.store.recovery.reindexed
        assert not any(repo.store.has(b) for b in gone)
        assert run_check(repo, read_data=True).ok
        _restore_equals(repo, new, expected, tmp_path / "r2")
        assert collect_garbage(repo).blobs_removed == 0
    finally:
        repo.close()


def _ids_in_packs(repo: Repository) -> set[bytes]:
    ids = set()
    for no, path in repo.store.pack_files().items():
        fd = os.open(path, os.O_RDONLY)
        try:
            end = os.fstat(fd).st_size
            ids |= {bytes(e.blob_id) for e in scan_pack(fd, FILE_HEADER.size, end, verify=False)}
        finally:
            os.close(fd)
    return ids


def _stale_dedup_records(repo: Repository) -> int:
    return sum(1 for _, blob in repo.store.iter_records(b"d") if not repo.store.has(blob))


def make_repo_reopen(root: Path) -> Repository:
    from node.repo import HomePaths, open_repository

    return open_repository(HomePaths(root), "test passphrase")


def test_gc_rewrites_sparse_packs_and_keeps_live_blobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One big pack holding two snapshots' data side by side: forgetting one leaves it
    # about half live, so it is rewritten, not deleted.
    monkeypatch.setattr(store_module, "PACK_TARGET_SIZE", 8 * 1024 * 1024)
    src_a, src_b = tmp_path / "a", tmp_path / "b"
    repo = make_repo(tmp_path / "home")
    try:
        _fill(src_a, 3, files=10)
        _fill(src_b, 4, files=4)
        a = _backup(repo, src_a)
        b = _backup(repo, src_b)
        expected = _state(src_b)
    finally:
        repo.close()  # close the pack being appended to: only closed packs are rewritten
    repo = make_repo_reopen(tmp_path / "home")
    try:
        delete_snapshot_record(repo, resolve_snapshot(repo, a).id)  # type: ignore[arg-type]
        stale_before = _stale_dedup_records(repo)
        report = collect_garbage(repo, rewrite_below=0.9)
        assert report.packs_rewritten == 1
        # The swept blobs' dedup records went with the rewritten pack.
        assert stale_before == 0 and report.blobs_removed > 0
        assert _stale_dedup_records(repo) == 0
        assert sum(1 for _ in repo.store.iter_records(b"d")) < report.blobs_total
        assert report.bytes_copied > 0
        assert report.bytes_freed > 0
        assert run_check(repo, read_data=True).ok
        _restore_equals(repo, b, expected, tmp_path / "r")
    finally:
        repo.close()
    repo = make_repo_reopen(tmp_path / "home")
    try:
        check = run_check(repo, read_data=True)
        assert check.ok and check.unindexed_entries == 0
    finally:
        repo.close()


def test_gc_keeps_extra_roots_and_drops_unlisted_foreign_blobs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "home")
    try:
        with repo.store.writer() as w:
            kept = w.put(os.urandom(500), BlobKind.FOREIGN, 0)
            dropped = w.put(os.urandom(500), BlobKind.FOREIGN, 0)
        report = collect_garbage(repo, extra_roots=iter([bytes(kept)]))
        assert report.extra_roots == 1
        assert repo.store.has(kept)
        assert not repo.store.has(dropped)
    finally:
        repo.close()


def test_run_gc_never_collects_data_kept_for_other_owners(tmp_path: Path) -> None:
    from node.ops import run_gc

    repo = make_repo(tmp_path / "home")
    try:
        with repo.store.writer() as w:
            foreign = [w.put(os.urandom(500), BlobKind.FOREIGN, 0) for _ in range(3)]
            own_garbage = w.put(os.urandom(500), BlobKind.DATA, 500)
        report = run_gc(repo)
        assert all(repo.store.has(b) for b in foreign)
        assert not repo.store.has(own_garbage)
        assert report.extra_roots == 3
    finally:
        repo.close()


def test_gc_spares_blobs_pinned_by_a_write_session(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "home")
    try:
        plain = b"some chunk that no snapshot references" * 10
        dedup = repo.dedup_key(plain)
        with repo.store.writer() as w:
            written = w.put(Sealer(3).seal(plain, repo.keys.data), BlobKind.DATA, len(plain), dedup)
        # A later session finds it through the dedup index: pinned until the session ends.
        with repo.store.writer() as w:
            assert w.lookup_dedup(dedup) == written
            report = collect_garbage(repo)
            assert report.spared_pinned == 1
            assert repo.store.has(written)
        report = collect_garbage(repo)
        assert report.blobs_removed == 1
        assert not repo.store.has(written)
        with repo.store.writer() as w:
            assert w.lookup_dedup(dedup) is None  # its dedup record went with it
    finally:
        repo.close()


def test_gc_spares_new_blobs_of_a_running_session(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "home")
    try:
        with repo.store.writer() as w:
            blob = w.put(os.urandom(600), BlobKind.FOREIGN, 0)
            w.flush()  # committed, not yet referenced: above the session's watermark
            assert collect_garbage(repo).spared_pinned == 1
            assert repo.store.has(blob)
        assert collect_garbage(repo).blobs_removed == 1
    finally:
        repo.close()


def test_gc_spares_a_stored_blob_put_again_by_a_running_session(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "home")
    try:
        data = os.urandom(700)
        with repo.store.writer() as w:
            blob = w.put(data, BlobKind.FOREIGN, 0)
        with repo.store.writer() as w:
            assert w.put(data, BlobKind.FOREIGN, 0) == blob  # stored already: pinned by id
            assert w.blobs_written == 0
            assert collect_garbage(repo).spared_pinned == 1
            assert repo.store.has(blob)
        assert collect_garbage(repo).blobs_removed == 1
    finally:
        repo.close()


def test_gc_grace_spares_recent_packs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "home")
    try:
        with repo.store.writer() as w:
            blob = w.put(os.urandom(300), BlobKind.FOREIGN, 0)
        report = collect_garbage(repo, grace_s=3600)
        assert report.spared_grace == 1 and repo.store.has(blob)
        assert collect_garbage(repo).blobs_removed == 1
    finally:
        repo.close()


def test_hold_blocks_forget_until_released(tmp_path: Path) -> None:
    import time

    src = tmp_path / "src"
    _fill(src, 5, files=1)
    repo = make_repo(tmp_path / "home")
    try:
        snap = resolve_snapshot(repo, _backup(repo, src))
        assert snap.id is not None
        set_hold(repo.store, snap.id, time.time_ns() + 10**12, "legal")
        with pytest.raises(SnapshotHeld, match="held until"):
            delete_snapshot_record(repo, snap.id)
        with pytest.raises(Exception, match="extended, not shortened"):
            set_hold(repo.store, snap.id, time.time_ns() + 10**9)
        assert release_hold(repo.store, snap.id) is not None
        delete_snapshot_record(repo, snap.id)
        assert list_snapshots(repo) == []
    finally:
        repo.close()


def test_gc_beside_running_backups_then_everything_restores(
    tmp_path: Path, small_packs: None
) -> None:
    """Backups in a thread (each changing half the files); forget + gc in a loop beside."""
    src = tmp_path / "src"
    _fill(src, 0)
    repo = make_repo(tmp_path / "home")
    states: dict[str, dict] = {}
    errors: list[BaseException] = []
    done = threading.Event()

    def backups() -> None:
        try:
            for i in range(1, 13):
                for j in range(0, 6, 2):
                    (src / f"f{(i + j) % 6}.bin").write_bytes(os.urandom(9_000 + i * 311 + j))
                snap_id = _backup(repo, src)
                states[snap_id] = _state(src)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=backups)
    worker.start()
    removed = rounds = 0
    try:
        while not done.is_set() or rounds < 2:
            snaps = list_snapshots(repo)
            # Every other round forgets everything, the running backup's parent included
            # (its unchanged files keep the parent's chunks: the parent pin must hold).
            keep = 1 if done.is_set() or rounds % 2 else 0
            for s in snaps[: len(snaps) - keep]:
                assert s.id is not None
                delete_snapshot_record(repo, s.id)
            removed += collect_garbage(repo).blobs_removed
            rounds += 1
        worker.join()
        assert not errors, errors
        assert removed > 0
        # One more backup on top of what gc left (its parent may be gone), then gc again.
        final = _backup(repo, src)
        states[final] = _state(src)
        collect_garbage(repo)
        check = run_check(repo, read_data=True)
        assert check.ok, [str(p) for p in check.problems]
        kept = list_snapshots(repo)
        assert final in {str(s.id) for s in kept}
        for n, s in enumerate(kept):
            _restore_equals(repo, str(s.id), states[str(s.id)], tmp_path / f"r{n}")
    finally:
        done.wait()
        worker.join()
        repo.close()


def test_gc_stops_before_deleting_when_a_kept_tree_is_unreadable(tmp_path: Path) -> None:
    import time

    from node.repo import GcError, Snapshot, save_snapshot

    repo = make_repo(tmp_path / "home")
    try:
        plain = b"\x93not a tree"
        with repo.store.writer() as w:
            garbage = w.put(os.urandom(400), BlobKind.FOREIGN, 0)
            tree = w.put(Sealer(3).seal(plain, repo.keys.metadata), BlobKind.TREE, len(plain))
            w.flush()
            save_snapshot(repo, w, Snapshot(time.time_ns(), "h", ["/x"], tree))
        with pytest.raises(GcError, match=f"tree {tree.short} .* gc deleted nothing"):
            collect_garbage(repo)
        assert repo.store.has(garbage)
    finally:
        repo.close()


def test_gc_takes_pack_lengths_only_after_the_appender_settles(tmp_path: Path) -> None:
    # A pack the appender has just closed may still have its last batch in flight; gc
    # must not take its old length (it would delete the pack with those blobs in it).
    repo = make_repo(tmp_path / "home")
    try:
        with repo.store.writer() as w:
            blob = w.put(os.urandom(900), BlobKind.FOREIGN, 0)  # appended, not committed
            assert repo.store.raw_get(b"b" + bytes(blob)) is None
            packs, open_pack = repo.store.settled_packs()
            loc = repo.store.location(blob)
            assert repo.store.raw_get(b"b" + bytes(blob)) is not None
            assert loc.pack == open_pack
            assert packs[loc.pack] >= loc.offset + loc.stored_len
    finally:
        repo.close()


def test_gc_keeps_a_pack_an_unreadable_index_record_may_place_a_blob_in(
    tmp_path: Path, small_packs: None
) -> None:
    # A damaged blob record cannot say where its blob is: every pack may hold it, so a
    # pack the sweep found without a live blob is not deleted unread while one exists.
    src = tmp_path / "src"
    repo = make_repo(tmp_path / "home")
    try:
        _fill(src, 1)
        old = _backup(repo, src)
        _fill(src, 2)
        _backup(repo, src)
        old_id = resolve_snapshot(repo, old).id
        gone = _refs(repo, old) - _refs(repo, resolve_snapshot(repo, "latest").id.hex())  # type: ignore[union-attr]
        # Not the snapshot record itself: the test must still be able to forget it.
        victim = sorted(gone - {bytes(old_id)})[0]  # type: ignore[arg-type]
        victim_pack = repo.store.location(victim).pack
        repo.store.put_records([(b"b" + victim, b"damaged")])  # no longer decodes
        delete_snapshot_record(repo, old_id)  # type: ignore[arg-type]
        report = collect_garbage(repo)
        assert report.packs_deleted > 0  # other dead packs still go
        assert victim_pack in repo.store.pack_files()
        assert victim in _ids_in_packs(repo)
    finally:
        repo.close()


def test_gc_marks_every_tree_across_prefetch_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mark reads trees breadth first, a few at a time (announced to the kernel
    # together): batches of 3 here, across levels, with identical directories (one tree
    # id, reached from several parents) landing in the same batch.
    import node.repo._gc as gc_module

    monkeypatch.setattr(gc_module, "_PREFETCH", 3)
    src = tmp_path / "src"
    for d in range(7):
        for sub in ("same", f"own{d}"):
            leaf = src / f"d{d}" / sub / "deeper"
            leaf.mkdir(parents=True)
            body = b"shared" if sub == "same" else os.urandom(3000)
            (leaf / "f.bin").write_bytes(body)
    repo = make_repo(tmp_path / "home")
    try:
        kept = _backup(repo, src)
        expected = _state(src)
        for d in range(7):
            (src / f"d{d}" / f"own{d}" / "deeper" / "f.bin").write_bytes(os.urandom(3000))
        forgotten = _backup(repo, src)
        gone = _refs(repo, forgotten) - _refs(repo, kept)
        delete_snapshot_record(repo, resolve_snapshot(repo, forgotten).id)  # type: ignore[arg-type]
        report = collect_garbage(repo)
        assert report.blobs_removed == len(gone) > 7
        assert all(repo.store.has(b) for b in _refs(repo, kept))
        _restore_equals(repo, kept, expected, tmp_path / "r")
    finally:
        repo.close()


def test_prefetch_is_only_a_hint(tmp_path: Path, small_packs: None) -> None:
    src = tmp_path / "src"
    repo = make_repo(tmp_path / "home")
    try:
        _fill(src, 3)
        refs = _refs(repo, _backup(repo, src))
        locs = [repo.store.location(b) for b in refs]
        assert len({loc.pack for loc in locs}) > 1
        gone = locs[0].pack
        os.unlink(repo.store.pack_files()[gone])  # a pack that cannot be opened is skipped
        repo.store.forget_pack_fd(gone)
        repo.store.prefetch(locs)
        for blob_id, loc in zip(refs, locs, strict=True):
            if loc.pack != gone:
                assert repo.load(blob_id, loc) == repo.load(blob_id)
    finally:
        repo.close()
