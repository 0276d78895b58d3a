"""The CLI through a running daemon: same output and exit codes, jobs, tokens, SIGTERM.

Each test starts the real ``shadowvault node run`` on a copy of a populated home, then
runs the real CLI against the same home: it finds the daemon through ``daemon.json``
and talks to its API with the owner token (no passphrase needed).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any


def _outcome(node: Any, *args: Any, binary: bool = False) -> tuple[int, Any, str]:
    result = node.run(*args, expect=None, binary=binary)
    return result.returncode, result.stdout, result.stderr


def test_every_reading_command_is_the_same_through_the_daemon(populated_copy, daemon_for) -> None:
    p = populated_copy
    node = p.node
    commands: list[tuple[Any, ...]] = [
        ("snapshots",),
        ("snapshots", "--json"),
        ("snapshots", "--tag", "weekly", "--json"),
        ("ls", p.s1, str(p.src)),
        ("ls", p.s2, str(p.src), "--recursive", "--json"),
        ("find", "*.txt"),
        ("find", "*.log", "--snapshot", p.s2[:10], "--json"),
        ("diff", p.s1, p.s2),
        ("diff", p.s1, p.s2, "--json"),
        ("check",),
        ("stats", "--json"),
        ("ls", "deadbeefdeadbeef"),  # unknown snapshot: exit 1, same message
        ("ls", "abc"),  # too short a prefix
        ("diff", p.s1, "latest", "--json"),
        ("forget", "--keep-last", "1", "--dry-run"),
        ("forget", "--keep-daily", "2", "--group-by", "", "--dry-run", "--json"),
        ("forget", "--dry-run"),  # no policy: refused, exit 2
        ("holds",),
        ("audit", "verify"),
        ("gc", "--dry-run", "--grace", "soon"),  # bad span: exit 2
        ("dump", p.s1, str(p.src / "nope.txt")),
    ]
    local = [_outcome(node, *c) for c in commands]
    local_dump = _outcome(node, "dump", p.s1, str(p.src / "big.bin"), binary=True)

    daemon_for(node)
    # Through the daemon no passphrase is needed: prove it by giving none.
    node.passphrase = None
    remote = [_outcome(node, *c) for c in commands]
    remote_dump = _outcome(node, "dump", p.s1, str(p.src / "big.bin"), binary=True)

    for cmd, a, b in zip(commands, local, remote, strict=True):
        assert a == b, f"`{' '.join(map(str, cmd))}` differs through the daemon:\n{a}\n{b}"
    assert local[-1][0] == 1 and "nope.txt in snapshot" in local[-1][2]
    assert local_dump[0] == remote_dump[0] == 0
    assert remote_dump[1] == p.big


def test_backup_restore_and_check_run_as_daemon_jobs(
    populated_copy, daemon_for, tmp_path: Path, fs
) -> None:
    node = populated_copy.node
    src = tmp_path / "fresh"
    fs.write_file(src / "a.txt", b"through the daemon\n")
    fs.write_file(src / "d" / "b.bin", os.urandom(300_000))
    d = daemon_for(node)
    node.passphrase = None

    summary = node.json("backup", src, "--tag", "viadaemon")
    assert summary["files_new"] == 2 and summary["warnings"] == []
    snaps = node.snapshots()
    assert snaps[-1]["id"] == summary["snapshot_id"] and snaps[-1]["tags"] == ["viadaemon"]

    target = tmp_path / "out"
    result = node.json("restore", summary["snapshot_id"][:12], "--target", target, "--verify")
    assert result["ok"] and result["verified"] == 2
    assert fs.tree_entries(src)[0] == fs.tree_entries(fs.restored_root(target, src))[0]
    # Restoring again must not overwrite: exit 1, each file named.
    again = node.run("restore", "latest", "--target", target, expect=1)
    assert "exists, not overwritten" in again.stderr

    report = node.json("check", "--read-data")
    assert report["ok"] and report["blobs_read"] > 0

    missing = node.run("backup", tmp_path / "no-such-dir", expect=1)
    assert "no such file or directory; nothing was backed up" in missing.stderr
    bad = node.run("backup", src, "--compression", "99", expect=2)
    assert "compression" in bad.stderr

    drill = node.run("drill", "--format", "json", "--scratch", tmp_path)
    assert json.loads(drill.stdout)["drill"]["ok"] is True
    assert node.json("drill", "history")[0]["snapshot_id"] == summary["snapshot_id"]

    jobs = d.api("GET", "/api/v1/jobs").json()
    kinds = {(j["kind"], j["state"]) for j in jobs["history"]}
    assert {("backup", "succeeded"), ("restore", "succeeded"), ("check", "succeeded")} <= kinds
    assert ("drill", "succeeded") in kinds
    assert ("backup", "failed") in kinds


def test_forget_hold_gc_and_audit_through_the_daemon(populated_copy, daemon_for) -> None:
    p = populated_copy
    node = p.node
    daemon_for(node)
    node.passphrase = None
    node.run("hold", p.s1, "--until", "30d", "--reason", "legal")
    result = node.json("forget", "--keep-last", "1", "--group-by", "", "--prune")
    assert p.s2 in result["removed"] and p.s1 in result["held"]
    assert result["gc"]["blobs_removed"] > 0
    left = {s["id"] for s in node.snapshots()}
    assert left == {p.s1, p.s3}
    assert node.json("check", "--read-data")["ok"]
    actions = [e["action"] for e in node.json("audit")]
    assert "hold" in actions and "forget" in actions and "gc" in actions
    assert node.json("audit", "verify")["ok"]
    # A held snapshot cannot be forgotten by id either.
    refused = node.run("forget", p.s1[:12], expect=1)
    assert "held" in refused.stderr


def test_roles_and_tokens_made_by_the_cli(populated_copy, daemon_for) -> None:
    node = populated_copy.node
    d = daemon_for(node)
    viewer = node.run("token", "create", "--role", "viewer", "--name", "grafana").stdout.strip()
    operator = node.json("token", "create", "--role", "operator", "--name", "ci")["token"]
    assert viewer.startswith("svt_") and viewer not in (node.home / "api-tokens.json").read_text()

    assert d.api("GET", "/api/v1/snapshots", viewer).status_code == 200
    body = {"paths": [str(populated_copy.src2)]}
    assert d.api("POST", "/api/v1/backups", viewer, json=body).status_code == 403
    assert (
        d.api("POST", "/api/v1/tokens", operator, json={"name": "x", "role": "admin"}).status_code
        == 403
    )
    assert d.api("POST", "/api/v1/backups", operator, json=body).status_code == 202
    # Bodies are validated: the field is named.
    bad = d.api("POST", "/api/v1/backups", operator, json={"paths": ["relative/path"]})
    assert bad.status_code == 422 and "paths" in json.dumps(bad.json())

    listed = node.json("token", "list")
    assert {"name": "grafana", "role": "viewer"} in listed
    node.run("token", "revoke", "grafana")
    assert d.api("GET", "/api/v1/snapshots", viewer).status_code == 401
    assert node.run("token", "revoke", "owner", expect=1).stderr.startswith("error:")
    assert node.run("token", "create", "--role", "root", "--name", "x", expect=2)


def test_sigterm_mid_backup_leaves_a_store_that_checks_and_restarts(
    node, daemon_for, tmp_path: Path, fs
) -> None:
    src = tmp_path / "many"
    for i in range(1500):
        fs.write_file(src / f"d{i % 30}" / f"f{i}.bin", os.urandom(20_000 + i))
    d = daemon_for(node)
    job = d.api("POST", "/api/v1/backups", json={"paths": [str(src)]}).json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = d.api("GET", f"/api/v1/jobs/{job['id']}").json()
        if state["progress"]["files"] > 0 or state["state"] != "queued":
            break
        time.sleep(0.02)
    assert d.stop(signal.SIGTERM) == 0
    assert not (node.home / "daemon.json").exists()

    # The store is whole without the daemon: check reads every blob, and there is no
    # half snapshot (either none, or a complete one if the backup won the race).
    report = node.json("check", "--read-data")
    assert report["ok"], report
    snaps = node.snapshots()

    d2 = daemon_for(node)
    history = d2.api("GET", "/api/v1/jobs").json()["history"]
    first = next(j for j in history if j["id"] == job["id"])
    # Usually cancelled mid-way; if the backup won the race it is whole and recorded.
    assert first["state"] in ("cancelled", "succeeded")
    assert len(snaps) == (1 if first["state"] == "succeeded" else 0)
    done = node.json("backup", src)
    assert done["files_new"] + done["files_unmodified"] + done["files_changed"] == 1500


def test_node_stop_and_repair_needing_the_store_to_itself(populated_copy, daemon_for) -> None:
    node = populated_copy.node
    d = daemon_for(node)
    refused = node.run("repair", "index", expect=1)
    assert f"pid {d.proc.pid}" in refused.stderr and "node stop" in refused.stderr
    assert "stopped" in node.run("node", "stop").stdout
    assert d.proc.wait(30) == 0
    assert not (node.home / "daemon.json").exists()
    node.run("repair", "index")  # the store is free now
    assert node.run("node", "stop", expect=1).stderr.startswith("error: no node daemon")


def test_node_run_refuses_an_invalid_config(node) -> None:
    config = node.home / "config.yaml"
    config.write_text(config.read_text().replace("level: info", "level: loud", 1))
    result = node.run("node", "run", "--api", "127.0.0.1:0", expect=1)
    assert "logging.level" in result.stderr and "loud" in result.stderr
    assert not (node.home / "daemon.json").exists()
    bad_flag = node.run("node", "run", "--listen", "localhost:4001", expect=1)
    assert "p2p.listen" in bad_flag.stderr
