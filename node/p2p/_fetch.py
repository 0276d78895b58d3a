"""Fetching blobs from peers: verify every blob, store only what was asked for.

Each blob received is hashed and compared with the id it was requested under before
anything is written; a blob we did not ask for is dropped; a peer that sends wrong
bytes loses score (it is asked last next time) and the blob is fetched from the next
peer. Peers are tried best score first, the owner last (its bandwidth is the scarce one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import trio
from libp2p.peer.id import ID

from node.repo import BlobKind, PinSet, RepoError, Store
from protocol import MAX_WANT, BlobId, BlobsReply, WantBlobs, blob_id_of, peer_id_text

from . import _metrics as metrics
from . import _state
from ._client import ExchangeClient
from ._errors import MeshError, PeerMisbehaved
from ._state import MeshState

log = logging.getLogger("shadowvault.p2p")

BATCH = 256
"""Blob ids asked for in one request (the reply holds up to 8 MiB and defers the rest)."""
MIN_BATCH = 8
"""Fewest ids in a batch when a call is cut into more batches than ``BATCH`` gives."""
PARALLEL = 3
"""Batches fetched at once (from different peers when there are several)."""
STORE_QUEUE = 4
"""Verified replies (up to 8 MiB each) waiting for the writer; it takes all that wait
in one write session, so one fdatasync commits several replies."""
STORE_BATCH = 32 * 1024 * 1024
"""Bytes written in one session at most (the store's own flush size)."""
WRONG_BLOB_PENALTY = 10
UNREACHABLE_PENALTY = 1
_PIN_BY_ID_ONLY = (1 << 62, 0)
"""A pin-set watermark above any append position: a fetch pins the stored blobs it
relies on by id; what it writes is pinned by its own write sessions."""


class QuotaExceeded(MeshError):
    """Storing these blobs would exceed the quota kept for their owner."""


@dataclass
class FetchResult:
    fetched: int = 0
    bytes: int = 0
    missing: list[BlobId] = field(default_factory=list)
    """Ids no peer could supply (valid)."""
    by_peer: dict[str, int] = field(default_factory=dict)
    """Blobs fetched from each peer (base58 peer id)."""
    bytes_by_peer: dict[str, int] = field(default_factory=dict)
    """Bytes (sealed) fetched from each peer."""
    peer_errors: dict[str, str] = field(default_factory=dict)
    """Peers that failed a request (unreachable, refused, misbehaved): the last error."""


class Scores:
    """How much each peer is trusted as a source, in memory (starts at 0)."""

    def __init__(self) -> None:
        self._scores: dict[bytes, int] = {}

    def get(self, peer: bytes) -> int:
        return self._scores.get(peer, 0)

    def penalise(self, peer: bytes, amount: int) -> None:
        self._scores[peer] = self.get(peer) - amount

    def order(self, peers: Sequence[ID], last: bytes | None = None) -> list[ID]:
        """Best first (stable for equal scores); ``last`` goes to the end."""
        return sorted(peers, key=lambda p: (p.to_bytes() == last, -self.get(p.to_bytes())))


class Fetcher:
    """Pulls foreign blobs of one owner into the store."""

    def __init__(
        self,
        client: ExchangeClient,
        store: Store,
        state: MeshState,
        scores: Scores,
        parallel: int = PARALLEL,
    ) -> None:
        self._client = client
        self._store = store
        self._state = state
        self.scores = scores
        self._parallel = parallel
        self._write_lock = trio.Lock()
        self._held: dict[bytes, int] = {}  # owner -> bytes held, loaded on first use
        self._held_generation = _state.held_generation
        self._turn = 0  # rotates which holder each fetch call starts with

    async def fetch(
        self,
        ids: Sequence[BlobId],
        sources: Sequence[ID],
        owner: bytes,
        quota: int = 0,
        kind: BlobKind = BlobKind.FOREIGN,
        replace: bool = False,
    ) -> FetchResult:
        """Fetch every blob of ``ids`` not already stored, from ``sources``.

        Args:
            ids: blob ids (duplicates allowed).
            sources: peers to ask; the owner, if among them, is asked last.
            owner: raw peer id of the owner.
            quota: bytes kept at most for the owner (0: no limit).
            kind: how the blobs are stored. FOREIGN blobs (another owner's) are
                accounted to ``owner`` against ``quota``; any other kind is the
                owner getting its own blobs back (healing, recovery), not accounted.
            replace: fetch every id even if stored, and make the fetched copy the one
                the index names (healing a corrupt copy). A replaced FOREIGN blob was
                accounted to its owner when first stored, so it is not counted again.

        Raises:
            QuotaExceeded: the next blobs would not fit the owner's quota (those stored
                before stay).
        """
        # Blobs found already stored are pinned until the fetch ends, in one step with
        # the look-up (``_lacking``): a gc collecting a forgotten snapshot's blobs cannot
        # remove one that a new snapshot of the same owner is counting on.
        with self._store.pins.session(_PIN_BY_ID_ONLY) as pins:
            return await self._fetch(ids, sources, owner, quota, kind, replace, pins)

    async def _fetch(
        self,
        ids: Sequence[BlobId],
        sources: Sequence[ID],
        owner: bytes,
        quota: int,
        kind: BlobKind,
        replace: bool,
        pins: PinSet,
    ) -> FetchResult:
        result = FetchResult()
        if replace:
            wanted = list(dict.fromkeys(ids))
        elif kind is BlobKind.FOREIGN:
            wanted = await trio.to_thread.run_sync(self._lacking_for, ids, owner, pins)
        else:
            wanted = await trio.to_thread.run_sync(self._lacking, ids, pins)
        # Verified blobs are written by a second task while the next replies are on their
        # way (writes end in an fdatasync); the channel holds a few replies, bounding memory.
        send, receive = trio.open_memory_channel[list[tuple[BlobId, bytes]]](STORE_QUEUE)
        failure: list[QuotaExceeded] = []
        # Batches are counted in ids, but a reply carries 8 MiB at most: 256 chunks of
        # 1 MiB (a 256 MiB snapshot) made one batch, fetched from one holder only. Cut
        # smaller so that every worker, and so every holder, gets several.
        size = max(MIN_BATCH, min(BATCH, -(-len(wanted) // (self._parallel * 4))))
        batches = [wanted[i : i + size] for i in range(0, len(wanted), size)]
        order = self.scores.order(sources, last=owner)
        # Several holders serve at once: worker k starts with the k-th best peer (round
        # robin), so each well-scored holder streams a different batch; with fewer
        # holders than workers a holder serves several batches at once, on a stream each.
        helpers = [p for p in order if p.to_bytes() != owner and self.scores.get(p.to_bytes()) >= 0]
        # Calls made at once (restore fetches trees and data side by side) each start
        # with a different holder, so even single-batch calls spread over the holders.
        if helpers:
            turn = self._turn % len(helpers)
            helpers = helpers[turn:] + helpers[:turn]
            self._turn += 1
        workers = max(1, min(self._parallel, len(batches)))
        next_batch = iter(batches)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._storer, receive, owner, quota, kind, replace, failure, nursery)
            async with send, trio.open_nursery() as fetchers:
                for k in range(workers):
                    first = helpers[k % len(helpers)] if helpers else None
                    fetchers.start_soon(
                        self._worker, next_batch, sources, owner, first, send.clone(), result
                    )
        if failure:
            raise failure[0]
        return result

    async def _worker(
        self,
        batches: Iterator[list[BlobId]],
        sources: Sequence[ID],
        owner: bytes,
        first: ID | None,
        store: trio.MemorySendChannel[list[tuple[BlobId, bytes]]],
        result: FetchResult,
    ) -> None:
        """Fetch batches (shared iterator) until none is left."""
        async with store:
            for batch in batches:
                # Re-ordered per batch: a peer caught sending wrong bytes drops back at once.
                peers = self.scores.order(sources, last=owner)
                if first is not None and self.scores.get(first.to_bytes()) >= 0:
                    peers = [first, *(p for p in peers if p != first)]
                pending = dict.fromkeys(batch)
                for peer in peers:
                    if not pending:
                        break
                    await self._fetch_from(peer, pending, store, result)
                result.missing.extend(pending)

    async def _storer(
        self,
        receive: trio.MemoryReceiveChannel[list[tuple[BlobId, bytes]]],
        owner: bytes,
        quota: int,
        kind: BlobKind,
        replace: bool,
        failure: list[QuotaExceeded],
        nursery: trio.Nursery,
    ) -> None:
        async with receive:
            async for blobs in receive:
                # Whatever else has arrived meanwhile goes into the same session.
                size = sum(len(d) for _, d in blobs)
                while size < STORE_BATCH:
                    try:
                        more = receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    blobs = blobs + more
                    size += sum(len(d) for _, d in more)
                try:
                    await self._store_blobs(owner, quota, kind, blobs, replace)
                except QuotaExceeded as exc:
                    failure.append(exc)
                    nursery.cancel_scope.cancel()
                    return

    def _plain_len(self, blob_id: BlobId) -> int:
        """The plaintext length the old index record of a replaced blob gave (0: lost)."""
        try:
            return self._store.location(blob_id).plain_len
        except RepoError:
            return 0

    def _lacking_for(self, ids: Sequence[BlobId], owner: bytes, pins: PinSet) -> list[BlobId]:
        """``_lacking``, and the owner's blobs stored but not yet counted as held for it
        (a crash between a write and its accounting) are counted now."""
        lacking = self._lacking(ids, pins)
        missing = set(lacking)
        uncounted = []
        for blob_id in dict.fromkeys(ids):
            if blob_id in missing or self._state.is_held_for(owner, blob_id):
                continue
            try:
                uncounted.append((blob_id, self._store.location(blob_id).stored_len))
            except RepoError:
                continue
        if uncounted:
            self._state.record_held(owner, uncounted)
            self._held.pop(owner, None)  # re-read the total at the next write
        return lacking

    def _lacking(self, ids: Sequence[BlobId], pins: PinSet) -> list[BlobId]:
        """The ids not stored here; those stored are pinned for the rest of the fetch."""
        seen: set[bytes] = set()
        out = []
        for i in ids:
            if i in seen:
                continue
            seen.add(i)
            with self._store.pins.lock:  # as gc deletes: pinned, or gone before we look
                if self._store.has(i):
                    pins.add(i)
                else:
                    out.append(i)
        return out

    async def _fetch_from(
        self,
        peer: ID,
        pending: dict[BlobId, None],
        store: trio.MemorySendChannel[list[tuple[BlobId, bytes]]],
        result: FetchResult,
    ) -> None:
        """Ask one peer for the pending blobs until it has no more of them."""
        asked = list(pending)[:MAX_WANT]
        while asked:
            try:
                reply = await self._client.request(peer, WantBlobs(tuple(asked)), BlobsReply)
            except PeerMisbehaved as exc:
                log.warning("%s", exc)
                self.scores.penalise(peer.to_bytes(), WRONG_BLOB_PENALTY)
                result.peer_errors[peer.to_base58()] = str(exc)
                return
            except MeshError as exc:
                log.info("fetch from %s: %s", peer.to_base58()[-8:], exc)
                self.scores.penalise(peer.to_bytes(), UNREACHABLE_PENALTY)
                result.peer_errors[peer.to_base58()] = str(exc)
                return
            # Hashing 8 MiB takes a few ms: off the event loop, which meanwhile reads the
            # other streams (blake3 releases the GIL).
            good, wrong = await trio.to_thread.run_sync(_verify, reply, set(asked))
            for what in wrong:
                metrics.BLOBS_REJECTED.inc()
                self.scores.penalise(peer.to_bytes(), WRONG_BLOB_PENALTY)
                log.warning("peer %s sent %s", peer.to_base58()[-8:], what)
            if good:
                await store.send(good)
                for blob_id, data in good:
                    pending.pop(blob_id, None)
                    result.fetched += 1
                    result.bytes += len(data)
                name = peer.to_base58()
                result.by_peer[name] = result.by_peer.get(name, 0) + len(good)
                size = sum(len(data) for _, data in good)
                result.bytes_by_peer[name] = result.bytes_by_peer.get(name, 0) + size
            # Only what the peer deferred, and still pending, is worth asking it again.
            asked = [i for i in reply.more if i in pending] if good else []

    async def _store_blobs(
        self,
        owner: bytes,
        quota: int,
        kind: BlobKind,
        blobs: list[tuple[BlobId, bytes]],
        replace: bool = False,
    ) -> None:
        async with self._write_lock:
            await trio.to_thread.run_sync(self._store_sync, owner, quota, kind, blobs, replace)
        size = sum(len(d) for _, d in blobs)
        metrics.BLOBS_RECEIVED.inc(len(blobs))
        metrics.BYTES_RECEIVED.inc(size)
        if kind is BlobKind.FOREIGN:
            metrics.OWNER_BYTES_STORED.labels(peer_id_text(owner)).inc(size)

    def _store_sync(
        self,
        owner: bytes,
        quota: int,
        kind: BlobKind,
        blobs: list[tuple[BlobId, bytes]],
        replace: bool = False,
    ) -> None:
        foreign = kind is BlobKind.FOREIGN and not replace  # counted (and capped) once
        size = sum(len(d) for _, d in blobs)
        held = 0
        if foreign:
            if self._held_generation != _state.held_generation:  # gc freed some quota
                self._held.clear()
                self._held_generation = _state.held_generation
            if owner not in self._held:
                self._held[owner] = self._state.held_for(owner)[1]
            held = self._held[owner]
            if quota and held + size > quota:
                raise QuotaExceeded(
                    f"holding {held} bytes for {owner.hex()[-8:]}; these blobs would exceed "
                    f"its quota of {quota} bytes"
                )
        with self._store.writer() as writer:
            for blob_id, data in blobs:
                writer.put(
                    data,
                    kind,
                    self._plain_len(blob_id) if replace else 0,
                    blob_id=blob_id,
                    replace=replace,
                )
        if foreign:
            # After the blobs are durable; a crash in between only under-counts.
            self._state.record_held(owner, [(b, len(d)) for b, d in blobs])
            self._held[owner] = held + size


def _verify(reply: BlobsReply, asked: set[BlobId]) -> tuple[list[tuple[BlobId, bytes]], list[str]]:
    """The blobs of ``reply`` that were asked for and hash to their ids, and what was
    wrong with the others (runs in a worker thread: no shared state)."""
    good = []
    wrong = []
    for blob_id, data in reply.blobs:
        if blob_id not in asked:
            wrong.append(f"a blob never asked for ({blob_id.short})")
        elif blob_id_of(data) != blob_id:
            wrong.append(f"wrong bytes for blob {blob_id.short}")
        else:
            asked.discard(blob_id)  # a duplicate in one reply is stored once
            good.append((blob_id, data))
    return good, wrong
