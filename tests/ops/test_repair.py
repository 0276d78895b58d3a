"""`repair index` rebuilds every index record from the packs."""

from __future__ import annotations

import os
from pathlib import Path

import plyvel
import pytest

from node.ops import BackupOptions, RestoreOptions, run_backup, run_check, run_restore
from node.repo import HomePaths, open_repository, repair_index, resolve_snapshot
from tests.ops.helpers import make_repo, tree_state


def wipe(home: HomePaths, prefixes: list[bytes]) -> int:
    db = plyvel.DB(str(home.store / "index"))
    n = 0
    try:
        for prefix in prefixes:
            for key, _ in db.iterator(prefix=prefix):
                db.delete(key)
                n += 1
    finally:
        db.close()
    return n


@pytest.mark.parametrize(
    "prefixes",
    [[b"b"], [b"s"], [b"b", b"d", b"p", b"s"]],
    ids=["blob-records", "snapshot-records", "everything-but-meta"],
)
def test_repair_index_rebuilds_lost_records(tmp_path: Path, prefixes: list[bytes]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(5000) * (i % 3 + 1))
    repo = make_repo(tmp_path / "home")
    home = repo.home
    run_backup(repo, BackupOptions(paths=[src]))
    repo.close()
    assert wipe(home, prefixes) > 0

    report = repair_index(home, "test passphrase")
    assert report.blobs > 20

    repo = open_repository(home, "test passphrase")
    try:
        assert run_check(repo, read_data=True).ok
        snap = resolve_snapshot(repo, "latest")
        result = run_restore(repo, snap, RestoreOptions(target=tmp_path / "r"))
        assert result.errors == []
        assert tree_state(tmp_path / "r" / str(src).lstrip("/")) == tree_state(src)
    finally:
        repo.close()
