"""`drill --from-peers` with real `node run` processes on loopback: the owner's offsite
copies are proven without its own store, and a missing or unreachable copy fails the drill
with a report that names the peer and what to do."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

FOREIGN = 5  # BlobKind.FOREIGN in node/repo/_pack.py: another owner's blob held for it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _corrupt(home: Path, entries: list[Any]) -> None:
    """Flip one byte in the middle of each entry's sealed bytes (the pack stays parseable)."""
    for e in entries:
        path = home / "store" / "packs" / f"{e.pack:08d}.pack"
        with open(path, "r+b") as f:
            f.seek(e.body_offset + e.stored_len // 2)
            byte = f.read(1)
            f.seek(e.body_offset + e.stored_len // 2)
            f.write(bytes([byte[0] ^ 0xFF]))


def _drill(node: Any, *args: str, expect: int) -> dict[str, Any]:
    out = node.run("drill", "--format", "json", *args, expect=expect)
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_drill_from_peers_proves_the_offsite_copy(
    node: Any, new_home: Any, daemon_for: Any, tmp_path: Path, fs: Any
) -> None:
    owner, holder = node, new_home
    holder.run("init")
    owner_id, holder_id = owner.json("id")["peer_id"], holder.json("id")["peer_id"]
    owner_addr = f"/ip4/127.0.0.1/tcp/{_free_port()}"
    holder_addr = f"/ip4/127.0.0.1/tcp/{_free_port()}"
    owner.run("peers", "add", holder_id, "--addr", holder_addr, "--store-at", "--name", "vault")
    holder.run("peers", "add", owner_id, "--addr", owner_addr, "--store-for", "--name", "owner")

    src = tmp_path / "data"
    for i in range(6):
        fs.write_file(src / "sub" / f"f{i}.bin", os.urandom(300_000 + i))
    fs.write_file(src / "note.txt", b"hello offsite\n")
    os.symlink("note.txt", src / "link")
    a = daemon_for(owner, listen=owner_addr)
    b = daemon_for(holder, listen=holder_addr)
    owner.passphrase = holder.passphrase = None  # everything goes through the daemons
    owner.run("backup", src)
    owner.run("status", "--wait-replicated", "1", "--timeout", "90")

    # Passes from the holder's copy; the report names it and what it served.
    doc = _drill(owner, "--from-peers", "--framework", "NIST", expect=0)
    drill = doc["drill"]
    assert drill["ok"] is True and drill["source"] == "peers", drill["checks"]
    assert {c["name"]: c["ok"] for c in drill["checks"]} == {
        "peers": True,
        "restore": True,
        "verify": True,
        "cleanup": True,
    }
    (row,) = drill["peers"]
    assert row["peer_id"] == holder_id and row["name"] == "vault"
    assert row["blobs"] > 6 and row["bytes"] > 1_800_000 and row["error"] == ""
    assert (drill["files"], drill["verified"]) == (8, 7), (drill["files"], drill["verified"])
    assert "fetch from peers" in [s["name"] for s in drill["steps"]]
    controls = {c["id"]: c["status"] for c in doc["compliance"]["controls"]}
    assert controls["CP-6"] == "evidenced"  # the passing drill from peers proves offsite copies

    # Every local blob damaged (snapshot record, trees, data): the plain drill fails, the
    # drill from peers still passes, so it read none of them.
    local = fs.pack_entries(owner.home)
    assert local
    _corrupt(owner.home, local)
    plain = owner.run("drill", expect=1)
    assert "drill" in plain.stderr + plain.stdout
    again = _drill(owner, "--from-peers", expect=0)["drill"]
    assert again["ok"] and again["files"] == 8 and again["peers"][0]["blobs"] == row["blobs"]

    # The holder gone: the drill fails and says which peer and what to do.
    assert b.stop(signal.SIGTERM) == 0, b.log()
    gone = _drill(owner, "--from-peers", expect=1)["drill"]
    peers_check = next(c for c in gone["checks"] if c["name"] == "peers")
    assert not peers_check["ok"]
    assert any(
        f"vault ({holder_id})" in p and "request failed" in p for p in peers_check["problems"]
    ), peers_check
    assert "shadowvault status" in peers_check["remedy"]

    # The holder back, but its copy of the file data rotted: it lacks those blobs, the
    # drill names the peer, the count and the files affected.
    data = [e for e in fs.pack_entries(holder.home) if e.kind == FOREIGN and e.stored_len > 4096]
    assert data
    _corrupt(holder.home, data)
    holder.passphrase = holder.secrets[0]  # `node run` unlocks the store
    daemon_for(holder, listen=holder_addr)
    report = owner.run("drill", "--from-peers", expect=1).stdout
    assert "FAILED" in report and "| peers | FAIL |" in report
    assert "## Peers" in report and f"| {holder_id} | vault | " in report
    assert f"peer vault ({holder_id}) lacks {len(data)} blobs" in report
    assert "/sub/f0.bin: needs a blob no peer has" in report
    assert "`shadowvault status`" in report
    history = owner.json("drill", "history")
    assert [d["ok"] for d in history] == [False, False, True, True]
    assert a.proc.poll() is None


def test_drill_from_peers_needs_a_node_and_a_peer(
    node: Any, daemon_for: Any, tmp_path: Path, fs: Any
) -> None:
    fs.write_file(tmp_path / "data" / "a.txt", b"alone\n")
    node.run("backup", tmp_path / "data")
    # No running node: no mesh to fetch from.
    refused = node.run("drill", "--from-peers", expect=1)
    assert "needs the mesh of a running node" in refused.stderr
    assert "shadowvault node run" in refused.stderr
    assert (
        "needs the mesh"
        in node.run("drill", env={"SHADOWVAULT_DRILL__FROM_PEERS": "true"}, expect=1).stderr
    )
    assert node.json("drill", "history") == []

    # A running node with no peer storing for it: the drill runs and fails, saying so;
    # a scheduled drill with drill.from_peers in the config goes the same way.
    config = node.home / "config.yaml"
    text = config.read_text()
    drill_section = "drill:\n  # When to run a disaster-recovery drill ('' never).\n  cron: \"\""
    assert drill_section in text and "  from_peers: false\n" in text
    text = text.replace(drill_section, drill_section.replace('""', '"* * * * * */2"'))
    config.write_text(text.replace("  from_peers: false\n", "  from_peers: true\n"))
    daemon_for(node)
    node.passphrase = None
    drill = _drill(node, "--from-peers", expect=1)["drill"]
    failed = {c["name"]: c for c in drill["checks"] if not c["ok"]}
    assert set(failed) == {"peers", "restore", "verify"}
    assert "no peer stores this node's snapshots" in failed["peers"]["summary"]
    assert "--store-at" in failed["peers"]["remedy"]
    assert drill["peers"] == [] and drill["files"] == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = node.json("jobs")["history"]
        scheduled = [j for j in jobs if j["source"] == "schedule:drill"]
        if any(j["state"] == "succeeded" for j in scheduled):
            break
        time.sleep(0.3)
    assert scheduled and scheduled[0]["params"]["from_peers"] is True, jobs
    assert {d["source"] for d in node.json("drill", "history")} == {"peers"}
