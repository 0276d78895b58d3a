"""`shadowvault restore`: fidelity, subsets, overwriting, verification and symlink safety."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest


def _restored_names(root: Path) -> set[str]:
    """Relative paths of everything restored below ``root``."""
    out = set()
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def test_restore_full_matches_source(populated, fs, tmp_path):
    p = populated
    target = tmp_path / "target"
    result = p.node.run("restore", p.s2, "--target", target)
    assert re.search(
        rf"^restored \d+ files, \d+ dirs, 1 hard links, .* from snapshot {p.s2[:8]} into {target}$",
        result.stdout,
        re.M,
    )
    root = fs.restored_root(target, p.src)
    src_entries, src_links = fs.tree_entries(p.src)
    got_entries, got_links = fs.tree_entries(root)
    assert set(got_entries) == set(src_entries)
    for rel, want in src_entries.items():
        assert got_entries[rel] == want, rel  # kind, mode, owner, mtime ns, bytes, link target
    assert src_links == {frozenset({b"hard1", b"sub/hard2"})}
    assert got_links == src_links  # hard links share one inode again
    assert fs.non_utf8_name in os.listdir(os.fsencode(root))
    # Nothing but the backed-up path (and the directories leading to it) was written.
    top = str(p.src).strip("/").split("/")[0]
    assert os.listdir(target) == [top]


def test_restore_verify_prints_count(populated, tmp_path):
    p = populated
    target = tmp_path / "target"
    out = p.node.run("restore", p.s2, "--target", target, "--verify").stdout
    regular = {
        os.path.join(d, n)
        for d, _, files in os.walk(p.src)
        for n in files
        if os.path.isfile(os.path.join(d, n)) and not os.path.islink(os.path.join(d, n))
    }
    # Each regular file is written (and verified) once; the second hard link is a link.
    assert f"verified {len(regular) - 1} files" in out.splitlines()


def test_restore_json(populated, tmp_path):
    p = populated
    info = p.node.json("restore", p.s3, "--target", tmp_path / "target")
    assert info["snapshot_id"] == p.s3
    assert info["files"] == 1
    assert info["skipped_existing"] == [] and info["errors"] == []
    assert info["bytes_written"] == (p.src2 / "other.txt").stat().st_size


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--include", "*.log"],
            {"sub", "sub/data.log", "sub/deep", "sub/deep/keep.log"},
            id="include",
        ),
        pytest.param(
            ["--include", "/SRC/sub/deep"],
            {"sub", "sub/deep", "sub/deep/file.txt", "sub/deep/keep.log"},
            id="include-absolute-path",
        ),
        pytest.param(
            ["--include", "*.txt", "--exclude", "sub/"],
            {"notes.txt", "perm.txt", "new.txt", "caf\udce9.txt", "ro", "ro/inside.txt"},
            id="include-files-exclude-dir",
        ),
        pytest.param(
            ["--include", "sub/", "--exclude", "*.log"],
            {"sub", "sub/hard2", "sub/deep", "sub/deep/file.txt"},
            id="include-dir-exclude-files",
        ),
        pytest.param(
            ["--exclude", "sub/", "--exclude", "cache/", "--exclude", "big.bin"],
            "ALL_BUT_SUB_CACHE_BIG",
            id="exclude",
        ),
    ],
)
def test_restore_subsets(populated, tmp_path, args, expected):
    p = populated
    target = tmp_path / "target"
    args = [a.replace("/SRC", str(p.src)) for a in args]
    p.node.run("restore", p.s2, "--target", target, *args)
    got = _restored_names(target / str(p.src).lstrip("/"))
    if expected == "ALL_BUT_SUB_CACHE_BIG":
        expected = {
            n
            for n in _restored_names(p.src)
            if not n.startswith(("sub", "cache")) and n != "big.bin"
        }
    assert got == expected


def test_restore_existing_file_needs_overwrite(populated, fs, tmp_path):
    p = populated
    target = tmp_path / "target"
    mine = fs.write_file(fs.restored_root(target, p.src) / "notes.txt", b"local edits\n")
    before = mine.stat()

    refused = p.node.run("restore", p.s2, "--target", target, "--include", "notes.txt", expect=1)
    rel = f"{str(p.src).lstrip('/')}/notes.txt"
    assert f"exists, not overwritten (use --overwrite): {rel}" in refused.stderr
    assert mine.read_bytes() == b"local edits\n"
    assert mine.stat().st_mtime_ns == before.st_mtime_ns

    p.node.run("restore", p.s2, "--target", target, "--include", "notes.txt", "--overwrite")
    assert mine.read_bytes() == p.notes_v2
    assert mine.stat().st_mtime_ns == (p.src / "notes.txt").stat().st_mtime_ns


def test_restore_overwrite_keeps_mode(populated, fs, tmp_path):
    p = populated
    target = tmp_path / "target"
    mine = fs.write_file(fs.restored_root(target, p.src) / "exec.sh", b"old\n", mode=0o644)
    p.node.run("restore", p.s2, "--target", target, "--include", "exec.sh", "--overwrite")
    assert mine.read_bytes() == (p.src / "exec.sh").read_bytes()
    assert oct(stat.S_IMODE(mine.stat().st_mode)) == "0o755"


def _plant(target: Path, src: Path, depth: str, outside: Path) -> Path:
    """Make one directory on the restore path a symlink to ``outside``; return it."""
    parts = Path(str(src).lstrip("/")).parts
    cut = 1 if depth == "first" else len(parts)
    link = target.joinpath(*parts[:cut])
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    return link


@pytest.mark.parametrize("depth", ["first", "last"], ids=["first-component", "backed-up-dir"])
def test_restore_refuses_symlinked_directory(populated, tmp_path, depth):
    p = populated
    target, outside = tmp_path / "target", tmp_path / "outside"
    outside.mkdir()
    link = _plant(target, p.src, depth, outside)
    result = p.node.run("restore", p.s2, "--target", target, expect=1)
    assert "exists and is not a directory (refusing to follow it)" in result.stderr
    assert os.listdir(outside) == []
    assert link.is_symlink()


def test_restore_overwrite_replaces_symlink_not_its_target(populated, fs, tmp_path):
    p = populated
    target, outside = tmp_path / "target", tmp_path / "outside"
    victim = fs.write_file(outside / "victim", b"must stay\n")
    planted = fs.restored_root(target, p.src) / "notes.txt"
    planted.parent.mkdir(parents=True)
    planted.symlink_to(victim)
    p.node.run("restore", p.s2, "--target", target, "--include", "notes.txt", "--overwrite")
    assert victim.read_bytes() == b"must stay\n"
    assert not planted.is_symlink()
    assert planted.read_bytes() == p.notes_v2


def test_restore_damaged_blob_names_the_file(populated_copy, fs, tmp_path):
    p = populated_copy
    big = len(p.big)
    # The largest data blobs hold big.bin; damage one of them.
    data = [e for e in fs.pack_entries(p.node.home) if e.kind == 1]
    victim = max(data, key=lambda e: e.stored_len)
    assert victim.stored_len <= big + 1024
    pack = p.node.home / "store" / "packs" / f"{victim.pack:08d}.pack"
    with open(pack, "r+b") as f:
        f.seek(victim.body_offset + victim.stored_len // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "target"
    result = p.node.run("restore", p.s2, "--target", target, "--include", "*.bin", expect=1)
    assert f"error: {str(p.src).lstrip('/')}/big.bin: blob {victim.blob_id[:16]}" in result.stderr
    root = fs.restored_root(target, p.src)
    assert not (root / "big.bin").exists()
    assert (root / "small.bin").read_bytes() == (p.src / "small.bin").read_bytes()
    assert [n for n in os.listdir(root) if n.startswith(".sv-restore-")] == []
