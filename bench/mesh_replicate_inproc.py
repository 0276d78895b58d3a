#!/usr/bin/env python3
"""Mesh replication benchmark: one owner, one holder, two hosts on loopback in one process.

Method: the owner backs up ``--mib`` MiB of random files (incompressible, default chunker
bounds), announces the snapshot, and the holder runs one replication round
(``Mesh.sync``: pull the announcement, fetch the manifest, then every blob in batches of
256 ids over one long-lived Noise+Yamux stream, verify each against its id, store it).
Reported: the time of that round and the blob bytes it moved per second. Both nodes share
the process (and its GIL), so this is a floor for two processes.

    .venv/bin/python bench/mesh_replicate_inproc.py --mib 256

bench/mesh_replicate.py measures two ``node run`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.ops import BackupOptions, run_backup
from node.p2p import MeshSettings, open_mesh
from node.repo import KDF_PROFILES, HomePaths, InitOptions, init_home, open_repository
from protocol import BlobId


def _repo(root: Path):  # type: ignore[no-untyped-def]
    home = HomePaths(root)
    init_home(home, "bench", InitOptions(kdf=KDF_PROFILES["testing-only-insecure"]), "")
    return open_repository(home, "bench")


async def _run(tmp: Path, mib: int) -> dict[str, float]:
    owner, holder = _repo(tmp / "owner"), _repo(tmp / "holder")
    src = tmp / "src"
    src.mkdir()
    for i in range(max(1, mib // 16)):
        (src / f"f{i}").write_bytes(os.urandom(16 * 1024 * 1024))
    snap = BlobId(bytes.fromhex(run_backup(owner, BackupOptions(paths=[src])).snapshot_id))
    settings = MeshSettings(sync_interval=3600)
    try:
        async with open_mesh(owner, settings) as a, open_mesh(holder, settings) as b:
            a.add_peer(b.peer_id, addrs=b.addrs, store_at=True)
            b.add_peer(a.peer_id, addrs=a.addrs, store_for=True)
            t0 = time.perf_counter()
            await a.announce(snap)
            t1 = time.perf_counter()
            await b.sync()
            t2 = time.perf_counter()
            q = b.state.qstate(a.host.peer_id.to_bytes(), 1)
            assert q is not None and q.state == "complete", q
            moved = b.state.held_for(a.host.peer_id.to_bytes())[1]
    finally:
        owner.close()
        holder.close()
    return {
        "payload_mib": mib,
        "blob_bytes": moved,
        "announce_s": round(t1 - t0, 3),
        "replicate_s": round(t2 - t1, 3),
        "mb_per_s": round(moved / (t2 - t1) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sv-mesh-bench-") as tmp:
        result = trio.run(_run, Path(tmp), args.mib)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
