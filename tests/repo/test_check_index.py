"""check finds index records that name the wrong pack entry, with or without --read-data."""

from __future__ import annotations

import plyvel
import pytest

from node.repo import check_store


@pytest.mark.parametrize("read_data", [False, True], ids=["structure", "read-data"])
def test_check_swapped_index_records_are_index_mismatch(
    repo, open_repo, home, write_blobs, read_data
) -> None:
    blobs = write_blobs(repo, 4)
    a, b = blobs[0].blob_id, blobs[1].blob_id
    repo.close()
    db = plyvel.DB(str(home.store / "index"))
    try:
        rec_a, rec_b = db.get(b"b" + a), db.get(b"b" + b)
        db.put(b"b" + a, rec_b)
        db.put(b"b" + b, rec_a)
    finally:
        db.close()
    report = check_store(open_repo(home), read_data=read_data)
    mismatched = {p.blob for p in report.problems if p.what == "index_mismatch"}
    assert mismatched == {a.hex(), b.hex()}
