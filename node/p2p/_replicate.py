"""Announcements and replication (docs/design.md, "Mesh records").

Owner side: ``build_announcement`` writes the snapshot's manifest (every blob id
``walk_references`` finds) and a signed announcement with the next sequence number.

Holder side: an announcement arrives by push or by the "since N" pull made on every
(re)connect; if we store for its owner it is queued (``Q`` record). A pass over the queue
fetches each queued snapshot's manifest, then every blob it names that we lack, from any
peer, and, once complete, sends the owner a signed receipt. The queue lives in LevelDB,
so a restart resumes it; blobs already stored are not fetched again. A failed attempt
is retried with exponential backoff (``RETRY_BASE`` doubling up to ``RETRY_MAX``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import msgpack
import trio
from libp2p.peer.id import ID

from node.repo import (
    BlobNotFound,
    CorruptBlob,
    Repository,
    get_hold,
    load_snapshot,
    walk_references,
)
from protocol import (
    Ack,
    Announcement,
    AnnouncementsReply,
    AnnouncementsSince,
    BlobId,
    DeliverReceipt,
    Manifest,
    Notice,
    OwnerRecord,
    Receipt,
    WireError,
    blob_id_of,
    decode_manifest,
    decode_owner_record,
    peer_id_from_public,
)

from . import _metrics as metrics
from ._client import ExchangeClient
from ._errors import MeshError
from ._fetch import Fetcher, QuotaExceeded
from ._notice import record_notices
from ._peers import PeerBook
from ._retain import OwnerView, owner_view
from ._state import MeshState, QState

log = logging.getLogger("shadowvault.p2p")

RETRY_BASE = 5.0
RETRY_MAX = 600.0
_SNAPSHOT_RECORD_PREFIX = b"s"  # the store's snapshot index records (docs/design.md section 4)


def build_announcement(repo: Repository, state: MeshState, snapshot_id: BlobId) -> Announcement:
    """Write the manifest and a signed announcement of one of our snapshots (blocking).

    Announcing a snapshot already announced returns the earlier announcement.

    Raises:
        BlobNotFound, CorruptBlob, RepoError: the snapshot or one of its trees is
            unreadable (a manifest must list every blob, so nothing is announced).
        ValueError: the snapshot has no index record (not ours).
    """
    owner = peer_id_from_public(bytes(repo.identity.verify_key))
    for ann in state.announcements(owner):
        if ann.snapshot_id == snapshot_id:
            return ann
    meta_raw = repo.store.get_record(_SNAPSHOT_RECORD_PREFIX + bytes(snapshot_id))
    if meta_raw is None:
        raise ValueError(f"snapshot {snapshot_id.short} is not one of this node's snapshots")
    record_sig = bytes(msgpack.unpackb(meta_raw)["sig"])
    snap = load_snapshot(repo, snapshot_id)
    ids = list(dict.fromkeys(r.blob_id for r in walk_references(repo, [snap], skip_missing=False)))
    manifest = Manifest(snapshot_id, tuple(ids)).encode()
    manifest_id = blob_id_of(manifest)
    state.put_manifest(manifest_id, manifest)
    record = repo.store.read(snapshot_id)
    made = state.append_own(
        owner,
        lambda seq: Announcement.create(
            repo.identity,
            seq=seq,
            snapshot_id=snapshot_id,
            manifest_id=manifest_id,
            record=record,
            record_sig=record_sig,
            time=int(time.time()),
        ),
    )
    assert isinstance(made, Announcement)
    metrics.ANNOUNCEMENTS.labels("sent").inc()
    # A hold set before the snapshot was announced travels right behind it.
    hold = get_hold(repo.store, snapshot_id)
    if hold is not None and hold.active():
        until = -(-hold.until_ns // 1_000_000_000)  # whole seconds, rounded up
        record_notices(repo, state, "hold", [snapshot_id], until=until)
    return made


class Replicator:
    """The holder's side: accept announcements, fetch what they name, send receipts."""

    def __init__(
        self,
        *,
        repo: Repository,
        peers: PeerBook,
        state: MeshState,
        client: ExchangeClient,
        fetcher: Fetcher,
        sources: Callable[[], Sequence[ID]],
        retry_base: float = RETRY_BASE,
        retry_max: float = RETRY_MAX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._peers = peers
        self._state = state
        self._client = client
        self._fetcher = fetcher
        self._sources = sources
        self._clock = clock
        self._retry = (retry_base, retry_max)
        self._local = peer_id_from_public(bytes(repo.identity.verify_key))
        self.wake = trio.Event()
        self._pass_lock = trio.Lock()

    def accept(self, ann: OwnerRecord) -> bool:
        """Keep and queue a verified announcement or notice of an owner we store for.

        Our own records coming back (recovery) are kept but not queued. A record can
        only be the owner's own (its signature names it), and a sequence number once
        taken is never overwritten. Every record renews the owner's lease (at its signed
        time, never later than now). A forget stops replicating what it names.
        Returns True if it was new.
        """
        if ann.owner != self._local:
            rec = self._peers.get(ann.owner)
            if rec is None or not rec.store_for:
                return False
        if not self._state.put_announcement(ann):
            return False
        if ann.owner == self._local:
            return True
        now = int(self._clock())
        if min(ann.time, now) > self._state.last_heard(ann.owner):
            self._state.heard_from(ann.owner, min(ann.time, now))
        metrics.ANNOUNCEMENTS.labels("received").inc()
        if isinstance(ann, Notice):
            if ann.kind == "forget":
                self._stop_forgotten(ann.owner)
            return True
        # A forget that came before its announcement is applied by the pass.
        self._state.queue(ann.owner, ann.seq, QState())
        self.wake.set()
        return True

    def _stop_forgotten(self, owner: bytes) -> None:
        """Queue entries of snapshots the owner forgot are done with (``forgotten``)."""
        view = owner_view(self._state, owner)
        for seq, ann in view.announced.items():
            if ann.snapshot_id not in view.forgotten:
                continue
            q = self._state.qstate(owner, seq)
            if q is not None and q.state != "forgotten":
                self._state.queue(owner, seq, replace(q, state="forgotten"))

    async def pull(self, peer: ID) -> int:
        """Ask ``peer`` for announcements we lack: its own if we store for it, and ours
        (an owner recovering its snapshot list). Returns how many were new."""
        owners = []
        raw = peer.to_bytes()
        rec = self._peers.get(raw)
        if rec is not None and rec.store_for:
            owners.append(raw)
        if rec is not None and rec.store_at:
            owners.append(self._local)
        new = 0
        for owner in owners:
            while True:
                # From the first gap: a record missed while later ones came by push (a
                # hold, a forget) is caught up, not skipped.
                after = self._state.contiguous_seq(owner)
                reply = await self._client.request(
                    peer, AnnouncementsSince(owner, after), AnnouncementsReply
                )
                for raw_ann in reply.announcements:
                    try:
                        ann = _decode_checked(raw_ann, owner)
                    except WireError as exc:
                        log.warning("peer %s sent a bad announcement: %s", peer, exc)
                        continue
                    new += self.accept(ann)
                # A peer that keeps saying "more" without moving us forward is ignored.
                if not reply.more or self._state.contiguous_seq(owner) <= after:
                    break
        return new

    def next_due(self) -> float | None:
        """Unix time of the earliest queued retry (None: nothing waits for one)."""
        due = [
            q.next_try
            for _, _, q in self._state.queued()
            if q.state == "pending" or (q.state == "complete" and not q.receipt_sent)
        ]
        return min(due) if due else None

    async def run_pass(self) -> None:
        """One attempt at every queued snapshot whose backoff has expired."""
        async with self._pass_lock:
            self.wake = trio.Event()
            views: dict[bytes, OwnerView] = {}  # each owner's stream replayed once a pass
            for owner, seq, q in list(self._state.queued()):
                if q.state == "complete" and q.receipt_sent:
                    continue
                if q.state in ("failed", "forgotten") or q.next_try > self._clock():
                    continue
                if owner not in views:
                    views[owner] = owner_view(self._state, owner)
                ann = views[owner].announced.get(seq)
                if ann is not None and ann.snapshot_id in views[owner].forgotten:
                    self._state.queue(owner, seq, replace(q, state="forgotten"))
                    continue
                await self._replicate(owner, seq, q)

    async def _replicate(self, owner: bytes, seq: int, q: QState) -> None:
        ann = self._state.announcement(owner, seq)
        rec = self._peers.get(owner)
        if ann is None or rec is None or not rec.store_for:
            return  # the owner was removed; its queue entry waits for it to return
        if q.state != "complete":
            q = await self._fetch_snapshot(ann, rec.quota, q)
            self._state.queue(owner, seq, q)
        if q.state == "complete" and not q.receipt_sent:
            receipt = Receipt.create(
                self._repo.identity,
                owner=owner,
                snapshot_id=ann.snapshot_id,
                manifest_id=ann.manifest_id,
                seq=seq,
                time=int(self._clock()),
            )
            try:
                await self._client.request(ID(owner), DeliverReceipt(receipt.raw), Ack)
            except MeshError as exc:
                log.info("receipt for %s not delivered yet: %s", ann.snapshot_id.short, exc)
                return
            self._state.queue(owner, seq, replace(q, receipt_sent=True))

    async def _fetch_snapshot(self, ann: Announcement, quota: int, q: QState) -> QState:
        sources = [p for p in self._sources() if p.to_bytes() != self._local]
        try:
            got = await self._fetcher.fetch([ann.manifest_id], sources, ann.owner, quota)
            if got.missing:
                return self._backoff(q, -1)
            data = await trio.to_thread.run_sync(self._repo.store.read, ann.manifest_id)
            manifest = decode_manifest(data)
            if manifest.snapshot_id != ann.snapshot_id:
                raise WireError("manifest is for another snapshot")
            got = await self._fetcher.fetch(manifest.blob_ids, sources, ann.owner, quota)
        except QuotaExceeded as exc:
            log.warning("%s", exc)
            return replace(q, state="quota_exceeded")
        except (WireError, BlobNotFound, CorruptBlob) as exc:
            log.warning("snapshot %s has a bad manifest: %s", ann.snapshot_id.short, exc)
            return replace(q, state="failed")
        if got.missing:
            return self._backoff(q, len(got.missing))
        log.info("snapshot %s of %s is complete here", ann.snapshot_id.short, ann.owner.hex()[-8:])
        return replace(q, state="complete", missing=0, tries=q.tries + 1)

    def _backoff(self, q: QState, missing: int) -> QState:
        base, cap = self._retry
        delay = min(base * 2**q.tries, cap)
        return replace(q, missing=missing, tries=q.tries + 1, next_try=self._clock() + delay)


def _decode_checked(raw: bytes, owner: bytes) -> OwnerRecord:
    ann = decode_owner_record(raw)
    if ann.owner != owner:
        raise WireError("announcement of another owner")
    return ann
