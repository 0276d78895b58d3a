"""Crash safety of gc: SIGKILL it anywhere, and the store opens whole with every live blob.

A prepared store (many small packs, six snapshots, three of them forgotten) is copied
for each run; a real child process (``store_child.py gc``) collects it and is killed at a
random moment, or right after a phase ends. The store must then open without re-indexing
anything (a swept blob never comes back), pass ``check --read-data``, hold every blob the
kept snapshots reference, and a second, uninterrupted gc must finish the job.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

import node.repo._store as store_module
from node.repo import (
    FILE,
    BlobKind,
    HomePaths,
    Node,
    Repository,
    Sealer,
    Snapshot,
    check_store,
    collect_garbage,
    delete_snapshot_record,
    encode_tree,
    list_snapshots,
    save_snapshot,
    walk_references,
)

_spec = importlib.util.spec_from_file_location(
    "store_child", Path(__file__).with_name("store_child.py")
)
assert _spec is not None and _spec.loader is not None
store_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store_child)

KILLS = 24
SEED = 20261122


def _snapshot(repo: Repository, rng: random.Random, shared: list, n: int, t: int) -> None:
    """A snapshot of one directory: ``n`` new chunks plus some shared with others."""
    sealer = Sealer(3)
    nodes = []
    with repo.store.writer() as w:
        for i in range(n):
            plain = rng.randbytes(rng.randint(200, 3000))
            chunk = w.put(
                sealer.seal(plain, repo.keys.data), BlobKind.DATA, len(plain), repo.dedup_key(plain)
            )
            chunks = [chunk, *rng.sample(shared, 2)]
            nodes.append(Node(name=b"f%05d" % i, type=FILE, chunks=chunks))
        tree_plain = encode_tree(nodes)
        tree = w.put(
            sealer.seal(tree_plain, repo.keys.metadata),
            BlobKind.TREE,
            len(tree_plain),
            repo.tree_dedup_key(tree_plain),
        )
        w.flush()
        save_snapshot(repo, w, Snapshot(time_ns=t, host="h", paths=["/d"], tree=tree))


def _prepare(home: HomePaths, open_repo) -> tuple[set[bytes], set[bytes]]:
    """Fill the store; returns (live blob ids, garbage blob ids)."""
    rng = random.Random(SEED)
    old = store_module.PACK_TARGET_SIZE
    store_module.PACK_TARGET_SIZE = 48 * 1024
    try:
        repo = open_repo(home)
        sealer = Sealer(3)
        shared = []
        with repo.store.writer() as w:
            for _ in range(40):
                plain = rng.randbytes(1500)
                shared.append(
                    w.put(
                        sealer.seal(plain, repo.keys.data),
                        BlobKind.DATA,
                        1500,
                        repo.dedup_key(plain),
                    )
                )
        for k in range(6):
            _snapshot(repo, rng, shared, 120, 10**18 + k)
        snaps = list_snapshots(repo)
        every = {bytes(r.blob_id) for r in walk_references(repo, snaps)}
        for s in snaps[::2]:
            assert s.id is not None
            delete_snapshot_record(repo, s.id)
        live = {bytes(r.blob_id) for r in walk_references(repo, list_snapshots(repo))}
        repo.close()
    finally:
        store_module.PACK_TARGET_SIZE = old
    return live, every - live


def _verify(repo: Repository, live: set[bytes], label: str) -> None:
    rec = repo.store.recovery
    assert not rec.reindexed, f"{label}: recovery re-indexed {rec.reindexed} blobs: {rec}"
    report = check_store(repo, read_data=True, referenced=((b, "live") for b in live))
    assert report.ok, f"{label}: {[str(p) for p in report.problems]}"
    for blob in live:
        repo.store.read(blob)


@pytest.mark.slow
def test_gc_sigkill_at_random_points_keeps_every_live_blob(
    tmp_path: Path, make_home, open_repo, child, read_line
) -> None:
    base = make_home(tmp_path / "base")
    live, garbage = _prepare(base, open_repo)
    assert len(live) > 300 and len(garbage) > 300

    # One uninterrupted run on a copy: how long gc takes, and what it must reach.
    probe = HomePaths(tmp_path / "probe")
    shutil.copytree(base.root, probe.root)
    proc = child("gc", probe)
    assert read_line(proc) == b"ready\n"
    started = time.monotonic()
    phases = {}
    for expected in (b"marked\n", b"swept\n", b"compacted\n", b"done\n"):
        assert read_line(proc) == expected
        phases[expected.strip().decode()] = time.monotonic() - started
    proc.communicate(timeout=10)
    repo = open_repo(probe)
    _verify(repo, live, "probe")
    assert not any(repo.store.has(b) for b in garbage)
    repo.close()

    rng = random.Random(SEED)
    killed_in = []
    for run in range(KILLS):
        home = HomePaths(tmp_path / f"run{run}")
        shutil.copytree(base.root, home.root)
        proc = child("gc", home)
        assert read_line(proc) == b"ready\n"
        seen = [b"start"]
        if run % 6 == 1:
            seen.append(read_line(proc))  # just after marking: the sweep starts
        elif run % 6 == 2:
            seen += [read_line(proc), read_line(proc)]  # just after the sweep: compaction
        elif run % 6 == 3:
            seen += [read_line(proc) for _ in range(3)]  # compacted, report not yet written
        else:
            time.sleep(rng.uniform(0.0, phases["compacted"]))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        seen += out.split()
        killed_in.append(seen[-1].strip().decode())
        if proc.returncode != -signal.SIGKILL:
            assert b"done" in out, err  # finished before the kill: fine, still verified

        repo = open_repo(home)
        _verify(repo, live, f"run {run} (killed after {killed_in[-1]})")
        # A second gc finishes the job, and the store is whole and minimal afterwards.
        collect_garbage(repo, rewrite_below=0.9)
        assert not any(repo.store.has(b) for b in garbage), f"run {run}"
        repo.close()
        repo = open_repo(home)
        _verify(repo, live, f"run {run}, after the second gc")
        repo.close()
        shutil.rmtree(home.root)

    # The kills must have landed inside gc, in more than one phase.
    print(f"gc phases {phases}; killed after: {killed_in}")
    assert len(set(killed_in)) >= 3, killed_in
