"""The responder side of the chunk exchange: check every request, then serve it.

Checks, in order, each refusal counted in ``shadowvault_p2p_requests_refused_total``:

1. the frame fits ``MAX_REQUEST_FRAME`` (else ``too_large``, and the stream is closed: the
   rest of an oversized frame cannot be skipped safely) and decodes (``malformed``);
2. the signature is by the Noise-authenticated peer (``bad_signature``); the request is
   addressed to us and its time is within ``MAX_SKEW`` (``stale``);
3. the nonce is new (``replayed``); a full cache refuses with ``busy`` rather than forget
   nonces still inside the window;
4. the requester's role (``not_authorised``): any request needs store-for or store-at;
   pushing an announcement needs store-for (we keep that owner's data) and delivering a
   receipt needs store-at (they keep ours).

Each refusal is also handed to ``on_refused`` (the mesh aggregates them into the audit
log), and each request that passes the checks to ``on_heard`` (an owner's signed request
renews its lease).

Which blobs are served: our own, and foreign blobs we hold, to any authorised peer. Blob
ids are hashes of ciphertext that only the owner and its holders learn, and the blobs
are sealed, so an id works as a capability; holders of the same owner fetch from each
other this way.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import trio
from libp2p.abc import INetStream

from protocol import (
    EXCHANGE_PROTOCOL,
    MAX_ANNOUNCEMENTS_PER_REPLY,
    MAX_REQUEST_FRAME,
    MAX_SKEW,
    REPLY_BUDGET,
    Ack,
    AnnouncementsReply,
    AnnouncementsSince,
    BlobId,
    BlobsReply,
    DeliverReceipt,
    ErrorCode,
    ErrorReply,
    HaveQuery,
    HaveReply,
    OwnerRecord,
    PushAnnouncement,
    Receipt,
    Reply,
    SignedRequest,
    WantBlobs,
    WireError,
    decode_owner_record,
    decode_receipt,
    decode_request,
    encode_reply,
)

from . import _metrics as metrics
from ._framing import read_frame, write_frame
from ._peers import PeerBook
from ._state import MeshState

log = logging.getLogger("shadowvault.p2p")

SERVE_CONCURRENCY = 8
"""Requests served at once, over all peers and streams."""
IDLE_TIMEOUT = 300.0
"""Seconds an inbound stream may sit without a request before we close it."""


class BlobSource(Protocol):
    """Where served blobs come from. Both methods run in a worker thread."""

    def read(self, blob_id: BlobId) -> bytes | None:
        """The blob's verified bytes, or None if it is not held (or damaged)."""
        ...

    def has(self, blob_id: BlobId) -> bool: ...


class ReplayCache:
    """Nonces seen inside the time window, bounded.

    An entry must outlive the window (a request older than that is refused as stale
    anyway), so entries are kept ``2 * MAX_SKEW + 1`` seconds. When the cache is full of
    live entries new requests are refused (``busy``) instead of evicting a live nonce,
    which would reopen the replay it guards against.
    """

    def __init__(self, capacity: int = 100_000, ttl: float = 2 * MAX_SKEW + 1) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def add(self, key: bytes, now: float) -> ErrorCode | None:
        """Record ``key``; return ``replayed`` or ``busy`` if it cannot be accepted."""
        while self._seen:  # entries are in insertion (= expiry) order
            oldest, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[oldest]
        if key in self._seen:
            return ErrorCode.REPLAYED
        if len(self._seen) >= self._capacity:
            return ErrorCode.BUSY
        self._seen[key] = now + self._ttl
        return None


