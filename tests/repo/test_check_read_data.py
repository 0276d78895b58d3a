"""check's pack scan: which copy of a blob is read, slices, swept blobs, and big indexes.

The pack scan of check (headers only, or every blob with ``--read-data``) matches each
pack entry to its index record from an in-memory map of the index, built for a group of
packs at a time; a store with more records than one group holds is checked group by
group. Each test runs with the default
group size and with groups of two records, so both ways are exercised on real stores.
"""

from __future__ import annotations

import struct
from pathlib import Path

import plyvel
import pytest

from node.repo import Subset, check_store
from node.repo import _check_data as check_module

ENTRY_HEADER_SIZE = 80  # node/repo/_pack.py: the header written before each blob


@pytest.fixture(params=["one_group", "groups_of_2"])
def groups(request, monkeypatch) -> str:
    if request.param == "groups_of_2":
        monkeypatch.setattr(check_module, "_GROUP_RECORDS", 2)
    return str(request.param)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_index(home, edit) -> None:
    db = plyvel.DB(str(home.store / "index"), create_if_missing=False)
    try:
        edit(db)
    finally:
        db.close()


def _three_packs(repo, write_blobs, open_repo, home):
    """Three sessions, so three packs, of 3 blobs each; returns (repo, blobs per pack)."""
    per_pack = []
    for seed in range(3):
        per_pack.append(write_blobs(repo, 3, seed=seed, size=1500))
        repo.close()
        repo = open_repo(home)
    return repo, per_pack


def _append_copy(repo, home, blob_id, to_pack: int) -> int:
    """Append a second, unindexed copy of a blob's pack entry to another pack (as a gc
    that copied it and crashed before deleting the old pack leaves one); returns the
    offset of the copy's bytes."""
    store = repo.store
    loc = store.location(blob_id)
    src = store.pack_path(loc.pack).read_bytes()
    entry = src[loc.offset - ENTRY_HEADER_SIZE : loc.offset + loc.stored_len]
    path = store.pack_path(to_pack)
    at = path.stat().st_size
    repo.close()
    with path.open("ab") as f:
        f.write(entry)
    key = b"p" + struct.pack(">I", to_pack)
    _edit_index(home, lambda db: db.put(key, struct.pack("<Q", at + len(entry))))
    return at + ENTRY_HEADER_SIZE


def test_read_data_reads_every_indexed_blob_once(
    groups, repo, open_repo, home, write_blobs
) -> None:
    repo, _ = _three_packs(repo, write_blobs, open_repo, home)
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert (report.packs, report.blobs, report.blobs_read) == (3, 9, 9)
    assert report.unindexed_entries == 0


def test_read_data_skips_a_stale_copy_and_reads_the_indexed_one(
    groups, repo, open_repo, home, write_blobs
) -> None:
    repo, per_pack = _three_packs(repo, write_blobs, open_repo, home)
    victim = per_pack[0][1].blob_id
    loc = repo.store.location(victim)
    later = repo.store.location(per_pack[2][0].blob_id).pack
    copy_at = _append_copy(repo, home, victim, later)

    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert (report.blobs, report.blobs_read, report.unindexed_entries) == (9, 9, 0)

    # Damage to the stale copy is not the blob's damage; damage to the indexed one is.
    repo.close()
    _flip(repo.store.pack_path(later), copy_at + 10)
    repo = open_repo(home)
    assert check_store(repo, read_data=True).ok
    repo.close()
    _flip(repo.store.pack_path(loc.pack), loc.offset + 10)
    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert [(p.what, p.blob, p.pack) for p in report.problems] == [
        ("corrupt_blob", victim.hex(), loc.pack)
    ]


def test_read_data_reads_a_blob_whose_record_names_the_later_copy(
    groups, repo, open_repo, home, write_blobs
) -> None:
    repo, per_pack = _three_packs(repo, write_blobs, open_repo, home)
    victim = per_pack[0][2].blob_id
    old = repo.store.location(victim)
    later = repo.store.location(per_pack[2][0].blob_id).pack
    copy_at = _append_copy(repo, home, victim, later)
    record = struct.pack("<IQIIB", later, copy_at, old.stored_len, old.plain_len, old.kind)
    _edit_index(home, lambda db: db.put(b"b" + victim, record))
    _flip(repo.store.pack_path(later), copy_at + 10)  # the copy the index names is bad

    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert [(p.what, p.blob, p.pack) for p in report.problems] == [
        ("corrupt_blob", victim.hex(), later)
    ]
    assert (report.blobs_read, report.unindexed_entries) == (9, 0)


