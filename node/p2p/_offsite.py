"""Offsite copies: one snapshot fetched from the peers storing for us into a scratch store.

A drill from peers must prove that the copies held by our peers are enough to recover,
so it may not read a single blob from our own store: a missing or damaged local blob
must not be papered over by the local copy, and a good local blob must not hide a peer
that lacks it. ``fetch_offsite_copy`` therefore fetches every blob the restore needs
(snapshot record, trees, data) from the peers that store for us into a new, empty store
(``open_scratch_repository``: our keys over nothing but what the peers sent), walking the
trees as a restore from peers does (``fetch_snapshot``). Every blob is checked against
its id by the fetcher before it is written, and again when the restore reads it. The
restore then runs on the scratch repository; ``OffsiteCopy.discard`` removes it.

Our own store is not touched: the fetcher writes into the scratch store only, with a
score table of its own (a drill does not change how replication ranks peers).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio
from libp2p.peer.id import ID

from node.repo import (
    BlobKind,
    RepoError,
    Repository,
    Snapshot,
    load_snapshot,
    open_scratch_repository,
)
from protocol import BlobId, peer_id_text

from ._fetch import Fetcher, FetchResult, Scores
from ._heal import FetchReport, fetch_snapshot
from ._mesh import Mesh


@dataclass
class OffsiteCopy:
    """A snapshot as our peers hold it, in a scratch store.

    Ownership: the caller calls ``discard`` (closes the scratch store, removes its files).
    """

    repo: Repository
    """Our keys over the scratch store: restore from this, never from the node's own."""
    root: Path
    snapshot: Snapshot | None
    """The snapshot record as fetched; None if no peer supplied it (or it did not open)."""
    report: FetchReport
    peers: list[str] = field(default_factory=list)
    """The peers asked (base58): those storing for us."""
    names: dict[str, str] = field(default_factory=dict)
    """Peer id -> the name in our peer list (may be empty)."""

    def discard(self) -> None:
        """Close the scratch store and delete it (idempotent)."""
        self.repo.close()
        shutil.rmtree(self.root, ignore_errors=True)


class _ScratchFetch:
    """``BlobFetcher`` for ``fetch_snapshot``: fetches into the scratch store, from the
    peers that store for us only."""

    def __init__(self, mesh: Mesh, scratch: Repository, sources: Sequence[ID], owner: bytes):
        self._fetcher = Fetcher(mesh.client, scratch.store, mesh.state, Scores())
        self._sources = list(sources)
        self._owner = owner

    async def fetch_blobs(
        self, ids: Sequence[BlobId], *, kind: BlobKind, replace: bool = False
    ) -> FetchResult:
        if not self._sources:
            return FetchResult(missing=list(dict.fromkeys(ids)))
        return await self._fetcher.fetch(ids, self._sources, self._owner, kind=kind)


async def fetch_offsite_copy(
    mesh: Mesh, repo: Repository, snapshot_id: BlobId, root: Path
) -> OffsiteCopy:
    """Fetch every blob of one of our snapshots from the peers storing for us into a new
    store at ``root``.

    Args:
        mesh: the running mesh (its client, identity and peer list are used).
        repo: our repository: its keys open the copy; its store is not read.
        snapshot_id: the snapshot to fetch.
        root: where the scratch store is made (must not hold one).

    Returns:
        The copy, with what each peer sent and what no peer had. Nothing is raised for a
        blob no peer supplies: it is in ``report.unavailable``.

    Raises:
        RepoError: the scratch store cannot be made.

    Cancellation: the scratch store is closed and removed.
    """
    records = [r for r in mesh.peers.all() if r.store_at]
    sources = [ID(r.raw_id) for r in records]
    names = {peer_id_text(r.raw_id): r.name for r in records}
    try:
        scratch = await trio.to_thread.run_sync(open_scratch_repository, repo, root)
    except OSError as exc:
        raise RepoError(f"cannot make the scratch store at {root}: {exc.strerror}") from exc
    copy = OffsiteCopy(
        scratch, root, None, FetchReport(), [peer_id_text(r.raw_id) for r in records], names
    )
    try:
        fetch = _ScratchFetch(mesh, scratch, sources, mesh.host.peer_id.to_bytes())
        copy.report = await fetch_snapshot(
            fetch, scratch, snapshot_id, verify=False, index_dedup=False
        )
        try:
            copy.snapshot = await trio.to_thread.run_sync(load_snapshot, scratch, snapshot_id)
        except RepoError:
            copy.snapshot = None
    except BaseException:
        copy.discard()
        raise
    return copy
