#!/usr/bin/env python3
"""What retention on peers costs gc at a holder (``node.p2p.ForeignRetention``).

A holder store gets N foreign blobs (200 bytes each) of one owner, in 10 announced
snapshots with their manifests, as replication leaves them. Three gcs run on fresh copies
of that store, interleaved over ``--rounds`` rounds:

* ``all-roots``: the old behaviour, every FOREIGN blob is a root (``extra_roots``);
* ``retention-keep``: ``run_gc`` with nothing forgotten (streams replayed, nothing goes);
* ``retention-forget``: ``run_gc`` after the owner forgot half of the snapshots (their
  manifests are read and half of the blobs go).

Reported: wall and CPU (user+sys) seconds per gc, and ratios to ``all-roots``.

    .venv/bin/python bench/gc_foreign.py --blobs 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import nacl.signing  # noqa: E402

from node.ops import run_gc  # noqa: E402
from node.p2p import MeshState  # noqa: E402
from node.repo import (  # noqa: E402
    KDF_PROFILES,
    BlobKind,
    HomePaths,
    InitOptions,
    collect_garbage,
    init_home,
    open_repository,
)
from protocol import Announcement, BlobId, Manifest, Notice, blob_id_of, peer_id_from_public  # noqa: E402

PASSWORD = "bench"
SNAPSHOTS = 10


def populate(home: Path, n: int) -> None:
    paths = HomePaths(home)
    init_home(paths, PASSWORD, InitOptions(kdf=KDF_PROFILES["testing-only-insecure"]), "")
    repo = open_repository(paths, PASSWORD)
    owner_key = nacl.signing.SigningKey.generate()
    owner = peer_id_from_public(bytes(owner_key.verify_key))
    state = MeshState(repo.store)
    now = int(time.time())
    per = n // SNAPSHOTS
    try:
        for s in range(SNAPSHOTS):
            record = os.urandom(300)
            snap = blob_id_of(record)
            blobs = [os.urandom(200) for _ in range(per - 1)]
            ids = [snap] + [blob_id_of(b) for b in blobs]
            manifest = Manifest(snap, tuple(ids)).encode()
            manifest_id = blob_id_of(manifest)
            with repo.store.writer() as w:
                w.put(record, BlobKind.FOREIGN, 0, blob_id=snap)
                for blob_id, data in zip(ids[1:], blobs, strict=True):
                    w.put(data, BlobKind.FOREIGN, 0, blob_id=blob_id)
                w.put(manifest, BlobKind.FOREIGN, 0, blob_id=manifest_id)
            state.record_held(owner, [(i, 200) for i in ids] + [(manifest_id, len(manifest))])
            ann = Announcement.create(
                owner_key,
                seq=s + 1,
                snapshot_id=snap,
                manifest_id=manifest_id,
                record=record,
                record_sig=bytes(64),
                time=now,
            )
            state.put_announcement(ann)
        (home / "owner.key").write_bytes(bytes(owner_key))
    finally:
        repo.close()


def forget_half(home: Path) -> None:
    repo = open_repository(HomePaths(home), PASSWORD)
    try:
        owner_key = nacl.signing.SigningKey((home / "owner.key").read_bytes())
        owner = peer_id_from_public(bytes(owner_key.verify_key))
        state = MeshState(repo.store)
        snaps = [a.snapshot_id for a in state.announcements(owner)][: SNAPSHOTS // 2]
        notice = Notice.create(
            owner_key,
            seq=SNAPSHOTS + 1,
            kind="forget",
            snapshots=tuple(BlobId(bytes(s)) for s in snaps),
            time=int(time.time()),
        )
        state.put_announcement(notice)
    finally:
        repo.close()


def one_gc(template: Path, scratch: Path, mode: str) -> tuple[float, float, int]:
    home = scratch / mode
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(template, home)
    if mode == "retention-forget":
        forget_half(home)
    repo = open_repository(HomePaths(home), PASSWORD)
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        if mode == "all-roots":
            roots = (bytes(b) for b in repo.store.iter_blob_ids(BlobKind.FOREIGN))
            report = collect_garbage(repo, extra_roots=roots)
        else:
            report = run_gc(repo)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return wall, cpu, report.blobs_removed
    finally:
        repo.close()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = ["all-roots", "retention-keep", "retention-forget"]
    with tempfile.TemporaryDirectory(prefix="sv-gc-foreign-") as tmp:
        scratch = Path(tmp)
        template = scratch / "template"
        t0 = time.perf_counter()
        populate(template, args.blobs)
        print(f"populated {args.blobs} foreign blobs in {time.perf_counter() - t0:.1f}s")
        results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode in modes:  # interleaved: load on the machine hits all alike
                results[mode].append(one_gc(template, scratch, mode))
    base_wall = statistics.median(r[0] for r in results["all-roots"])
    base_cpu = statistics.median(r[1] for r in results["all-roots"])
    print(f"{'mode':<18} {'wall s':>8} {'cpu s':>8} {'wall x':>7} {'cpu x':>7} {'removed':>8}")
    for mode in modes:
        wall = statistics.median(r[0] for r in results[mode])
        cpu = statistics.median(r[1] for r in results[mode])
        removed = results[mode][0][2]
        print(
            f"{mode:<18} {wall:8.2f} {cpu:8.2f} {wall / base_wall:7.2f} "
            f"{cpu / base_cpu:7.2f} {removed:8d}"
        )


if __name__ == "__main__":
    main()
