"""Refused requests are aggregated before they reach the audit log (bounded growth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.repo import RefusalAudit, append_audit, list_audit, verify_audit
from tests.ops.helpers import make_repo


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_flood_from_many_sources_becomes_a_bounded_number_of_counted_entries(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "n")
    clock = Clock(1_800_000_000.0)
    refusals = RefusalAudit(
        lambda action, details: append_audit(repo, action, details),
        via="p2p",
        max_sources=4,
        clock=clock,
    )
    try:
        for i in range(3000):  # 1000 distinct sources, 3 requests each, one minute
            refusals.note(f"peer{i % 1000}", "bad_signature")
        refusals.note("peer1", "replayed")
        assert refusals.flush() == 0  # the minute is not over: nothing written yet
        clock.t += 60
        refusals.note("peer7", "stale")  # the next minute
        assert refusals.flush() == 5 + 1  # 4 named (source, reason) + 1 lumped
        entries = [e.details for e in list_audit(repo) if e.action == "refused"]
        assert sum(d["count"] for d in entries) == 3001
        others = [d for d in entries if d["source"] == "others"]
        assert others == [
            {
                "via": "p2p",
                "source": "others",
                "reason": "bad_signature",
                "count": 3000 - 4 * 3,
                "from": others[0]["from"],
                "to": others[0]["to"],
                "sources": 996,
            }
        ]
        named: dict[str, Any] = {(d["source"], d["reason"]): d["count"] for d in entries}
        assert named[("peer1", "replayed")] == 1 and named[("peer0", "bad_signature")] == 3
        # At shutdown the current minute is written too; the log still verifies.
        assert refusals.flush(force=True) == 1
        assert verify_audit(repo).ok
    finally:
        repo.close()
