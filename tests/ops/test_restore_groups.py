"""Restore's bookkeeping around its writer groups: which directories count as restored,
and what a cancelled restore leaves open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.ops import BackupOptions, Cancelled, RestoreOptions, run_backup, run_restore
from node.repo import Repository, resolve_snapshot


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_a_directory_whose_files_exist_already_still_gets_its_metadata(
    tmp_path: Path, repo: Repository
) -> None:
    # Files skipped as existing are drained (and leave the writers' queue) while the
    # directory after them is restored: that directory must still count as restored.
    src = tmp_path / "src"
    for i in range(200):
        write(src / f"a{i:03}", b"a")
    for i in range(64):  # 200 + 64: the drains inside d/ take exactly the a* files
        write(src / "d" / f"x{i:02}", b"x")
    os.chmod(src / "d", 0o751)
    run_backup(repo, BackupOptions(paths=[src]))
    snap = resolve_snapshot(repo, "latest")
    target = tmp_path / "t"
    base = target / str(src).lstrip("/")
    for i in range(200):
        write(base / f"a{i:03}", b"old")  # already there: skipped without --overwrite
    rel = str(src).lstrip("/")
    result = run_restore(
        repo, snap, RestoreOptions(target=target, includes=[f"{rel}/a*", f"{rel}/d/x*"])
    )
    assert result.errors == []
    assert len(result.skipped_existing) == 200
    assert (base / "d" / "x01").read_bytes() == b"x"
    assert os.stat(base / "d").st_mode & 0o7777 == 0o751
    assert os.stat(base / "d").st_mtime_ns == os.stat(src / "d").st_mtime_ns


def test_a_cancelled_restore_closes_every_directory_it_opened(
    tmp_path: Path, repo: Repository
) -> None:
    src = tmp_path / "src"
    for d in range(8):
        for i in range(40):
            write(src / f"d{d}" / f"f{i:02}", os.urandom(2000))
    run_backup(repo, BackupOptions(paths=[src]))
    snap = resolve_snapshot(repo, "latest")

    class CancelEarly:
        def file_done(self, files: int, bytes_done: int, path: str) -> None:
            if files == 3:
                raise Cancelled

    def open_dirs() -> set[str]:
        """Open directory fds (the store keeps its pack files open for reuse)."""
        out = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
                    out.add(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        return out

    before = open_dirs()
    with pytest.raises(Cancelled):
        run_restore(repo, snap, RestoreOptions(target=tmp_path / "t"), CancelEarly())
    assert open_dirs() - before == set()
