"""Helpers for mesh tests: real repositories, real hosts on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from node.ops import BackupOptions, run_backup
from node.p2p import BlobSource, Mesh, MeshSettings, open_mesh
from node.repo import Repository
from protocol import BlobId
from tests.ops.helpers import make_repo

LOOPBACK = MeshSettings(listen=["/ip4/127.0.0.1/tcp/0"], sync_interval=3600, retry_base=0.2)
"""Loopback, ephemeral port; the periodic round effectively off (tests call ``sync``);
quick retries."""


def snapshot_of(repo: Repository, src: Path, files: int = 6, seed: int = 0) -> BlobId:
    """Back up a small tree of random files; return the snapshot id."""
    src.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (src / f"f{seed}-{i}.bin").write_bytes(os.urandom(3000 + 5000 * i))
    summary = run_backup(repo, BackupOptions(paths=[src]))
    return BlobId(bytes.fromhex(summary.snapshot_id))


@asynccontextmanager
async def running(repo: Repository, *, blobs: BlobSource | None = None) -> AsyncIterator[Mesh]:
    async with open_mesh(repo, LOOPBACK, blobs=blobs) as mesh:
        yield mesh


def link(owner: Mesh, holder: Mesh, quota: int = 0) -> None:
    """``holder`` stores for ``owner``; ``owner`` stores at ``holder``."""
    owner.add_peer(holder.peer_id, addrs=holder.addrs, store_at=True)
    holder.add_peer(owner.peer_id, addrs=owner.addrs, store_for=True, quota=quota)


def know(a: Mesh, b: Mesh) -> None:
    """``a`` and ``b`` store for each other (friends; lets them fetch from each other)."""
    a.add_peer(b.peer_id, addrs=b.addrs, store_for=True)
    b.add_peer(a.peer_id, addrs=a.addrs, store_for=True)


async def wait_until(predicate, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


def repo_at(root: Path) -> Repository:
    return make_repo(root)