def test_read_data_counts_swept_entries_and_reports_missing_referenced_blobs(
    groups, repo, open_repo, home, write_blobs
) -> None:
    repo, per_pack = _three_packs(repo, write_blobs, open_repo, home)
    swept = per_pack[1][0].blob_id
    repo.close()
    _edit_index(home, lambda db: db.delete(b"b" + swept))

    repo = open_repo(home)
    kept = per_pack[2][2].blob_id
    report = check_store(
        repo, read_data=True, referenced=[(kept, "snapshot a"), (swept, "snapshot b")]
    )
    assert [(p.what, p.blob) for p in report.problems] == [("missing_blob", swept.hex())]
    assert "snapshot b" in report.problems[0].detail
    assert (report.blobs, report.blobs_read, report.unindexed_entries) == (8, 8, 1)


@pytest.mark.parametrize("change", ["shorter", "kind"])
def test_read_data_finds_a_record_that_disagrees_with_its_entry(
    groups, repo, open_repo, home, write_blobs, change
) -> None:
    repo, per_pack = _three_packs(repo, write_blobs, open_repo, home)
    victim = per_pack[1][1].blob_id
    loc = repo.store.location(victim)
    repo.close()
    stored_len = loc.stored_len - 1 if change == "shorter" else loc.stored_len
    kind = 2 if change == "kind" else int(loc.kind)  # a tree: opened with the wrong key
    record = struct.pack("<IQIIB", loc.pack, loc.offset, stored_len, loc.plain_len, kind)
    _edit_index(home, lambda db: db.put(b"b" + victim, record))

    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    expected = "index_mismatch" if change == "shorter" else "corrupt_blob"
    assert [(p.what, p.blob) for p in report.problems] == [(expected, victim.hex())]
    assert check_store(repo).problems == [p for p in report.problems if change == "shorter"]


def test_read_data_subsets_cover_every_blob_once(
    groups, repo, open_repo, home, write_blobs
) -> None:
    repo, per_pack = _three_packs(repo, write_blobs, open_repo, home)
    victim = per_pack[1][2].blob_id
    loc = repo.store.location(victim)
    repo.close()
    _flip(repo.store.pack_path(loc.pack), loc.offset + 5)

    repo = open_repo(home)
    read, found = 0, []
    for n in (1, 2, 3):
        report = check_store(repo, subset=Subset(n, 3))
        read += report.blobs_read
        found += [(n, p.what, p.blob) for p in report.problems]
    assert read == 9
    owner = next(n for n in (1, 2, 3) if Subset(n, 3).contains(victim))
    assert found == [(owner, "corrupt_blob", victim.hex())]


@pytest.mark.parametrize("read_data", [False, True], ids=["structure", "read-data"])
def test_check_names_swapped_records_beside_stale_and_swept_entries(
    groups, repo, open_repo, home, write_blobs, read_data
) -> None:
    repo, per_pack = _three_packs(repo, write_blobs, open_repo, home)
    a, b = per_pack[0][0].blob_id, per_pack[2][1].blob_id  # in different packs
    stale, swept = per_pack[1][0].blob_id, per_pack[1][2].blob_id
    _append_copy(repo, home, stale, repo.store.location(a).pack)

    def edit(db) -> None:
        rec_a, rec_b = db.get(b"b" + a), db.get(b"b" + b)
        db.put(b"b" + a, rec_b)
        db.put(b"b" + b, rec_a)
        db.delete(b"b" + swept)

    _edit_index(home, edit)
    repo = open_repo(home)
    report = check_store(repo, read_data=read_data)
    assert sorted((p.what, p.blob) for p in report.problems) == sorted(
        [("index_mismatch", a.hex()), ("index_mismatch", b.hex())]
    )
    assert (report.blobs, report.unindexed_entries) == (8, 1)
    # Neither the swapped pair (no entry is theirs) nor the swept or stale entries are read.
    assert report.blobs_read == (6 if read_data else 0)
