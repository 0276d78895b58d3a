"""`shadowvault check`, `shadowvault stats`, and a store held by another process."""

from __future__ import annotations

import os
import signal

import pytest

CHECK_JSON_KEYS = {
    "ok",
    "packs",
    "blobs",
    "blobs_read",
    "bytes_read",
    "problems",
    "warnings",
    "recovered",
}
STATS_JSON_KEYS = {
    "logical_bytes",
    "stored_bytes",
    "blob_count",
    "pack_count",
    "dedup_ratio",
    "compression_ratio",
    "unreferenced_bytes",
}


def test_check_healthy_store(populated, fs):
    p = populated
    out = p.node.run("check").stdout
    assert out.rstrip().endswith("no problems found")
    report = p.node.json("check", "--read-data")
    assert set(report) == CHECK_JSON_KEYS
    assert report["ok"] is True
    assert report["problems"] == [] and report["warnings"] == []
    entries = fs.pack_entries(p.node.home)
    assert report["blobs"] == report["blobs_read"] == len(entries)
    assert report["packs"] == len({e.pack for e in entries})
    assert report["bytes_read"] == sum(e.stored_len for e in entries)


def test_check_empty_store(node):
    report = node.json("check", "--read-data")
    assert report["ok"] is True
    assert (report["packs"], report["blobs"], report["blobs_read"]) == (0, 0, 0)


def _flip_byte(home, entry) -> None:
    pack = home / "store" / "packs" / f"{entry.pack:08d}.pack"
    offset = entry.body_offset + entry.stored_len // 2
    assert offset >= 16 + 80
    with open(pack, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def test_check_read_data_finds_flipped_byte(populated_copy, fs):
    node = populated_copy.node
    entries = fs.pack_entries(node.home)
    victim = next(e for e in entries if e.kind == 1)  # a data blob (kind 1)
    _flip_byte(node.home, victim)

    text = node.run("check", "--read-data", expect=1)
    problems = [line for line in text.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 1
    assert f"blob {victim.blob_id[:16]}" in problems[0]
    assert f"pack {victim.pack:08d}" in problems[0]
    assert text.stdout.rstrip().endswith("1 problem found")

    report = node.json("check", "--read-data", expect=1)
    assert report["ok"] is False
    (problem,) = report["problems"]
    assert problem["what"] == "corrupt_blob"
    assert problem["blob"] == victim.blob_id
    assert problem["pack"] == victim.pack


def test_check_read_data_subsets_cover_every_blob(populated):
    node = populated.node
    first = node.json("check", "--read-data-subset", "1/2")
    second = node.json("check", "--read-data-subset", "2/2")
    assert first["ok"] and second["ok"]
    assert first["blobs"] == second["blobs"]
    assert first["blobs_read"] > 0 and second["blobs_read"] > 0
    assert first["blobs_read"] + second["blobs_read"] == first["blobs"]


@pytest.mark.parametrize(
    ("subset", "message"),
    [("3/2", "need 1 <= N <= M"), ("half", "expected N/M")],
    ids=["n-above-m", "not-a-fraction"],
)
def test_check_bad_subset_is_usage_error(populated, subset, message):
    result = populated.node.run("check", "--read-data-subset", subset, expect=2)
    assert message in result.stderr
    assert result.stdout == ""


def test_stats_json(populated, fs):
    p = populated
    stats = p.node.json("stats")
    assert set(stats) >= STATS_JSON_KEYS
    entries = fs.pack_entries(p.node.home)
    assert stats["blob_count"] == len(entries)
    assert stats["pack_count"] == len(list((p.node.home / "store" / "packs").glob("*.pack")))
    assert stats["stored_bytes"] == sum(e.stored_len for e in entries)
    assert stats["logical_bytes"] == sum(b["bytes_processed"] for b in p.backups)
    assert stats["unreferenced_bytes"] == 0
    # s1 and s2 share almost all their bytes (big.bin): dedup roughly halves them.
    assert 1.5 < stats["dedup_ratio"] <= 2.0
    assert stats["compression_ratio"] > 0
    assert isinstance(stats["dedup_ratio"], float)


def test_stats_text(populated):
    out = populated.node.run("stats").stdout
    assert "snapshots:          3" in out
    for label in ("logical size:", "stored size:", "dedup ratio:", "compression ratio:"):
        assert label in out


def test_snapshots_store_in_use_by_other_process(populated_copy, store_holder):
    node = populated_copy.node
    holder = store_holder(node.home)
    result = node.run("snapshots", expect=1)
    assert f"store in use by process {holder.pid}" in result.stderr
    # The kernel drops the lock with its holder, even on SIGKILL.
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert len(node.snapshots()) == 3
