"""`shadowvault backup`: summary, files cache, tags, excludes, errors and warnings."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BACKUP_JSON_KEYS = {
    "snapshot_id",
    "parent",
    "files_new",
    "files_changed",
    "files_unmodified",
    "dirs_new",
    "dirs_changed",
    "dirs_unmodified",
    "bytes_processed",
    "bytes_added",
    "bytes_stored",
    "duration_s",
    "warnings",
}
SHADOWVAULT = Path(sys.executable).parent / "shadowvault"
SMALL_TREE_FILES = 6
SMALL_TREE_DIRS = 4  # src, cache, sub, sub/deep


def _packs(node) -> list[str]:
    return sorted(p.name for p in (node.home / "store" / "packs").iterdir())


def _paths_in(node, snapshot: str, root: Path) -> set[str]:
    entries = node.json("ls", snapshot, root, "--recursive")
    prefix = f"{root}/"
    assert all(e["path"].startswith(prefix) for e in entries)
    return {e["path"][len(prefix) :] for e in entries}


def test_backup_json_then_unchanged_rerun(node, small_tree):
    size = sum(p.stat().st_size for p in small_tree.rglob("*") if p.is_file())
    first = node.json("backup", small_tree)
    assert set(first) == BACKUP_JSON_KEYS
    assert re.fullmatch(r"[0-9a-f]{64}", first["snapshot_id"])
    assert first["parent"] is None
    assert (first["files_new"], first["files_changed"], first["files_unmodified"]) == (
        SMALL_TREE_FILES,
        0,
        0,
    )
    assert (first["dirs_new"], first["dirs_changed"], first["dirs_unmodified"]) == (
        SMALL_TREE_DIRS,
        0,
        0,
    )
    assert first["bytes_processed"] == size
    assert first["bytes_added"] >= size
    assert first["bytes_stored"] > 0
    assert isinstance(first["duration_s"], float) and first["duration_s"] >= 0
    assert first["warnings"] == []

    second = node.json("backup", small_tree)
    assert set(second) == BACKUP_JSON_KEYS
    assert second["snapshot_id"] != first["snapshot_id"]
    assert second["parent"] == first["snapshot_id"]
    assert (second["files_new"], second["files_changed"], second["files_unmodified"]) == (
        0,
        0,
        SMALL_TREE_FILES,
    )
    assert (second["dirs_new"], second["dirs_changed"], second["dirs_unmodified"]) == (
        0,
        0,
        SMALL_TREE_DIRS,
    )
    assert second["bytes_processed"] == size
    # No file data again: at most the trees of the (virtual) parent directories changed.
    assert second["bytes_added"] < first["bytes_added"]
    assert second["warnings"] == []

    text = node.run("backup", small_tree).stdout
    assert (
        f"files: 0 new, 0 changed, {SMALL_TREE_FILES} unmodified ({SMALL_TREE_FILES} in all)"
        in text
    )
    assert f"dirs:  0 new, 0 changed, {SMALL_TREE_DIRS} unmodified" in text
    assert re.search(r"^snapshot [0-9a-f]{8} saved$", text, re.M)


def test_backup_tags_recorded(populated):
    tags = {s["id"]: s["tags"] for s in populated.node.snapshots()}
    assert tags[populated.s1] == ["daily"]
    assert tags[populated.s2] == ["daily", "manual"]  # sorted, duplicates dropped
    assert tags[populated.s3] == ["weekly"]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (
            "flags",
            {"a.txt", "sub", "sub/deep", "sub/deep/c.txt", "sub/deep/d.bin"},
        ),
        (
            "file",
            {"a.txt", "sub", "sub/keep.log", "sub/deep", "sub/deep/c.txt", "sub/deep/d.bin"},
        ),
        (
            "anchored",
            {"a.txt", "b.log", "cache", "cache/junk.tmp", "sub", "sub/keep.log"},
        ),
    ],
    ids=["exclude-flags", "exclude-file-with-negation", "exclude-anchored"],
)
def test_backup_exclude(node, small_tree, tmp_path, how, expected):
    if how == "flags":
        args = ["--exclude", "*.log", "--exclude", "cache/"]
    elif how == "file":
        patterns = tmp_path / "excludes"
        patterns.write_text("# build junk\n\n*.log\n!keep.log\ncache/\n")
        args = ["--exclude-file", str(patterns)]
    else:
        args = ["--exclude", "/sub/deep"]
    snap = node.json("backup", small_tree, *args)["snapshot_id"]
    assert _paths_in(node, snap, small_tree) == expected


def test_backup_missing_path_creates_nothing(node, small_tree, tmp_path):
    missing = tmp_path / "no-such-dir"
    result = node.run("backup", missing, expect=1)
    assert f"{missing}: no such file or directory; nothing was backed up" in result.stderr
    both = node.run("backup", small_tree, missing, expect=1)
    assert f"{missing}: no such file or directory" in both.stderr
    assert node.snapshots() == []
    assert _packs(node) == []


def test_backup_missing_exclude_file_fails(node, small_tree, tmp_path):
    result = node.run("backup", small_tree, "--exclude-file", tmp_path / "nope", expect=1)
    assert f"cannot read exclude file {tmp_path / 'nope'}" in result.stderr
    assert _packs(node) == []


@pytest.fixture
def shared_tmp():
    """A directory another user can reach (pytest's tmp_path is 0700 root-only)."""
    path = Path(tempfile.mkdtemp(prefix="sv-cli-"))
    path.chmod(0o755)
    yield path
    for dirpath, dirs, _files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(path)


def test_backup_unreadable_file_warns(node, fs, shared_tmp):
    home = node.copy(shared_tmp / "home")
    src = shared_tmp / "src"
    fs.write_file(src / "ok.txt", b"readable\n")
    secret = fs.write_file(src / "secret.txt", b"nobody may read this\n", mode=0o000)
    locked = src / "locked"
    fs.write_file(locked / "inner.txt", b"hidden\n")
    locked.chmod(0o000)

    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root ignores mode 000 and setpriv is missing to drop privileges")
        for dirpath, dirs, files in os.walk(shared_tmp):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(dirpath, name), 65534, 65534)
        os.chown(shared_tmp, 65534, 65534)
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]

    result = home.run("backup", src, prefix=prefix, expect=3)
    assert f"warning: {secret}: Permission denied" in result.stdout
    assert f"warning: {locked}: cannot list directory: Permission denied" in result.stdout
    assert re.search(r"^snapshot [0-9a-f]{8} saved$", result.stdout, re.M)

    (snap,) = home.snapshots()
    assert snap["summary"]["warnings"] == 2
    assert _paths_in(home, snap["id"], src) == {"ok.txt", "locked"}
    assert stat.S_IMODE(secret.stat().st_mode) == 0


