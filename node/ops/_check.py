"""Check: the store's own consistency plus every blob the snapshots reference."""

from __future__ import annotations

from collections.abc import Iterator

from node.repo import (
    CheckReport,
    Problem,
    RepoError,
    Repository,
    Subset,
    check_store,
    list_snapshots,
    walk_references,
)
from node.repo import ProgressFn as ProgressFn
from protocol import BlobId


def run_check(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: Subset | None = None,
    progress: ProgressFn | None = None,
) -> CheckReport:
    """Check the store and that every snapshot's blobs exist (and, optionally, read them).

    A snapshot whose record or trees cannot be read is reported, not raised.
    """
    snapshot_problems: list[Problem] = []
    try:
        snaps = list_snapshots(repo)
    except RepoError as exc:
        snaps = []
        snapshot_problems.append(Problem("damaged_snapshot", str(exc)))

    def referenced() -> Iterator[tuple[BlobId, str]]:
        for ref in walk_references(repo, snaps):
            where = f"snapshot {ref.snapshot}"
            if ref.path:
                where += f" at {ref.path.decode(errors='replace')}"
            yield ref.blob_id, where

    report = check_store(
        repo, read_data=read_data, subset=subset, referenced=referenced(), progress=progress
    )
    report.problems[:0] = snapshot_problems
    return report
