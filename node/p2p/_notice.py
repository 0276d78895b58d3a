"""The owner's side of retention on peers: forget, hold and release notices.

When the owner forgets snapshots, or holds or releases them, it appends a signed notice
to its own stream (the ``A`` records, same sequence as its announcements). Holders pull
the stream "since N" on every (re)connect and sync round, and the daemon pushes new
records at once, so this needs no running mesh: a notice made while the node is offline
leaves with the next pull. Only snapshots this node announced are named (peers know no
others).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from node.repo import Repository
from protocol import MAX_NOTICE_SNAPSHOTS, BlobId, Notice, peer_id_from_public

from ._state import MeshState


def record_notices(
    repo: Repository,
    state: MeshState,
    kind: str,
    snapshot_ids: Iterable[bytes],
    *,
    until: int = 0,
) -> list[Notice]:
    """Append signed notices naming those of ``snapshot_ids`` we announced (blocking).

    Args:
        kind: ``forget``, ``hold`` or ``release``.
        until: for a hold, unix seconds it lasts until.

    Returns:
        The notices made (none if no snapshot named was announced); more than
        ``MAX_NOTICE_SNAPSHOTS`` snapshots are split over several.
    """
    owner = peer_id_from_public(bytes(repo.identity.verify_key))
    announced = {bytes(a.snapshot_id) for a in state.announcements(owner)}
    ids = [BlobId(bytes(s)) for s in dict.fromkeys(bytes(s) for s in snapshot_ids)]
    ids = [s for s in ids if bytes(s) in announced]
    made: list[Notice] = []
    for i in range(0, len(ids), MAX_NOTICE_SNAPSHOTS):
        chunk = tuple(ids[i : i + MAX_NOTICE_SNAPSHOTS])

        def make(seq: int, chunk: tuple[BlobId, ...] = chunk) -> Notice:
            return Notice.create(
                repo.identity,
                seq=seq,
                kind=kind,
                snapshots=chunk,
                until=until,
                time=int(time.time()),
            )

        notice = state.append_own(owner, make)
        assert isinstance(notice, Notice)
        made.append(notice)
    return made


def announce_retention(
    repo: Repository, kind: str, snapshot_ids: Iterable[bytes], *, until: int = 0
) -> list[Notice]:
    """``record_notices`` on the repository's own mesh records: what ``forget``, ``hold``
    and ``release`` call after changing the store (blocking; no network)."""
    return record_notices(repo, MeshState(repo.store), kind, snapshot_ids, until=until)
