"""The mesh's records in the store's LevelDB (docs/design.md, "Mesh records in the index").

=================================================  ============================================
key                                                value
=================================================  ============================================
``A`` + owner (38) + seq (u64 BE)                  signed announcement or notice (the owner's stream)
``AM`` + manifest id (32)                          the owner's own manifest bytes
``Q`` + owner (38) + seq (u64 BE)                  replication state, msgpack (see ``QState``)
``R`` + snapshot id (32) + holder (38)             a holder's signed receipt (owner side)
``O`` + owner (38) + blob id (32)                  u64 BE size of a foreign blob held for owner
``L`` + owner (38)                                 u64 BE unix seconds: last signed word from owner
=================================================  ============================================

Owner peer ids start with ``0x00 0x24``, so ``A`` + owner never collides with ``AM``.
Announcements are kept in the index, not in packs: they are small and must be listed
by owner and sequence. A manifest is a blob for its holders (kind FOREIGN) but the owner
keeps its own here: it is in clear, and the owner's packs hold only sealed blobs.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgpack

from protocol import (
    ID_SIZE,
    PEER_ID_SIZE,
    Announcement,
    BlobId,
    OwnerRecord,
    Receipt,
    WireError,
    decode_owner_record,
    decode_receipt,
)

from ._peers import RecordStore

ANNOUNCE_PREFIX = b"A"
MANIFEST_PREFIX = b"AM"
QUEUE_PREFIX = b"Q"
RECEIPT_PREFIX = b"R"
OWNED_PREFIX = b"O"
LEASE_PREFIX = b"L"
_SEQ = struct.Struct(">Q")
_own_seq = threading.Lock()  # our next sequence number: announcements and notices race
held_generation = 0
"""Bumped when gc stops counting blobs as held (``drop_held``): a cached per-owner total
(the fetcher's quota check) older than this is re-read."""


@dataclass(frozen=True, slots=True)
class QState:
    """Where replication of one announced snapshot stands (holder side)."""

    state: str = "pending"
    """``pending``, ``complete``, ``quota_exceeded``, ``failed`` (bad manifest) or
    ``forgotten`` (its owner forgot the snapshot: nothing more to fetch)."""
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

    # -- the owners' streams: announcements and notices ---------------------------------------

    def put_announcement(self, ann: OwnerRecord) -> bool:
        """Keep an announcement or notice; False if its owner and seq are already taken."""
        key = ANNOUNCE_PREFIX + ann.owner + _SEQ.pack(ann.seq)
        if self._store.get_record(key) is not None:
            return False
        self._store.put_records([(key, ann.raw)])
        return True

    def append_own(self, owner: bytes, make: Callable[[int], OwnerRecord]) -> OwnerRecord:
        """Make and keep our next record: ``make(seq)`` with the next free sequence number
        (one lock per process, so an announcement and a notice never take the same one)."""
        with _own_seq:
            record = make(self.last_seq(owner) + 1)
            self.put_announcement(record)
            return record

    def records(self, owner: bytes, after: int = 0) -> Iterator[OwnerRecord]:
        """The owner's records with seq > ``after``, in seq order (damaged ones skipped)."""
        prefix = ANNOUNCE_PREFIX + owner
        for key, raw in self._store.iter_records(prefix):
            if len(key) != len(prefix) + _SEQ.size:
                continue
            (seq,) = _SEQ.unpack(key[len(prefix) :])
            if seq <= after:
                continue
            try:
                yield decode_owner_record(bytes(raw))
            except WireError:
                continue

    def announcements(self, owner: bytes, after: int = 0) -> Iterator[Announcement]:
        """The owner's announcements with seq > ``after``, in seq order (damaged ones skipped)."""
        for rec in self.records(owner, after):
            if isinstance(rec, Announcement):
                yield rec

    def owners(self) -> list[bytes]:
        """Every owner with a stream here (ourselves included, if we announced)."""
        out: list[bytes] = []
        for key, _ in self._store.iter_records(ANNOUNCE_PREFIX):
            if len(key) == 1 + PEER_ID_SIZE + _SEQ.size and (
                not out or out[-1] != key[1 : 1 + PEER_ID_SIZE]
            ):
                out.append(bytes(key[1 : 1 + PEER_ID_SIZE]))
        return out

    def last_seq(self, owner: bytes) -> int:
        last = 0
        prefix = ANNOUNCE_PREFIX + owner
        for key, _ in self._store.iter_records(prefix):
            if len(key) == len(prefix) + _SEQ.size:
                last = max(last, _SEQ.unpack(key[len(prefix) :])[0])
        return last

    def contiguous_seq(self, owner: bytes) -> int:
        """The highest N such that records 1..N of the owner are all here: where a pull
        resumes, so a record missed while later ones arrived by push is caught up."""
        prefix = ANNOUNCE_PREFIX + owner
        expected = 1
        for key, _ in self._store.iter_records(prefix):
            if len(key) != len(prefix) + _SEQ.size:
                continue
            if _SEQ.unpack(key[len(prefix) :])[0] != expected:
                break
            expected += 1
        return expected - 1

    def announcement(self, owner: bytes, seq: int) -> Announcement | None:
        raw = self._store.get_record(ANNOUNCE_PREFIX + owner + _SEQ.pack(seq))
        if raw is None:
            return None
        try:
            rec = decode_owner_record(bytes(raw))
        except WireError:
            return None
        return rec if isinstance(rec, Announcement) else None

    # -- owners' leases (holder side) ------------------------------------------------------------

    def heard_from(self, owner: bytes, when: int) -> None:
        """Note a verified signed message from ``owner`` at unix second ``when``.

        Not synced: a record lost in a machine crash only makes the lease look older by
        the owner's next message, which is due within a sync interval.
        """
        self._store.put_records([(LEASE_PREFIX + owner, _SEQ.pack(when))], sync=False)

    def last_heard(self, owner: bytes) -> int:
        """Unix second of the last signed word from ``owner`` (0: never heard)."""
        raw = self._store.get_record(LEASE_PREFIX + owner)
        return _SEQ.unpack(raw)[0] if raw is not None and len(raw) == _SEQ.size else 0

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

    def held_owners(self) -> list[bytes]:
        """Every owner some foreign blob is held for (one seek per owner, when the store's
        iterator can seek, instead of reading every ``O`` record)."""
        out: list[bytes] = []
        records = self._store.iter_records(OWNED_PREFIX)
        for key, _ in records:
            owner = bytes(key[1 : 1 + PEER_ID_SIZE])
            if len(key) == 1 + PEER_ID_SIZE + ID_SIZE and (not out or out[-1] != owner):
                out.append(owner)
                if hasattr(records, "seek"):  # past this owner's records
                    records.seek(OWNED_PREFIX + owner + b"\xff" * (ID_SIZE + 1))
        return out

    def held_blobs(self, owner: bytes) -> Iterator[BlobId]:
        """The blob ids held for ``owner``."""
        prefix = OWNED_PREFIX + owner
        for key, _ in self._store.iter_records(prefix):
            if len(key) == len(prefix) + ID_SIZE:
                yield BlobId(bytes(key[len(prefix) :]))

    def drop_held(self, owner: bytes, blob_ids: list[bytes]) -> None:
        """Stop counting these blobs as held for ``owner`` (they were collected)."""
        global held_generation
        if blob_ids:
            self._store.put_records([(OWNED_PREFIX + owner + bytes(b), None) for b in blob_ids])
            held_generation += 1

    def is_held_for(self, owner: bytes, blob_id: bytes) -> bool:
        return self._store.get_record(OWNED_PREFIX + owner + bytes(blob_id)) is not None
