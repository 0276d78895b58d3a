"""The holder's side of retention: which of its owners' blobs gc must keep.

A holder keeps another owner's data until that owner says otherwise, in its own signed
stream (announcements and notices, ``_state``), or goes silent for longer than the
lease (``gc.owner_lease``):

* kept: every blob named by the manifest of a snapshot the owner announced and has
  not forgotten, while its lease runs; and every blob of a snapshot it holds, until the
  hold's date, whatever else happened (a forget, a lapsed lease);
* collectable: the blobs of forgotten snapshots (their manifests name them), and, once
  the lease has lapsed, every blob held for that owner; in both cases minus what any
  kept snapshot of *any* owner names (a hostile owner could list another owner's blob
  ids in its manifest and then forget them);
* anything else stored as FOREIGN (not named by any manifest here: e.g. written just
  before a crash) is kept.

``ForeignRetention.roots()`` yields the FOREIGN blobs to keep as gc's extra roots. It
decides when it is first iterated, that is inside gc's pin window, so a replication that
ends after that point has its blobs spared by the pins (the fetcher pins blobs it finds
already stored). Memory: the collectable ids are a set, so it is proportional to what
goes, not to what is kept; manifests are read only when something may go.

The lease: every verified signed message from the owner renews it: its records, at
their signed time, and every signed request it makes to us (the owner pulls from each
holder on connect and every sync round). ``LeaseClock`` writes that down at most once a
minute per owner.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from node.repo import BlobKind, BlobNotFound, CorruptBlob, Repository
from protocol import (
    Announcement,
    BlobId,
    WireError,
    decode_manifest,
    peer_id_from_public,
    peer_id_text,
)

from ._state import MeshState

log = logging.getLogger("shadowvault.p2p")

DEFAULT_OWNER_LEASE = 90 * 86400.0
"""Seconds without a signed word from an owner before its unheld data may go (90 days:
an owner's machine may be off for a long holiday; config ``gc.owner_lease``)."""
LEASE_WRITE_EVERY = 60
"""Seconds between two lease records written for one owner (requests come every sync)."""


@dataclass
class OwnerView:
    """One owner's stream replayed in sequence order."""

    announced: dict[int, Announcement] = field(default_factory=dict)
    """seq -> announcement."""
    forgotten: set[BlobId] = field(default_factory=set)
    holds: dict[BlobId, int] = field(default_factory=dict)
    """snapshot -> unix seconds the latest hold notice lasts until (released: absent)."""

    def held(self, snapshot_id: BlobId, now: float) -> bool:
        return self.holds.get(snapshot_id, 0) > now


def owner_view(state: MeshState, owner: bytes) -> OwnerView:
    """Replay the owner's announcements and notices, in sequence order."""
    view = OwnerView()
    for rec in state.records(owner):
        if isinstance(rec, Announcement):
            view.announced[rec.seq] = rec
        elif rec.kind == "forget":
            view.forgotten.update(rec.snapshots)
        elif rec.kind == "hold":
            view.holds.update(dict.fromkeys(rec.snapshots, rec.until))
        else:
            for snap in rec.snapshots:
                view.holds.pop(snap, None)
    return view


class LeaseClock:
    """Notes signed requests from owners we store for (their lease), at most once a
    minute per owner, so a busy peer does not turn into LevelDB writes."""

    def __init__(self, state: MeshState) -> None:
        self._state = state
        self._written: dict[bytes, int] = {}

    def heard(self, owner: bytes, now: float) -> None:
        when = int(now)
        if when - self._written.get(owner, 0) < LEASE_WRITE_EVERY:
            return
        self._written[owner] = when
        self._state.heard_from(owner, when)


@dataclass
class ForeignReport:
    """What retention decided for other owners' data in one gc (``as_dict`` for JSON)."""

    owners: int = 0
    lapsed: list[str] = field(default_factory=list)
    """Owners (peer ids) whose lease had lapsed: their unheld data may go."""
    forgotten: int = 0
    """Snapshots their owners forgot."""
    held: int = 0
    """Snapshots held by their owners' holds (kept whatever else happened)."""
    collectable: int = 0
    """FOREIGN blobs left out of the roots (gc removes those still stored)."""
    problems: list[str] = field(default_factory=list)
    """Why nothing foreign was collectable this time (a kept manifest unreadable)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "owners": self.owners,
            "lapsed": self.lapsed,
            "forgotten": self.forgotten,
            "held": self.held,
            "collectable": self.collectable,
            "problems": self.problems,
        }


def other_owners(repo: Repository) -> list[bytes]:
    """The owners (raw peer ids) this node may keep data for: each one with a stream or
    a held blob here, this node left out. These are what ``ForeignRetention`` decides
    about; with none, the lease decides nothing."""
    return _other_owners(
        MeshState(repo.store), peer_id_from_public(bytes(repo.identity.verify_key))
    )


def _other_owners(state: MeshState, local: bytes) -> list[bytes]:
    return [o for o in dict.fromkeys(state.owners() + state.held_owners()) if o != local]


class ForeignRetention:
    """gc's roots for other owners' data; see the module docstring.

    Usage (``node.ops.run_gc``)::

        keep = ForeignRetention(repo, owner_lease_s=lease)
        collect_garbage(repo, extra_roots=keep.roots(), ...)
        keep.settle()  # drop the held-for records of blobs gc removed
        keep.report
    """

    def __init__(self, repo: Repository, *, owner_lease_s: float, now: float | None = None) -> None:
        self._store = repo.store
        self._local = peer_id_from_public(bytes(repo.identity.verify_key))
        self._state = MeshState(repo.store)
        self._lease = owner_lease_s if owner_lease_s > 0 else math.inf  # 0: never lapses
        self._now = now
        self._touched: list[bytes] = []
        self.report = ForeignReport()

    def roots(self) -> Iterator[bytes]:
        """Every FOREIGN blob to keep (decided at the first ``next``)."""
        collectable = self._plan(time.time() if self._now is None else self._now)
        for blob_id in self._store.iter_blob_ids(BlobKind.FOREIGN):
            if bytes(blob_id) not in collectable:
                yield bytes(blob_id)

    def settle(self) -> None:
        """After gc: stop counting removed blobs as held for their owners (quota)."""
        for owner in self._touched:
            gone = [b for b in self._state.held_blobs(owner) if not self._store.has(b)]
            self._state.drop_held(owner, list(map(bytes, gone)))

    def _plan(self, now: float) -> set[bytes]:
        owners = _other_owners(self._state, self._local)
        self.report.owners = len(owners)
        collectable: set[bytes] = set()
        kept_manifests: list[BlobId] = []
        for owner in owners:
            view = owner_view(self._state, owner)
            heard = max([self._state.last_heard(owner)] + [a.time for a in view.announced.values()])
            if heard == 0:  # nothing signed seen yet: the lease starts now
                self._state.heard_from(owner, int(now))
                heard = int(now)
            lapsed = min(heard, now) + self._lease < now
            if lapsed:
                self.report.lapsed.append(peer_id_text(owner))
            doomed: list[BlobId] = []
            for ann in view.announced.values():
                snap = ann.snapshot_id
                if view.held(snap, now):
                    self.report.held += 1
                    kept_manifests.append(ann.manifest_id)
                elif snap in view.forgotten or lapsed:
                    self.report.forgotten += snap in view.forgotten
                    doomed.append(ann.manifest_id)
                else:
                    kept_manifests.append(ann.manifest_id)
            if not doomed and not lapsed:
                continue
            self._touched.append(owner)
            for manifest_id in doomed:
                collectable.add(bytes(manifest_id))
                ids = self._manifest(manifest_id)
                collectable.update(map(bytes, ids or ()))
            if lapsed:
                collectable.update(map(bytes, self._state.held_blobs(owner)))
        if collectable:
            for manifest_id in kept_manifests:
                collectable.discard(bytes(manifest_id))
                ids = self._manifest(manifest_id)
                if ids is None and self._store.has(manifest_id):
                    self.report.problems.append(
                        f"manifest {manifest_id.short} is unreadable; other owners' data is "
                        "all kept this time"
                    )
                    collectable.clear()
                    break
                for blob_id in ids or ():
                    collectable.discard(bytes(blob_id))
        self.report.collectable = len(collectable)
        if self.report.lapsed:
            log.warning("owner lease lapsed for %s: their unheld data may go", self.report.lapsed)
        return collectable

    def _manifest(self, manifest_id: BlobId) -> tuple[BlobId, ...] | None:
        """The ids a stored manifest names (None: not here, or unreadable)."""
        try:
            return decode_manifest(self._store.read(manifest_id)).blob_ids
        except (BlobNotFound, CorruptBlob, WireError):
            return None
