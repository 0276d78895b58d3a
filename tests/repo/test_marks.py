"""gc's mark set: the same answers in memory and after spilling to its scratch LevelDB."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.repo._marks import MarkSet


def _ids(n: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(n)]


@pytest.mark.parametrize("limit", [1_000_000, 7, 1], ids=["in-memory", "spills", "every-id"])
def test_mark_set_answers_the_same_in_memory_and_spilled(tmp_path: Path, limit: int) -> None:
    marked, unmarked = _ids(60), _ids(60)
    path = tmp_path / "gc-mark"
    with MarkSet(path, limit=limit) as marks:
        marks.update(marked[:30])
        for blob_id in marked[30:]:
            marks.add(blob_id)
        assert all(marks.seen(b) for b in marked)
        assert not any(marks.seen(b) for b in unmarked)
        assert (marks.spills > 0) == (limit < 60)
        assert path.exists() == (limit < 60)
        probe = marks.sorted_probe()
        answers = {b: probe(b) for b in sorted(marked + unmarked)}
    assert answers == {**{b: True for b in marked}, **{b: False for b in unmarked}}
    assert not path.exists()  # the scratch LevelDB goes with the mark set


def test_mark_set_removes_a_leftover_scratch_directory(tmp_path: Path) -> None:
    path = tmp_path / "gc-mark"
    path.mkdir()
    (path / "junk").write_bytes(b"from a gc that was killed")
    with MarkSet(path, limit=2) as marks:
        marks.update(_ids(5))
        assert not (path / "junk").exists()
    assert not path.exists()
