"""The mesh's records in the store's LevelDB (docs/design.md, "Mesh records in the index").

=================================================  ============================================
key                                                value
=================================================  ============================================
``A`` + owner (38) + seq (u64 BE)                  signed announcement (as received or made)
``AM`` + manifest id (32)                          the owner's own manifest bytes
``Q`` + owner (38) + seq (u64 BE)                  replication state, msgpack (see ``QState``)
``R`` + snapshot id (32) + holder (38)             a holder's signed receipt (owner side)
``O`` + owner (38) + blob id (32)                  u64 BE size of a foreign blob held for owner
=================================================  ============================================

Owner peer ids start with ``0x00 0x24``, so ``A`` + owner never collides with ``AM``.
Announcements are kept in the index, not in packs: they are small and must be listed
by owner and sequence. A manifest is a blob for its holders (kind FOREIGN) but the owner
keeps its own here: it is in clear, and the owner's packs hold only sealed blobs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import msgpack

from protocol import (
    ID_SIZE,
    PEER_ID_SIZE,
    Announcement,
    BlobId,
    Receipt,
    WireError,
    decode_announcement,
    decode_receipt,
)

from ._peers import RecordStore

ANNOUNCE_PREFIX = b"A"
MANIFEST_PREFIX = b"AM"
QUEUE_PREFIX = b"Q"
RECEIPT_PREFIX = b"R"
OWNED_PREFIX = b"O"
_SEQ = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class QState:
    """Where replication of one announced snapshot stands (holder side)."""

    state: str = "pending"
    """``pending``, ``complete``, ``quota_exceeded`` or ``failed`` (bad manifest)."""
    missing: int = -1
    """Blobs still missing after the last attempt (-1: not counted yet)."""
    tries: int = 0
    next_try: float = 0.0
    """Unix seconds before which no new attempt is made (backoff)."""
    receipt_sent: bool = False

    def encode(self) -> bytes:
        return bytes(
            msgpack.packb(
                {
                    "state": self.state,
                    "missing": self.missing,
                    "tries": self.tries,
                    "next": self.next_try,
                    "rcpt": self.receipt_sent,
                }
            )
        )

    @classmethod
    def decode(cls, raw: bytes) -> QState:
        try:
            doc = msgpack.unpackb(raw)
            return cls(
                str(doc["state"]),
                int(doc["missing"]),
                int(doc["tries"]),
                float(doc["next"]),
                bool(doc["rcpt"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls()  # a damaged state record only costs a new attempt


class MeshState:
    """Typed access to the mesh records of one store."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    # -- announcements ----------------------------------------------------------------------

    def put_announcement(self, ann: Announcement) -> bool:
        """Keep an announcement; False if one with this owner and seq is already kept."""
        key = ANNOUNCE_PREFIX + ann.owner + _SEQ.pack(ann.seq)
        if self._store.get_record(key) is not None:
            return False
        self._store.put_records([(key, ann.raw)])
        return True

    def announcements(self, owner: bytes, after: int = 0) -> Iterator[Announcement]:
        """The owner's announcements with seq > ``after``, in seq order (damaged ones skipped)."""
        prefix = ANNOUNCE_PREFIX + owner
        for key, raw in self._store.iter_records(prefix):
            if len(key) != len(prefix) + _SEQ.size:
                continue
            (seq,) = _SEQ.unpack(key[len(prefix) :])
            if seq <= after:
                continue
            try:
                yield decode_announcement(bytes(raw))
            except WireError:
                continue

    def last_seq(self, owner: bytes) -> int:
        last = 0
        prefix = ANNOUNCE_PREFIX + owner
        for key, _ in self._store.iter_records(prefix):
            if len(key) == len(prefix) + _SEQ.size:
                last = max(last, _SEQ.unpack(key[len(prefix) :])[0])
        return last

    def announcement(self, owner: bytes, seq: int) -> Announcement | None:
        raw = self._store.get_record(ANNOUNCE_PREFIX + owner + _SEQ.pack(seq))
        if raw is None:
            return None
        try:
            return decode_announcement(bytes(raw))
        except WireError:
            return None

    # -- the owner's manifests ----------------------------------------------------------------

    def put_manifest(self, manifest_id: BlobId, data: bytes) -> None:
        self._store.put_records([(MANIFEST_PREFIX + bytes(manifest_id), data)])

    def manifest(self, manifest_id: bytes) -> bytes | None:
        raw = self._store.get_record(MANIFEST_PREFIX + bytes(manifest_id))
        return None if raw is None else bytes(raw)

    # -- replication queue (holder side) -------------------------------------------------------

    def queue(self, owner: bytes, seq: int, state: QState) -> None:
        self._store.put_records([(QUEUE_PREFIX + owner + _SEQ.pack(seq), state.encode())])

    def queued(self) -> Iterator[tuple[bytes, int, QState]]:
        for key, raw in self._store.iter_records(QUEUE_PREFIX):
            if len(key) != 1 + PEER_ID_SIZE + _SEQ.size:
                continue
            owner = bytes(key[1 : 1 + PEER_ID_SIZE])
            (seq,) = _SEQ.unpack(key[1 + PEER_ID_SIZE :])
            yield owner, seq, QState.decode(bytes(raw))

    def qstate(self, owner: bytes, seq: int) -> QState | None:
        raw = self._store.get_record(QUEUE_PREFIX + owner + _SEQ.pack(seq))
        return None if raw is None else QState.decode(bytes(raw))

    # -- receipts (owner side) -------------------------------------------------------------------

    def put_receipt(self, rcpt: Receipt) -> None:
        key = RECEIPT_PREFIX + bytes(rcpt.snapshot_id) + rcpt.holder
        self._store.put_records([(key, rcpt.raw)])

    def receipts(self, snapshot_id: bytes | None = None) -> Iterator[Receipt]:
        prefix = RECEIPT_PREFIX + (bytes(snapshot_id) if snapshot_id is not None else b"")
        for _, raw in self._store.iter_records(prefix):
            try:
                yield decode_receipt(bytes(raw))
            except WireError:
                continue

    # -- foreign blobs held per owner --------------------------------------------------------------

    def record_held(self, owner: bytes, blobs: list[tuple[BlobId, int]]) -> None:
        self._store.put_records(
            [(OWNED_PREFIX + owner + bytes(b), _SEQ.pack(size)) for b, size in blobs]
        )

    def held_for(self, owner: bytes) -> tuple[int, int]:
        """(blob count, bytes) held for ``owner``."""
        count = total = 0
        prefix = OWNED_PREFIX + owner
        for key, raw in self._store.iter_records(prefix):
            if len(key) == len(prefix) + ID_SIZE and len(raw) == _SEQ.size:
                count += 1
                total += _SEQ.unpack(raw)[0]
        return count, total

    def is_held_for(self, owner: bytes, blob_id: bytes) -> bool:
        return self._store.get_record(OWNED_PREFIX + owner + bytes(blob_id)) is not None
