"""Backup then restore gives back the same tree: bytes, names, types, modes, times, links."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.ops import BackupOptions, RestoreOptions, run_backup, run_restore
from node.repo import resolve_snapshot
from tests.ops.helpers import dir_mtimes, make_repo, tree_state

# Names are bytes: anything but "/" and NUL, including invalid UTF-8 and newlines.
names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)
long_names = st.integers(min_value=200, max_value=255).map(lambda n: b"L" * n)
file_sizes = st.sampled_from([0, 1, 1023, 1024, 1025, 4096, 16383, 16384, 16385, 70_000])


@st.composite
def trees(draw: st.DrawFn) -> list[tuple[str, bytes, object]]:
    """A list of operations building a tree: ("dir", path) / ("file", path, data, mode) / ..."""
    ops: list[tuple[str, bytes, object]] = []
    dirs = [b""]
    files: list[bytes] = []
    used: set[bytes] = set()
    for _ in range(draw(st.integers(1, 25))):
        parent = draw(st.sampled_from(dirs))
        name = draw(st.one_of(names, long_names))
        path = parent + b"/" + name if parent else name
        if path in used or any(path.startswith(u + b"/") for u in used if u not in dirs):
            continue
        used.add(path)
        kind = draw(st.sampled_from(["file", "file", "file", "dir", "symlink", "hardlink"]))
        if kind == "hardlink" and not files:
            kind = "file"
        if kind == "dir":
            dirs.append(path)
            ops.append(("dir", path, draw(st.sampled_from([0o755, 0o700, 0o750]))))
        elif kind == "file":
            size = draw(file_sizes)
            seed = draw(st.integers(0, 3))
            # Mix repeated and unique content so that dedup paths are exercised.
            data = (bytes([seed]) * 997 + os.urandom(3))[:size] * (size // 1000 + 1)
            ops.append(("file", path, (data[:size], draw(st.sampled_from([0o644, 0o600, 0o755])))))
            files.append(path)
        elif kind == "symlink":
            ops.append(
                (
                    "symlink",
                    path,
                    draw(st.binary(min_size=1, max_size=60).filter(lambda b: b"\x00" not in b)),
                )
            )
        else:
            ops.append(("hardlink", path, draw(st.sampled_from(files))))
    return ops


def build(root: Path, ops: list[tuple[str, bytes, object]]) -> None:
    base = os.fsencode(root)
    os.makedirs(base, exist_ok=True)
    t = 1_600_000_000_123_456_789
    for i, (kind, path, arg) in enumerate(ops):
        full = os.path.join(base, path)
        if kind == "dir":
            os.mkdir(full)
        elif kind == "file":
            data, mode = arg  # type: ignore[misc]
            with open(full, "wb") as f:
                f.write(data)
            os.chmod(full, mode)
            os.utime(full, ns=(t + i, t + i * 1001))
        elif kind == "symlink":
            os.symlink(arg, full)  # type: ignore[arg-type]
        else:
            os.link(os.path.join(base, arg), full)  # type: ignore[arg-type]
    for kind, path, arg in ops:
        if kind == "dir":
            os.chmod(os.path.join(base, path), arg)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=trees())
def test_backup_restore_roundtrip_random_trees(tmp_path_factory, ops) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    src = tmp / "src"
    build(src, ops)
    expected = tree_state(src)
    expected_dirs = dir_mtimes(src)
    repo = make_repo(tmp / "home")
    try:
        summary = run_backup(repo, BackupOptions(paths=[src]))
        assert summary.warnings == []
        snap = resolve_snapshot(repo, "latest")
        target = tmp / "restore"
        result = run_restore(repo, snap, RestoreOptions(target=target, verify=True))
        assert result.errors == [] and result.skipped_existing == []
        restored = target / str(src).lstrip("/")
        assert tree_state(restored) == expected
        assert dir_mtimes(restored) == expected_dirs
    finally:
        repo.close()
        shutil.rmtree(tmp, ignore_errors=True)
