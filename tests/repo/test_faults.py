"""Damaged stores, full disks, wrong keys and busy stores: each fault is found and named.

Damage is done to the real files (packs, the LevelDB index, the key file) while the store
is closed, then the public API must report it precisely and never make it worse.
"""

from __future__ import annotations

import os
import random
import signal
import struct
from pathlib import Path

import msgpack
import plyvel
import pytest

from node.repo import (
    KDF_PROFILES,
    BlobKind,
    CorruptBlob,
    FormatError,
    HomeError,
    HomePaths,
    InitOptions,
    RepoError,
    Sealer,
    Store,
    StoreFull,
    StoreLocked,
    WrongPassphrase,
    change_passphrase,
    check_store,
    init_home,
    open_repository,
)

# The entry header in front of each blob in a pack (node/repo/_pack.py):
# blob id (32) || dedup key (32) || stored_len u32 || plain_len u32 || kind u8 || reserved (3)
# || crc32 u32. The offsets below point into each field.
HEADER_FIELDS = {"blob_id": 5, "stored_len": 64, "plain_len": 68, "kind": 72, "crc": 77}


def _codes(report) -> list[str]:
    return sorted(p.what for p in report.problems)


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _tree_state(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and (for files) bytes."""
    state: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        state[str(path.relative_to(root))] = (
            st.st_mode,
            path.read_bytes() if path.is_file() else None,
        )
    return state


def _locations(repo, blobs):
    return [repo.store.location(b.blob_id) for b in blobs]


def _entry_header_size(locs) -> int:
    """Bytes between one blob's end and the next blob's start in the same pack."""
    return locs[1].offset - (locs[0].offset + locs[0].stored_len)


# -- damaged packs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where", ["first_byte", "middle", "last_byte"], ids=["envelope", "ciphertext", "tag"]
)
def test_check_flipped_byte_in_blob_is_corrupt_blob(repo, open_repo, home, write_blobs, where):
    blobs = write_blobs(repo, 5, size=3000)
    victim = blobs[2]
    loc = repo.store.location(victim.blob_id)
    offset = {"first_byte": 0, "middle": loc.stored_len // 2, "last_byte": loc.stored_len - 1}
    repo.close()
    _flip(repo.store.pack_path(loc.pack), loc.offset + offset[where])

    repo = open_repo(home)
    assert repo.store.recovery.truncated == []  # committed bytes are never "repaired"
    quick = check_store(repo)
    assert quick.ok, [str(p) for p in quick.problems]  # the structure is intact
    full = check_store(repo, read_data=True)
    assert [(p.what, p.blob, p.pack) for p in full.problems] == [
        ("corrupt_blob", victim.blob_id.hex(), loc.pack)
    ]
    assert full.blobs_read == 5
    with pytest.raises(CorruptBlob) as info:
        repo.load(victim.blob_id)
    assert info.value.blob_id == victim.blob_id
    assert info.value.pack == loc.pack
    for blob in blobs[:2] + blobs[3:]:
        assert repo.load(blob.blob_id) == blob.plaintext


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("blob_id", {"damaged_pack", "index_mismatch"}),
        ("stored_len", {"damaged_pack", "index_mismatch"}),
        ("plain_len", {"damaged_pack"}),
        ("kind", {"damaged_pack"}),
        ("crc", {"damaged_pack"}),
    ],
    ids=["blob_id", "stored_len", "plain_len", "kind", "crc"],
)
def test_check_flipped_byte_in_entry_header_is_damaged_pack(
    repo, open_repo, home, write_blobs, field, expected
):
    blobs = write_blobs(repo, 4, size=1500)
    locs = _locations(repo, blobs)
    header = _entry_header_size(locs)
    repo.close()
    _flip(repo.store.pack_path(locs[2].pack), locs[2].offset - header + HEADER_FIELDS[field])

    repo = open_repo(home)
    report = check_store(repo)
    assert set(_codes(report)) == expected, [str(p) for p in report.problems]
    assert all(p.pack == locs[2].pack for p in report.problems)
    # Blobs before the damage are still whole.
    for blob in blobs[:2]:
        assert repo.load(blob.blob_id) == blob.plaintext


def test_check_read_data_reads_blobs_after_a_damaged_entry_header(
    repo, open_repo, home, write_blobs
):
    blobs = write_blobs(repo, 4, size=1500)
    locs = _locations(repo, blobs)
    header = _entry_header_size(locs)
    repo.close()
    pack = repo.store.pack_path(locs[1].pack)
    _flip(pack, locs[1].offset - header + HEADER_FIELDS["crc"])  # blob 1: header damaged
    _flip(pack, locs[2].offset + 40)  # blob 2: body damaged, header intact

    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert report.blobs_read == 4
    assert ("corrupt_blob", blobs[2].blob_id.hex()) in [(p.what, p.blob) for p in report.problems]


@pytest.mark.parametrize(
    ("cut", "lost"),
    [("mid_last_blob", 1), ("last_entry", 1), ("two_entries", 2), ("to_file_header", 4)],
    ids=lambda v: str(v),
)
def test_check_truncated_pack_is_truncated_pack_and_missing_blobs(
    repo, open_repo, home, write_blobs, cut, lost
):
    blobs = write_blobs(repo, 4, size=2500)
    locs = _locations(repo, blobs)
    header = _entry_header_size(locs)
    pack_no = locs[0].pack
    path = repo.store.pack_path(pack_no)
    size = {
        "mid_last_blob": locs[3].offset + 10,
        "last_entry": locs[3].offset - header,
        "two_entries": locs[2].offset - header,
        "to_file_header": locs[0].offset - header,
    }[cut]
    repo.close()
    os.truncate(path, size)

    repo = open_repo(home)
    assert path.stat().st_size == size  # open never hides lost committed bytes
    for read_data in (False, True):
        report = check_store(repo, read_data=read_data)
        problems = [str(p) for p in report.problems]
        truncated = [p for p in report.problems if p.what == "truncated_pack"]
        assert [p.pack for p in truncated] == [pack_no], problems
        missing = {p.blob for p in report.problems if p.what == "missing_blob"}
        assert missing == {b.blob_id.hex() for b in blobs[4 - lost :]}, problems
        # A cut inside an entry also shows as a damaged pack; nothing else is reported.
        assert set(_codes(report)) <= {"truncated_pack", "missing_blob", "damaged_pack"}
        assert all(p.pack == pack_no for p in report.problems), problems
    for blob in blobs[: 4 - lost]:
        assert repo.load(blob.blob_id) == blob.plaintext
    for blob in blobs[4 - lost :]:
        with pytest.raises(CorruptBlob, match="truncated"):
            repo.load(blob.blob_id)


def test_check_deleted_pack_is_missing_pack(repo, open_repo, home, write_blobs):
    first = write_blobs(repo, 3, seed=1)
    repo.close()
    repo = open_repo(home)
    second = write_blobs(repo, 3, seed=2)  # a new session starts a new pack
    gone = repo.store.location(first[0].blob_id).pack
    kept = repo.store.location(second[0].blob_id).pack
    assert gone != kept
    repo.close()
    repo.store.pack_path(gone).unlink()

    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert [p.pack for p in report.problems if p.what == "missing_pack"] == [gone]
    assert {p.blob for p in report.problems if p.what == "missing_blob"} == {
        b.blob_id.hex() for b in first
    }
    assert len(report.problems) == 4
    for blob in first:
        with pytest.raises(CorruptBlob, match="missing"):
            repo.load(blob.blob_id)
    for blob in second:
        assert repo.load(blob.blob_id) == blob.plaintext
    # The next pack does not reuse the missing pack's number.
    third = write_blobs(repo, 1, seed=3)
    assert repo.store.location(third[0].blob_id).pack not in (gone, kept)


# -- damaged index ------------------------------------------------------------------------


def _edit_index(home: HomePaths, edit) -> None:
    db = plyvel.DB(str(home.store / "index"), create_if_missing=False)
    try:
        edit(db)
    finally:
        db.close()


def _bad_offset(value: bytes) -> bytes:
    pack, offset, rest = value[:4], struct.unpack("<Q", value[4:12])[0], value[12:]
    return pack + struct.pack("<Q", offset + 1) + rest


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        pytest.param(lambda v: b"garbage", "bad_index_record", id="garbage"),
        pytest.param(lambda v: b"", "bad_index_record", id="empty"),
        pytest.param(lambda v: v + b"\x00", "bad_index_record", id="too_long"),
        pytest.param(lambda v: v[:20] + b"\xee", "bad_index_record", id="unknown_kind"),
        pytest.param(_bad_offset, "index_mismatch", id="wrong_offset"),
    ],
)
def test_check_damaged_blob_record_is_reported(
    repo, open_repo, home, write_blobs, damage, expected
):
    blobs = write_blobs(repo, 3)
    victim = blobs[1]
    repo.close()
    key = b"b" + bytes(victim.blob_id)

    def edit(db):
        value = db.get(key)
        assert value is not None and len(value) == 21
        db.put(key, damage(value))

    _edit_index(home, edit)

    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert [(p.what, p.blob) for p in report.problems] == [(expected, victim.blob_id.hex())]
    with pytest.raises(CorruptBlob):
        repo.load(victim.blob_id)
    for blob in (blobs[0], blobs[2]):
        assert repo.load(blob.blob_id) == blob.plaintext


@pytest.mark.parametrize(
    "value", [b"garbage", b"", b"\x00" * 9], ids=["garbage", "empty", "too_long"]
)
def test_store_open_rebuilds_damaged_pack_record(repo, open_repo, home, write_blobs, value):
    blobs = write_blobs(repo, 3)
    pack_no = repo.store.location(blobs[0].blob_id).pack
    length = repo.store.committed_packs()[pack_no]
    repo.close()
    _edit_index(home, lambda db: db.put(b"p" + struct.pack(">I", pack_no), value))

    repo = open_repo(home)
    assert repo.store.recovery.rebuilt_pack_records == [pack_no]
    assert repo.store.recovery.truncated == []
    assert repo.store.committed_packs() == {pack_no: length}
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert [repo.load(b.blob_id) for b in blobs] == [b.plaintext for b in blobs]
    repo.close()
    assert open_repo(home).store.recovery.rebuilt_pack_records == []


@pytest.mark.parametrize("damage", ["body", "header_crc"])
def test_store_open_damaged_pack_record_never_cuts_committed_blobs(
    repo, open_repo, home, write_blobs, damage
):
    blobs = write_blobs(repo, 5, size=1500)
    locs = _locations(repo, blobs)
    header = _entry_header_size(locs)
    pack_no = locs[0].pack
    path = repo.store.pack_path(pack_no)
    size = path.stat().st_size
    repo.close()
    if damage == "body":
        _flip(path, locs[1].offset + 7)
    else:
        _flip(path, locs[1].offset - header + HEADER_FIELDS["crc"])
    _edit_index(home, lambda db: db.put(b"p" + struct.pack(">I", pack_no), b"garbage"))

    repo = open_repo(home)
    assert path.stat().st_size == size, repo.store.recovery
    for blob in blobs[2:]:
        assert repo.load(blob.blob_id) == blob.plaintext


def _replace_meta(home: HomePaths, doc) -> None:
    raw = doc if isinstance(doc, bytes) else msgpack.packb(doc)
    _edit_index(home, lambda db: db.put(b"M", raw))


def _meta(home: HomePaths) -> dict:
    db = plyvel.DB(str(home.store / "index"), create_if_missing=False)
    try:
        return msgpack.unpackb(db.get(b"M"))
    finally:
        db.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: {"format": "some-other-tool", "version": 1}, "not a ShadowVault store"),
        (lambda m: ["shadowvault-store", 1], "not a ShadowVault store"),
        (lambda m: b"\xc1\xc1 not msgpack", "damaged"),
        (lambda m: {**m, "version": 99}, "version 99 is newer"),
        (lambda m: {**m, "version": 0}, "version 0 is not supported"),
        (lambda m: {k: v for k, v in m.items() if k != "chunker"}, "damaged"),
        (lambda m: {**m, "chunker": "big"}, "damaged"),
    ],
    ids=["foreign", "not_a_map", "not_msgpack", "newer", "older", "no_chunker", "bad_chunker"],
)
def test_store_open_foreign_or_newer_metadata_is_format_error(
    repo, home, passphrase, write_blobs, change, message
):
    write_blobs(repo, 2)
    repo.close()
    original = _meta(home)
    packs_before = _tree_state(home.store / "packs")
    _replace_meta(home, change(dict(original)))

    with pytest.raises(FormatError, match=message):
        Store.open(home.store)
    with pytest.raises(FormatError, match=message):
        open_repository(home, passphrase)
    assert _tree_state(home.store / "packs") == packs_before  # no recovery on a foreign store

    # The failed opens released the lock and the index: with the record back, it opens.
    _replace_meta(home, original)
    with Store.open(home.store) as store:
        assert store.meta.repo_id == original["repo_id"]


@pytest.mark.parametrize("version", [None, "1", 1.0], ids=["missing", "string", "float"])
def test_store_open_bad_version_field_does_not_say_upgrade(repo, home, version):
    repo.close()
    meta = _meta(home)
    if version is None:
        del meta["version"]
    else:
        meta["version"] = version
    _replace_meta(home, meta)
    with pytest.raises(FormatError) as info:
        Store.open(home.store)
    assert "newer" not in str(info.value) and "upgrade" not in str(info.value)


def test_store_open_without_metadata_record_is_format_error(repo, home):
    repo.close()
    _edit_index(home, lambda db: db.delete(b"M"))
    with pytest.raises(FormatError, match="no metadata record"):
        Store.open(home.store)


def test_store_open_missing_index_is_format_error(repo, home):
    repo.close()
    (home.store / "index" / "CURRENT").unlink()
    with pytest.raises(FormatError, match="no store"):
        Store.open(home.store)


# -- keys and home ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong",
    ["", "wrong", "CORRECT HORSE BATTERY STAPLE", "correct horse battery staple "],
    ids=["empty", "other", "upper_case", "trailing_space"],
)
@pytest.mark.parametrize("how", ["open", "change_passphrase"])
def test_keys_wrong_passphrase_is_refused_and_key_file_unchanged(
    repo, home, passphrase, wrong, how
):
    repo.close()
    before = _tree_state(home.root)
    with pytest.raises(WrongPassphrase):
        if how == "open":
            open_repository(home, wrong)
        else:
            change_passphrase(home, wrong, "new passphrase")
    assert _tree_state(home.root) == before
    # Keys are checked before the store is touched: it is not left locked.
    with open_repository(home, passphrase) as again:
        assert again.store.recovery.reindexed == 0


@pytest.mark.parametrize(
    "keep",
    ["everything", "master_key", "identity_key", "store_index"],
)
def test_init_existing_home_is_home_error_and_changes_nothing(
    tmp_path, make_home, write_blobs, open_repo, keep
):
    home = make_home(tmp_path / "home")
    with open_repo(home) as repo:
        write_blobs(repo, 2)
    leave = {
        "everything": None,
        "master_key": home.master_key,
        "identity_key": home.identity_key,
        "store_index": home.store / "index",
    }[keep]
    if leave is not None:  # a half-made home: only one part of a node is there
        for part in (home.master_key, home.identity_key, home.store / "index"):
            if part != leave:
                if part.is_dir():
                    for child in sorted(part.rglob("*"), reverse=True):
                        child.unlink()
                    part.rmdir()
                else:
                    part.unlink()
    before = _tree_state(home.root)
    with pytest.raises(HomeError, match="already holds a node"):
        init_home(
            home,
            "another passphrase",
            InitOptions(kdf=KDF_PROFILES["testing-only-insecure"]),
            "# new config\n",
        )
    assert _tree_state(home.root) == before


def test_init_keeps_an_existing_config(tmp_path):
    home = HomePaths(tmp_path / "home")
    home.root.mkdir()
    home.config.write_text("# mine\n")
    init_home(home, "pw", InitOptions(kdf=KDF_PROFILES["testing-only-insecure"]), "# new\n")
    assert home.config.read_text() == "# mine\n"
    with open_repository(home, "pw") as repo:
        assert check_store(repo, read_data=True).ok


# -- a busy store -------------------------------------------------------------------------


@pytest.mark.parametrize("release", ["clean_exit", "sigkill"])
def test_store_open_in_second_process_is_store_locked_with_pid(
    repo, home, passphrase, child, read_line, release
):
    repo.close()
    holder = child("hold", home)
    assert read_line(holder) == f"ready {holder.pid}\n".encode()

    with pytest.raises(StoreLocked) as info:
        Store.open(home.store)
    assert info.value.pid == holder.pid
    assert f"process {holder.pid}" in str(info.value)
    assert str(home.store) in str(info.value)
    with pytest.raises(StoreLocked, match=f"process {holder.pid}"):
        open_repository(home, passphrase)

    if release == "clean_exit":
        holder.stdin.close()
        holder.wait(timeout=10)
        assert holder.returncode == 0, holder.stderr.read()
    else:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    with Store.open(home.store) as store:  # the kernel dropped the lock with its owner
        assert store.recovery.truncated == []


def test_store_open_twice_in_one_process_is_store_locked(repo, home):
    with pytest.raises(StoreLocked) as info:
        Store.open(home.store)
    assert info.value.pid == os.getpid()


# -- a full disk ----------------------------------------------------------------------------

TMPFS_SIZE = "8m"
BALLAST = 2 * 1024 * 1024


def _plain(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _sealed(repo, seed: int, size: int) -> tuple[bytes, bytes]:
    plain = _plain(seed, size)
    return plain, Sealer(3).seal(plain, repo.keys.data)


@pytest.mark.parametrize("size", [4096, 65536, 300_000], ids=["4k", "64k", "300k"])
def test_store_full_disk_during_write_keeps_acknowledged_blobs(tmpfs, make_home, open_repo, size):
    root = tmpfs(TMPFS_SIZE)
    home = make_home(root / "home")
    ballast = root / "ballast"  # what the user will delete to free space
    ballast.write_bytes(b"\x5a" * BALLAST)
    repo = open_repo(home)
    acked = []
    with pytest.raises(StoreFull, match="disk full"), repo.store.writer() as writer:
        for i in range(100_000):
            plain, sealed = _sealed(repo, i, size)
            blob_id = writer.put(sealed, BlobKind.DATA, len(plain), repo.dedup_key(plain))
            acked.append((blob_id, plain))
            if i % 4 == 3:
                writer.flush()
    assert len(acked) > 3
    repo.close()

    ballast.unlink()
    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert report.blobs == len(acked)
    for blob_id, plain in acked:
        assert repo.load(blob_id) == plain
        assert repo.store.lookup_dedup(repo.dedup_key(plain)) == blob_id
    plain, sealed = _sealed(repo, 10**6, 1000)
    with repo.store.writer() as writer:
        blob_id = writer.put(sealed, BlobKind.DATA, len(plain))
    assert repo.load(blob_id) == plain
    assert check_store(repo, read_data=True).ok


def test_store_full_disk_during_index_commit_loses_nothing(tmpfs, make_home, open_repo, fill):
    root = tmpfs(TMPFS_SIZE)
    home = make_home(root / "home")
    repo = open_repo(home)
    with (
        pytest.raises(RepoError, match=r"No space left|disk full") as info,
        repo.store.writer() as writer,
    ):
        _append_then_fill(repo, writer, root, fill)  # then commit: the index write fails
        writer.flush()
    repo.close()  # closes even after a failed commit
    acked_n = 64

    (root / "ballast").unlink()
    repo = open_repo(home)
    assert repo.store.recovery.reindexed == acked_n, info.value
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert report.blobs == acked_n
    for i in range(acked_n):
        plain = _plain(i, 2000)
        blob_id = repo.store.lookup_dedup(repo.dedup_key(plain))
        assert blob_id is not None and repo.load(blob_id) == plain


def _append_then_fill(repo, writer, root, fill, n: int = 64) -> None:
    for i in range(n):
        plain, sealed = _sealed(repo, i, 2000)
        writer.put(sealed, BlobKind.DATA, len(plain), repo.dedup_key(plain))
    fill(root)


@pytest.mark.parametrize(
    "how",
    [
        "flush_call",
        "pack_full_then_session_exit",
        "flush_then_session_exit",
    ],
)
def test_store_full_disk_during_index_commit_is_store_full(tmpfs, make_home, open_repo, fill, how):
    root = tmpfs(TMPFS_SIZE)
    home = make_home(root / "home")
    repo = open_repo(home)
    if how == "flush_call":
        # Leaving the session cannot commit either, so that raises too.
        with pytest.raises(RepoError), repo.store.writer() as writer:
            _append_then_fill(repo, writer, root, fill)
            with pytest.raises(StoreFull, match="disk full"):
                writer.flush()
        return
    with pytest.raises(RepoError) as info, repo.store.writer() as writer:
        if how == "flush_then_session_exit":
            _append_then_fill(repo, writer, root, fill)
            writer.flush()
        else:  # no flush until a pack write fails; leaving the session commits
            for i in range(100_000):
                plain, sealed = _sealed(repo, i, 4096)
                writer.put(sealed, BlobKind.DATA, len(plain), repo.dedup_key(plain))
    assert isinstance(info.value, StoreFull), repr(info.value)


@pytest.mark.parametrize("free_pages", [0, 8], ids=["no_space", "space_for_leveldb_only"])
def test_store_open_on_full_disk_is_store_full(
    tmpfs, make_home, open_repo, fill, child, free_pages
):
    root = tmpfs("32m")
    home = make_home(root / "home")
    proc = child("tail", home, "0", "1000", "3")  # 1000 blobs appended, none indexed
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    ballast = fill(root, leave_bytes=free_pages * 4096)
    with pytest.raises(StoreFull, match="free space"):
        open_repo(home)
    # Nothing was lost: with space again, recovery indexes every appended blob.
    ballast.unlink()
    repo = open_repo(home)
    assert repo.store.recovery.reindexed == 1000
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert report.blobs == 1000
