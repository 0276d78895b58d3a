"""A restore never writes outside its target, whatever the snapshot or the target holds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgpack
import pytest

from node.ops import BackupOptions, RestoreOptions, run_backup, run_restore
from node.repo import BlobKind, Repository, Sealer, Snapshot, resolve_snapshot, save_snapshot
from protocol import BlobId


def put_raw_tree(repo: Repository, writer, entries: list[dict]) -> BlobId:
    """Store a tree exactly as given: no validation, as a hostile peer or bug could."""
    plain = msgpack.packb({"v": 1, "e": entries})
    sealed = Sealer(3).seal(plain, repo.keys.metadata)
    return writer.put(sealed, BlobKind.TREE, len(plain))


def put_file_blob(repo: Repository, writer, data: bytes) -> BlobId:
    return writer.put(Sealer(3).seal(data, repo.keys.data), BlobKind.DATA, len(data))


def file_entry(name: bytes, chunk: BlobId, size: int) -> dict:
    return {
        "n": name,
        "t": "f",
        "m": 0o644,
        "u": 0,
        "g": 0,
        "mt": 0,
        "ct": 0,
        "s": size,
        "c": [bytes(chunk)],
    }


def hostile_snapshot(repo: Repository, build) -> Snapshot:
    with repo.store.writer() as writer:
        root = build(writer)
        writer.flush()
        snap = Snapshot(time_ns=time.time_ns(), host="evil", paths=["/x"], tree=root)
        save_snapshot(repo, writer, snap)
    return snap


def outside_untouched(outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["sentinel"]
    assert (outside / "sentinel").read_bytes() == b"original"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "sentinel").write_bytes(b"original")
    return d


@pytest.mark.parametrize(
    "name",
    [b"..", b"../escape", b"/abs/path", b"a/../../b", b".", b"nul\x00byte", b""],
    ids=["dotdot", "dotdot-slash", "absolute", "embedded-dotdot", "dot", "nul", "empty"],
)
def test_restore_refuses_unsafe_names(
    tmp_path: Path, repo: Repository, outside: Path, name: bytes
) -> None:
    def build(writer):
        chunk = put_file_blob(repo, writer, b"pwned")
        return put_raw_tree(repo, writer, [file_entry(name, chunk, 5)])

    snap = hostile_snapshot(repo, build)
    target = outside / "target"  # inside "outside", so ".." would land next to sentinel
    result = run_restore(repo, snap, RestoreOptions(target=target))
    assert result.errors and "unsafe or invalid entry name" in result.errors[0]
    assert os.listdir(target) == []
    assert sorted(os.listdir(outside)) == ["sentinel", "target"]


def test_restore_refuses_symlink_then_directory_of_the_same_name(
    tmp_path: Path, repo: Repository, outside: Path
) -> None:
    def build(writer):
        chunk = put_file_blob(repo, writer, b"pwned")
        inner = put_raw_tree(repo, writer, [file_entry(b"sentinel", chunk, 5)])
        return put_raw_tree(
            repo,
            writer,
            [
                {
                    "n": b"x",
                    "t": "l",
                    "m": 0o777,
                    "u": 0,
                    "g": 0,
                    "mt": 0,
                    "ct": 0,
                    "l": os.fsencode(outside),
                },
                {
                    "n": b"x",
                    "t": "d",
                    "m": 0o755,
                    "u": 0,
                    "g": 0,
                    "mt": 0,
                    "ct": 0,
                    "sub": bytes(inner),
                },
            ],
        )

    snap = hostile_snapshot(repo, build)
    result = run_restore(repo, snap, RestoreOptions(target=tmp_path / "t", overwrite=True))
    assert result.errors and "duplicate entry name" in result.errors[0]
    outside_untouched(outside)


def test_restore_does_not_follow_a_symlink_already_in_the_target(
    tmp_path: Path, repo: Repository, outside: Path
) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "sentinel").write_bytes(b"from the snapshot")
    run_backup(repo, BackupOptions(paths=[src]))
    snap = resolve_snapshot(repo, "latest")
    target = tmp_path / "target"
    planted = target / str(src).lstrip("/")
    planted.mkdir(parents=True)
    (planted / "dir").symlink_to(outside)  # an attacker's link where a directory will go
    result = run_restore(repo, snap, RestoreOptions(target=target, overwrite=True))
    assert any("refusing to follow" in e for e in result.errors)
    outside_untouched(outside)


def test_restore_overwrite_replaces_a_symlink_not_its_target(
    tmp_path: Path, repo: Repository, outside: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "sentinel").write_bytes(b"from the snapshot")
    run_backup(repo, BackupOptions(paths=[src]))
    snap = resolve_snapshot(repo, "latest")
    target = tmp_path / "target"
    planted = target / str(src).lstrip("/")
    planted.mkdir(parents=True)
    (planted / "sentinel").symlink_to(outside / "sentinel")
    result = run_restore(repo, snap, RestoreOptions(target=target, overwrite=True))
    assert result.errors == []
    assert not (planted / "sentinel").is_symlink()
    assert (planted / "sentinel").read_bytes() == b"from the snapshot"
    outside_untouched(outside)


def test_restore_without_overwrite_leaves_existing_files(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"new")
    (src / "b.txt").write_bytes(b"bee")
    run_backup(repo, BackupOptions(paths=[src]))
    target = tmp_path / "target"
    existing = target / str(src).lstrip("/") / "a.txt"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"mine")
    result = run_restore(repo, resolve_snapshot(repo, "latest"), RestoreOptions(target=target))
    assert result.skipped_existing == [str(src).lstrip("/") + "/a.txt"]
    assert existing.read_bytes() == b"mine"
    assert (existing.parent / "b.txt").read_bytes() == b"bee"
    assert not result.ok


def test_restore_damaged_blob_fails_only_the_files_using_it(
    tmp_path: Path, repo: Repository
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "damaged.bin").write_bytes(os.urandom(3000))
    (src / "fine.bin").write_bytes(os.urandom(3000))
    run_backup(repo, BackupOptions(paths=[src]))
    snap = resolve_snapshot(repo, "latest")
    from node.ops import find_node

    _, node = find_node(repo, snap, str(src / "damaged.bin"))
    assert node is not None
    loc = repo.store.location(node.chunks[0])
    with open(repo.store.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + 40)
        byte = f.read(1)
        f.seek(loc.offset + 40)
        f.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "target"
    result = run_restore(repo, snap, RestoreOptions(target=target))
    assert len(result.errors) == 1 and "damaged.bin" in result.errors[0]
    assert node.chunks[0].hex()[:16] in result.errors[0]
    restored = target / str(src).lstrip("/")
    assert (restored / "fine.bin").read_bytes() == (src / "fine.bin").read_bytes()
    assert not (restored / "damaged.bin").exists()
    assert [n for n in os.listdir(restored) if n.startswith(b".sv-restore".decode())] == []


def test_restore_include_selects_a_subset(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "other").mkdir()
    (src / "docs" / "a.txt").write_bytes(b"a")
    (src / "docs" / "b.md").write_bytes(b"b")
    (src / "other" / "c.txt").write_bytes(b"c")
    run_backup(repo, BackupOptions(paths=[src]))
    target = tmp_path / "target"
    result = run_restore(
        repo,
        resolve_snapshot(repo, "latest"),
        RestoreOptions(target=target, includes=["*.txt"], excludes=["other/"]),
    )
    assert result.errors == []
    base = target / str(src).lstrip("/")
    got = sorted(str(p.relative_to(base)) for p in base.rglob("*"))
    assert got == ["docs", "docs/a.txt"]