@pytest.mark.parametrize("level", ["off", "19"], ids=["off", "level-19"])
def test_backup_compression_levels(node, tmp_path, level):
    src = tmp_path / "src"
    text = b"the quick brown fox jumps over the lazy dog\n" * 6000
    (src).mkdir()
    (src / "text.txt").write_bytes(text)
    info = node.json("backup", src, "--compression", level)
    if level == "off":
        assert info["bytes_stored"] > info["bytes_added"]  # envelope overhead, no shrinking
    else:
        assert info["bytes_stored"] * 10 < info["bytes_added"]
    dumped = node.run("dump", info["snapshot_id"], src / "text.txt", binary=True).stdout
    assert dumped == text


@pytest.mark.parametrize(
    ("level", "message"),
    [("99", "compression level must be 1-19"), ("fast", "compression must be 'off' or a level")],
    ids=["99", "not-a-number"],
)
def test_backup_bad_compression_is_usage_error(node, small_tree, level, message):
    result = node.run("backup", small_tree, "--compression", level, expect=2)
    assert message in result.stderr
    assert _packs(node) == []


def test_backup_nested_paths(node, small_tree):
    result = node.run("backup", small_tree, small_tree / "sub", expect=None)
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        (snap,) = node.snapshots()
        assert "sub/deep/c.txt" in _paths_in(node, snap["id"], small_tree)
    else:
        assert result.returncode == 1
        assert result.stderr.startswith("error: ")
        assert node.snapshots() == []


def test_backup_path_below_symlinked_directory(node, fs, tmp_path):
    real = tmp_path / "real"
    fs.write_file(real / "src" / "f.txt", b"x\n")
    real.chmod(0o750)
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    node.json("backup", tmp_path / "via" / "src")
    (entry,) = node.json("ls", "latest", tmp_path)
    assert entry["name"] == "via"
    assert entry["type"] == "dir"
    assert entry["mode"] == "0750"  # the directory's mode, not the symlink's 0777


def test_backup_interrupted_exits_130(node, small_tree, tmp_path):
    """SIGINT while the store is open: exit 130, a one-line message, no snapshot."""
    fifo = tmp_path / "excludes.fifo"
    os.mkfifo(fifo)  # reading the exclude file blocks: the backup waits there, store open
    proc = subprocess.Popen(
        [str(SHADOWVAULT), "backup", str(small_tree), "--exclude-file", str(fifo)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=node.env(),
        # A test run started in the background (a CI script's `cmd &`) ignores SIGINT, and
        # children inherit that: give the CLI the disposition a terminal user's has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 20
        wchan = Path(f"/proc/{proc.pid}/wchan")
        while wchan.read_text() != "wait_for_partner":  # blocked opening the FIFO
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the backup never reached the exclude file"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.decode() == "error: interrupted\n"
    assert out == b""
    assert node.snapshots() == []  # and the store was released
