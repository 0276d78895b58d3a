#!/usr/bin/env python3
"""Restore-from-peers benchmark: an owner that lost its disk fetches a snapshot back from
1 and from 3 holders, each holder a separate process, on loopback.

Method: the owner backs up the corpus (``bench/corpus.py --scale S``, ``day1/``; default
0.2, ~200 MB), announces it, and three holders replicate it (setup, in one process). Then,
for 1 and for 3 holders: the holders are started as separate processes (this script with
``--serve``: open the holder's repository, run its mesh, print its address), the owner's
home is rebuilt from its keys (empty store), its snapshot records recovered from its
announcements, and ``fetch_snapshot`` is timed: walk the trees level by level and fetch
every tree and chunk, each verified against its id and stored. Reported: blob bytes
fetched per second, and blobs per holder.

    .venv/bin/python bench/restore_from_peers.py --scale 0.2
    .venv/bin/python bench/restore_from_peers.py --corpus DIR   # any directory
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.ops import BackupOptions, run_backup
from node.p2p import MeshSettings, fetch_snapshot, open_mesh
from node.repo import KDF_PROFILES, HomePaths, InitOptions, init_home, open_repository
from protocol import BlobId

PASS = "bench"
SETTINGS = MeshSettings(sync_interval=3600, dht=False, gossip=False)


def _repo(root: Path):  # type: ignore[no-untyped-def]
    home = HomePaths(root)
    init_home(home, PASS, InitOptions(kdf=KDF_PROFILES["testing-only-insecure"]), "")
    return open_repository(home, PASS)


async def _setup(tmp: Path, corpus: Path) -> tuple[BlobId, int]:
    owner = _repo(tmp / "owner")
    holders = [_repo(tmp / f"h{i}") for i in range(3)]
    t0 = time.perf_counter()
    snap = BlobId(bytes.fromhex(run_backup(owner, BackupOptions(paths=[corpus])).snapshot_id))
    print(f"backup: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    try:
        async with contextlib.AsyncExitStack() as stack:
            a = await stack.enter_async_context(open_mesh(owner, SETTINGS))
            meshes = [await stack.enter_async_context(open_mesh(r, SETTINGS)) for r in holders]
            for h in meshes:
                a.add_peer(h.peer_id, addrs=h.addrs, store_at=True)
                h.add_peer(a.peer_id, addrs=a.addrs, store_for=True)
            await a.announce(snap)
            for h in meshes:
                await h.sync()
                held = h.state.held_for(a.host.peer_id.to_bytes())[1]
        print(f"replicated {held / 1e6:.0f} MB to 3 holders", file=sys.stderr)
    finally:
        owner.close()
        for repo in holders:
            repo.close()
    return snap, held


def _rebuild(tmp: Path, name: str) -> Path:
    """A home with the owner's keys and an empty store (what recovery from the kit gives)."""
    old, new = HomePaths(tmp / "owner"), HomePaths(tmp / name)
    shutil.copytree(old.root, new.root, ignore=shutil.ignore_patterns("store"))
    scratch = HomePaths(tmp / (name + "-scratch"))
    init_home(scratch, PASS, InitOptions(kdf=KDF_PROFILES["testing-only-insecure"]), "")
    shutil.move(scratch.store, new.store)
    shutil.rmtree(scratch.root)
    return new.root


async def _measure(tmp: Path, snap: BlobId, holders: list[dict[str, Any]], name: str) -> dict:
    home = HomePaths(_rebuild(tmp, name))
    repo = open_repository(home, PASS)
    try:
        async with open_mesh(repo, SETTINGS) as a:
            for h in holders:
                a.add_peer(h["peer_id"], addrs=h["addrs"], store_at=True)
            restored = await a.recover_snapshots()
            assert restored == [snap], restored
            t0 = time.perf_counter()
            report = await fetch_snapshot(a, repo, snap)
            dt = time.perf_counter() - t0
    finally:
        repo.close()
    assert report.ok, report.affected[:5]
    return {
        "peers": len(holders),
        "blobs": report.fetched,
        "bytes": report.bytes,
        "seconds": round(dt, 2),
        "mb_per_s": round(report.bytes / dt / 1e6, 1),
        "blobs_per_peer": sorted(report.by_peer.values(), reverse=True),
    }


def _start_holders(tmp: Path, n: int) -> tuple[list[subprocess.Popen[str]], list[dict[str, Any]]]:
    procs, infos = [], []
    for i in range(n):
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(tmp / f"h{i}")],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        infos.append(json.loads(proc.stdout.readline()))
    return procs, infos


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


async def _serve(home: Path) -> None:
    repo = open_repository(HomePaths(home), PASS)
    try:
        async with open_mesh(repo, SETTINGS) as mesh:
            print(json.dumps({"peer_id": mesh.peer_id, "addrs": mesh.addrs}), flush=True)
            await trio.sleep_forever()
    finally:
        repo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--corpus", type=Path, help="back up this directory instead")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(_serve, args.serve)
        return
    corpus = args.corpus
    if corpus is None:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            [sys.executable, str(here / "corpus.py"), "--scale", str(args.scale)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        corpus = Path(out.stdout.strip().splitlines()[-1]) / "day1"
    scratch = Path(os.environ.get("SV_BENCH_DIR", "/tmp/sv-bench"))
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="restore-", dir=scratch) as tmp_name:
        tmp = Path(tmp_name)
        snap, held = trio.run(_setup, tmp, corpus)
        results = []
        for n in (1, 3):
            procs, infos = _start_holders(tmp, n)
            try:
                results.append(trio.run(_measure, tmp, snap, infos, f"owner{n}"))
            finally:
                _stop(procs)
    doc = {"corpus": corpus.name, "snapshot_bytes": held, "runs": results}
    if args.corpus is None:
        doc["scale"] = args.scale
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