class _Refused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ExchangeServer:
    """Serves ``EXCHANGE_PROTOCOL`` streams for one node.

    Args:
        local_peer: our raw peer id.
        peers: the peer list (roles).
        state: mesh records (announcements, receipts).
        blobs: where served blobs are read from.
        on_announcement: called with each verified announcement or notice pushed by
            its owner.
        max_skew: seconds a request's time may be off our clock.
        clock: unix time source (tests pass a fixed one).
        on_refused: called with (peer, reason code) for each refused request.
        on_heard: called with the peer of each request that passed every check.
    """

    def __init__(
        self,
        *,
        local_peer: bytes,
        peers: PeerBook,
        state: MeshState,
        blobs: BlobSource,
        on_announcement: Callable[[OwnerRecord], None],
        max_skew: int = MAX_SKEW,
        clock: Callable[[], float] = time.time,
        on_refused: Callable[[bytes, str], None] | None = None,
        on_heard: Callable[[bytes], None] | None = None,
    ) -> None:
        self._local = local_peer
        self._peers = peers
        self._state = state
        self._blobs = blobs
        self._on_announcement = on_announcement
        self._on_refused = on_refused
        self._on_heard = on_heard
        self._clock = clock
        self._max_skew = max_skew
        self._replay = ReplayCache(ttl=2 * max_skew + 1)
        # Bounds the memory of replies being built (up to REPLY_BUDGET each) however
        # many streams peers open.
        self._limit = trio.CapacityLimiter(SERVE_CONCURRENCY)

    async def handle(self, stream: INetStream) -> None:
        """Serve one inbound stream until the peer closes it (or it idles out)."""
        peer = stream.muxed_conn.peer_id.to_bytes()
        while True:
            with trio.move_on_after(IDLE_TIMEOUT):
                try:
                    raw = await read_frame(stream, MAX_REQUEST_FRAME)
                except WireError as exc:
                    # The stream is out of step (oversized or cut frame): answer, then close.
                    self._refused(peer, exc.code)
                    await write_frame(stream, encode_reply(ErrorReply(exc.code, str(exc))))
                    await stream.close()
                    return
                if raw is None:
                    await stream.close()
                    return
                reply = await self.serve(peer, raw)
                await write_frame(stream, encode_reply(reply))
                continue
            await stream.close()  # idle
            return

    async def serve(self, peer: bytes, raw: bytes) -> Reply:
        """Check one request from the authenticated ``peer`` and answer it."""
        try:
            req = self._check(peer, raw)
            async with self._limit:
                reply = await self._dispatch(peer, req)
        except _Refused as exc:
            self._refused(peer, exc.code)
            return ErrorReply(exc.code, str(exc))
        except WireError as exc:
            self._refused(peer, exc.code)
            return ErrorReply(exc.code, str(exc))
        except Exception:
            log.exception("serving a request failed")
            return ErrorReply(ErrorCode.INTERNAL, "")
        metrics.REQUESTS_SERVED.labels(type(req.body).__name__).inc()
        return reply

    def _refused(self, peer: bytes, code: ErrorCode) -> None:
        metrics.REQUESTS_REFUSED.labels(code.value).inc()
        if self._on_refused is not None:
            try:
                self._on_refused(peer, code.value)
            except Exception:
                log.exception("noting a refused request failed")

    def _check(self, peer: bytes, raw: bytes) -> SignedRequest:
        req = decode_request(raw)
        now = self._clock()
        req.verify(
            protocol=EXCHANGE_PROTOCOL,
            authenticated_peer=peer,
            local_peer=self._local,
            now=int(now),
            max_skew=self._max_skew,
        )
        refusal = self._replay.add(peer + req.nonce, now)
        if refusal is not None:
            raise _Refused(refusal, "nonce already used" if refusal is ErrorCode.REPLAYED else "")
        rec = self._peers.get(peer)
        if rec is None or not rec.authorised:
            raise _Refused(ErrorCode.NOT_AUTHORISED, "this node does not store for or at you")
        if isinstance(req.body, PushAnnouncement) and not rec.store_for:
            raise _Refused(ErrorCode.NOT_AUTHORISED, "this node does not store for you")
        if isinstance(req.body, DeliverReceipt) and not rec.store_at:
            raise _Refused(ErrorCode.NOT_AUTHORISED, "this node does not store at you")
        if self._on_heard is not None:
            self._on_heard(peer)
        return req

    async def _dispatch(self, peer: bytes, req: SignedRequest) -> Reply:
        body = req.body
        if isinstance(body, WantBlobs):
            return await trio.to_thread.run_sync(self._want, body.ids)
        if isinstance(body, HaveQuery):
            return await trio.to_thread.run_sync(self._have, body.ids)
        if isinstance(body, AnnouncementsSince):
            anns: list[bytes] = []
            more = False
            for ann in self._state.records(body.owner, body.seq):
                if len(anns) == MAX_ANNOUNCEMENTS_PER_REPLY:
                    more = True
                    break
                anns.append(ann.raw)
            return AnnouncementsReply(tuple(anns), more)
        if isinstance(body, PushAnnouncement):
            ann = decode_owner_record(body.announcement)
            if ann.owner != peer:
                raise _Refused(ErrorCode.NOT_AUTHORISED, "you may only push your own announcements")
            self._on_announcement(ann)
            return Ack()
        assert isinstance(body, DeliverReceipt)
        rcpt = decode_receipt(body.receipt)
        if rcpt.holder != peer or rcpt.owner != self._local:
            raise _Refused(ErrorCode.NOT_AUTHORISED, "a receipt must be yours and for us")
        self._on_receipt(rcpt)
        return Ack()

    def _on_receipt(self, rcpt: Receipt) -> None:
        self._state.put_receipt(rcpt)
        log.info("receipt: %s holds snapshot %s", rcpt.holder.hex()[-8:], rcpt.snapshot_id.short)

    def _want(self, ids: tuple[BlobId, ...]) -> BlobsReply:
        blobs: list[tuple[BlobId, bytes]] = []
        missing: list[BlobId] = []
        more: list[BlobId] = []
        spent = 0
        for blob_id in ids:
            if blobs and spent >= REPLY_BUDGET:
                more.append(blob_id)
                continue
            data = self._blobs.read(blob_id)
            if data is None:
                missing.append(blob_id)
                continue
            blobs.append((blob_id, data))
            spent += len(data)
        metrics.BYTES_SENT.inc(spent)
        return BlobsReply(tuple(blobs), tuple(missing), tuple(more))

    def _have(self, ids: tuple[BlobId, ...]) -> HaveReply:
        held = [i for i in ids if self._blobs.has(i)]
        return HaveReply(tuple(held))
