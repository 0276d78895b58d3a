#!/usr/bin/env python3
"""How the mesh scales: N real ``node run`` processes on loopback (integration/cluster.py).

Node 1 is the owner; every other node stores for it. Peers are added with the CLI before
start. Measured, from the moment the last node is up:

- discovery: until every node reports each of its configured peers connected
  (``/api/v1/peers``);
- announcement spread: from the end of a backup on node 1 until every holder has its
  announcement (an entry for node 1's newest seq in ``/api/v1/replication``, or the
  snapshot already complete);
- replication: from the end of that backup until node 1 has signed receipts from all
  N-1 holders (``/api/v1/status`` replicas).

    .venv/bin/python bench/mesh_scale.py --nodes 20      # make cluster-20
    .venv/bin/python bench/mesh_scale.py --nodes 10      # the 10-node discovery figure
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.cluster import Cluster, ClusterNode, write_tree


def _get(node: ClusterNode, path: str) -> Any:
    headers = {"Authorization": f"Bearer {node.token()}"}
    return httpx.get(node.api_url + path, headers=headers, timeout=30).json()


def _until(what: str, done: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``done()`` holds (polled every 0.2 s); raises after ``timeout``."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"{what}: not reached within {timeout:g}s")
        time.sleep(0.2)
    return time.monotonic() - start


def run(nodes: int, mib: int, root: Path) -> dict[str, float]:
    cluster = Cluster(root)
    t0 = time.monotonic()
    owner, *holders = cluster.add_nodes([f"n{i}" for i in range(1, nodes + 1)])
    cluster.store_for(owner, holders)
    setup = time.monotonic() - t0
    try:
        t0 = time.monotonic()
        cluster.start_all()
        start = time.monotonic() - t0

        def all_connected() -> bool:
            return all(
                all(p["connected"] for p in _get(n, "/api/v1/peers"))
                for n in cluster.nodes.values()
            )

        discovery = _until("discovery", all_connected, 300)
        print(
            f"setup {setup:.1f}s, start {start:.1f}s, discovery {discovery:.2f}s", file=sys.stderr
        )
        src = write_tree(root / "src", files=max(1, mib), size=1024 * 1024)
        snap = owner.json("backup", src)["snapshot_id"]

        def reached(holder: ClusterNode) -> bool:
            rep = _get(holder, "/api/v1/replication")
            return any(q["owner"] == owner.peer_id for q in rep["replication"]) or any(
                h == holder.peer_id for h in _get(owner, "/api/v1/status")["replicas"].get(snap, [])
            )

        pending = {h.name: h for h in holders}

        def spread() -> bool:
            for name, h in list(pending.items()):
                if reached(h):
                    del pending[name]
            return not pending

        announce = _until("announcement spread", spread, 300)

        def replicated() -> bool:
            return len(_get(owner, "/api/v1/status")["replicas"].get(snap, [])) >= nodes - 1

        replication = announce + _until("replication", replicated, 600)
    finally:
        cluster.stop_all()
    return {
        "nodes": nodes,
        "backup_mib": mib,
        "setup_s": round(setup, 2),
        "start_s": round(start, 2),
        "discovery_s": round(discovery, 2),
        "announcement_spread_s": round(announce, 2),
        "replication_s": round(replication, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--mib", type=int, default=8, help="size of the backup (MiB)")
    parser.add_argument("--keep", action="store_true", help="keep the homes and logs")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sv-mesh-scale-"))
    try:
        print(json.dumps(run(args.nodes, args.mib, root)))
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"homes and logs in {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
