"""Two real nodes: SIGTERM to the holder in the middle of replication leaves a store that
checks clean, and after a restart replication finishes; the owner's `status` says so."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_mid_replication_then_restart_completes(
    node: Any, new_home: Any, daemon_for: Any, tmp_path: Path, fs: Any
) -> None:
    owner, holder = node, new_home
    holder.run("init")
    owner_id, holder_id = owner.json("id")["peer_id"], holder.json("id")["peer_id"]
    owner_port, holder_port = _free_port(), _free_port()
    owner_addr = f"/ip4/127.0.0.1/tcp/{owner_port}"
    holder_addr = f"/ip4/127.0.0.1/tcp/{holder_port}"
    owner.run("peers", "add", holder_id, "--addr", holder_addr, "--store-at", "--name", "holder")
    holder.run("peers", "add", owner_id, "--addr", owner_addr, "--store-for", "--name", "owner")

    src = tmp_path / "data"
    for i in range(48):  # ~48 MiB of chunks: replication takes a moment
        fs.write_file(src / f"f{i:02d}.bin", os.urandom(1 << 20))
    a = daemon_for(owner, listen=owner_addr)
    owner.passphrase = None
    snap = owner.json("backup", src)["snapshot_id"]

    b = daemon_for(holder, listen=holder_addr)
    deadline = time.monotonic() + 60
    held = 0
    while time.monotonic() < deadline:
        peers = b.api("GET", "/api/v1/peers").json()
        held = next(p["held_for"] for p in peers if p["peer_id"] == owner_id)
        if held > 0:
            break
        time.sleep(0.05)
    assert held > 0, b.log()
    assert b.stop(signal.SIGTERM) == 0, b.log()

    # The holder's store is whole: every blob it kept reads back and matches its id.
    report = holder.json("check", "--read-data")
    assert report["ok"], report

    daemon_for(holder, listen=holder_addr)
    owner.run("status", "--wait-replicated", "1", "--timeout", "90")
    status = owner.json("status")
    row = next(r for r in status["snapshots"] if r["id"] == snap)
    assert row["holders"] == [holder_id]
    holder.passphrase = None
    assert holder.json("check", "--read-data")["ok"]
    refused = a.api("GET", "/metrics").text
    assert "shadowvault_p2p_announcements_total" in refused
