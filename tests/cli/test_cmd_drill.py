"""`shadowvault drill` and `drill history` as real processes on a populated home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_drill_json_report_then_history(populated_copy: Any, tmp_path: Path) -> None:
    node = populated_copy.node
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = node.run("drill", "--format", "json", "--max-rto", "1h", "--scratch", scratch)
    drill = json.loads(out.stdout)["drill"]
    assert drill["ok"] is True
    assert drill["snapshot_id"].startswith(populated_copy.s3[:8])  # latest
    assert {c["name"]: c["ok"] for c in drill["checks"]} == {
        "restore": True,
        "verify": True,
        "rto": True,
        "cleanup": True,
    }
    assert drill["files"] > 0 and drill["verified"] > 0
    assert list(scratch.iterdir()) == []

    older = node.run("drill", "--snapshot", populated_copy.s1[:10], "--format", "json")
    older_drill = json.loads(older.stdout)["drill"]
    assert older_drill["snapshot_id"].startswith(populated_copy.s1[:10])
    # s1 holds the big file, symlinks, hard links, a FIFO, a read-only dir, a non-UTF-8 name.
    assert older_drill["ok"] is True, older_drill["checks"]

    history = node.json("drill", "history")
    assert [d["id"] for d in history] == [older_drill["id"], drill["id"]]
    text = node.run("drill", "history").stdout
    assert drill["id"] in text and "pass" in text


def test_drill_missed_rpo_fails_with_report_file(populated_copy: Any, tmp_path: Path) -> None:
    node = populated_copy.node
    report = tmp_path / "drill.md"
    out = node.run("drill", "--max-rpo", "0.001s", "--report", report, expect=1)
    assert "FAILED" in out.stdout and str(report) in out.stdout
    text = report.read_text()
    assert text.startswith("# Recovery drill ")
    assert "| rpo | FAIL |" in text
    assert "## What to do" in text and "back up more often" in text
    (last,) = node.json("drill", "history", "--limit", "1")
    assert last["ok"] is False


def test_drill_framework_evidence(populated_copy: Any) -> None:
    node = populated_copy.node
    out = node.run("drill", "--framework", "hipaa").stdout
    assert "## Compliance evidence: HIPAA" in out
    assert "not a certification" in out
    assert "| 164.308(a)(7)(ii)(D) | Testing and revision procedures | evidenced |" in out
    assert "no offsite copy shown: no passing drill from peers" in out
    doc = json.loads(node.run("drill", "--framework", "NIST", "--format", "json").stdout)
    controls = {c["id"]: c["status"] for c in doc["compliance"]["controls"]}
    assert controls["CP-4"] == "evidenced"
    assert controls["CP-6"] == "not evidenced"


def test_drill_refusals_and_bad_input(populated_copy: Any) -> None:
    home = populated_copy.node
    peers = home.run("drill", "--from-peers", expect=1)  # no running node: no mesh
    assert "needs the mesh of a running node" in peers.stderr
    assert "--max-rto" in home.run("drill", "--max-rto", "soon", expect=2).stderr
    assert "--framework must be one of" in home.run("drill", "--framework", "PCI", expect=2).stderr
    assert "--format must be md or json" in home.run("drill", "--format", "pdf", expect=2).stderr
    missing = home.run("drill", "--snapshot", "deadbeef00", expect=1)
    assert "deadbeef00" in missing.stderr
    assert home.json("drill", "history") == []  # none of these ran a drill


def test_drill_targets_and_keep_from_config(populated_copy: Any) -> None:
    node = populated_copy.node
    cfg = {"SHADOWVAULT_DRILL__MAX_RPO": "0.001s", "SHADOWVAULT_DRILL__KEEP_REPORTS": "2"}
    out = node.run("drill", "--format", "json", env=cfg, expect=1)
    drill = json.loads(out.stdout)["drill"]
    assert drill["max_rpo"] == 0.001 and drill["max_rto"] is None
    assert [c["name"] for c in drill["checks"] if not c["ok"]] == ["rpo"]
    # A flag wins over the config.
    node.run("drill", "--max-rpo", "30d", env=cfg)
    node.run("drill", "--max-rpo", "30d", env=cfg)
    assert [d["ok"] for d in node.json("drill", "history")] == [True, True]  # keep 2
    refused = node.run("drill", env={"SHADOWVAULT_DRILL__FROM_PEERS": "true"}, expect=1)
    assert "needs the mesh of a running node" in refused.stderr
    bad = node.run("drill", env={"SHADOWVAULT_DRILL__MAX_RTO": "soon"}, expect=1)
    assert "SHADOWVAULT_DRILL__MAX_RTO" in bad.stderr


def test_drill_on_an_empty_node(node: Any) -> None:
    empty = node.run("drill", expect=1)
    assert "no snapshots" in empty.stderr
    assert "no drills yet" in node.run("drill", "history").stdout
