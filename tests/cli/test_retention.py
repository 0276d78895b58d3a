"""`forget`, `hold`, `gc` and `audit` through the real CLI."""

from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import plyvel


def test_forget_refuses_an_empty_policy(populated_copy) -> None:
    node = populated_copy.node
    result = node.run("forget", expect=2)
    assert "refusing to forget every snapshot" in result.stderr
    assert len(node.snapshots()) == 3


def test_forget_dry_run_shows_reasons_and_changes_nothing(populated_copy) -> None:
    p = populated_copy
    # The shared populated home may hold entries already (restores are logged).
    log_before = p.node.json("audit")
    out = p.node.json("forget", "--keep-last", "1", "--dry-run")
    assert out["dry_run"] is True
    assert out["removed"] == [p.s1]  # s1 and s2 share host and paths; s3 is its own group
    kept = {s["id"]: s["reasons"] for g in out["groups"] for s in g["snapshots"] if s["keep"]}
    assert kept == {p.s2: ["last snapshot"], p.s3: ["last snapshot"]}
    assert len(p.node.snapshots()) == 3
    assert p.node.json("audit") == log_before  # a dry run logs nothing


def test_hold_blocks_forget_until_released_then_gc_collects(populated_copy, tmp_path: Path) -> None:
    p = populated_copy
    node = p.node
    logged = len(node.json("audit"))
    out = node.json("hold", p.s1[:12], "--until", "30d", "--reason", "legal hold")
    assert out["hold"]["active"] is True
    # By policy: kept, with the hold as the reason.
    res = node.json("forget", "--keep-last", "1")
    assert res["removed"] == [] and res["held"] == [p.s1]
    # By id: refused.
    refused = node.run("forget", p.s1[:12], expect=1)
    assert "held until" in refused.stderr
    assert {s["id"] for s in node.snapshots()} == {p.s1, p.s2, p.s3}
    # A hold is extended, never shortened.
    node.run("hold", p.s1[:12], "--until", "1d", expect=1)

    node.run("hold", p.s1[:12], "--release")
    res = node.json("forget", "--keep-last", "1", "--prune")
    assert res["removed"] == [p.s1]
    assert res["gc"]["blobs_removed"] > 0
    assert {s["id"] for s in node.snapshots()} == {p.s2, p.s3}
    node.run("check", "--read-data")
    node.run("restore", p.s2[:12], "--target", tmp_path / "r")
    assert (tmp_path / "r" / p.src.relative_to("/") / "notes.txt").read_bytes() == p.notes_v2

    actions = [e["action"] for e in node.json("audit")[logged:]]
    assert actions == ["hold", "forget", "release", "forget", "gc", "restore"]
    verify = node.json("audit", "verify")
    assert verify["ok"] and verify["entries"] == logged + 6


def test_gc_dry_run_then_gc(populated_copy) -> None:
    node = populated_copy.node
    node.run("forget", populated_copy.s3[:12])
    dry = node.json("gc", "--dry-run")
    assert dry["dry_run"] and dry["blobs_removed"] > 0
    again = node.json("gc", "--dry-run")
    assert again["blobs_removed"] == dry["blobs_removed"]
    done = node.json("gc", "--grace", "0s")
    assert done["blobs_removed"] == dry["blobs_removed"]
    assert node.json("gc")["blobs_removed"] == 0
    node.run("gc", "--grace", "soon", expect=2)
    text = node.run("gc").stdout
    assert text.startswith("gc: removed 0 of ")


def _tamper(home: Path, change) -> None:
    db = plyvel.DB(str(home / "store" / "index"))
    try:
        change(db)
    finally:
        db.close()


def _entry_key(seq: int) -> bytes:
    return b"a" + struct.pack(">Q", seq)


def _seed_log(node) -> int:
    """Three more entries; returns the seq of the first (earlier ones may exist)."""
    first = len(node.json("audit")) + 1
    for days in ("10d", "20d", "30d"):
        node.run("hold", "latest", "--until", days)
    return first


def test_audit_verify_detects_an_altered_entry(populated_copy) -> None:
    node = populated_copy.node
    first = _seed_log(node)
    assert node.json("audit", "verify")["ok"]

    def alter(db: plyvel.DB) -> None:
        doc = msgpack.unpackb(db.get(_entry_key(first + 1)))
        body = msgpack.unpackb(doc["body"])
        body[3] = "release"  # the action
        doc["body"] = msgpack.packb(body)
        db.put(_entry_key(first + 1), msgpack.packb(doc))

    _tamper(node.home, alter)
    out = node.run("audit", "verify", expect=1).stdout
    assert f"entry {first + 1}: bad signature" in out
    assert f"entry {first + 2}: does not chain" in out


def test_audit_verify_detects_a_removed_entry(populated_copy) -> None:
    node = populated_copy.node
    first = _seed_log(node)
    _tamper(node.home, lambda db: db.delete(_entry_key(first + 1)))
    out = node.json("audit", "verify", expect=1)
    assert any(f"expected seq {first + 1}" in p for p in out["problems"])


def test_audit_verify_detects_a_removed_last_entry(populated_copy) -> None:
    node = populated_copy.node
    first = _seed_log(node)
    _tamper(node.home, lambda db: db.delete(_entry_key(first + 2)))
    out = node.json("audit", "verify", expect=1)
    assert any("entries removed at the end" in p for p in out["problems"])


def test_audit_since_filters(populated_copy) -> None:
    node = populated_copy.node
    first = _seed_log(node)
    assert len(node.json("audit", "--since", "1h")) == first + 2
    assert node.json("audit", "--since", "2999-01-01") == []
    node.run("audit", "--since", "yesterday", expect=2)


def test_key_change_is_audited(populated_copy, tmp_path: Path) -> None:
    node = populated_copy.node
    new_pw = tmp_path / "new"
    new_pw.write_text("a brand new passphrase for the test\n")
    node.secrets.append("a brand new passphrase for the test")
    node.run("key", "passwd", "--new-password-file", new_pw)
    node.passphrase = "a brand new passphrase for the test"
    assert [e["action"] for e in node.json("audit")][-1] == "key_change"
