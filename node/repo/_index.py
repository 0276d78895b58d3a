"""The LevelDB key layout: every record the store keeps, by key prefix.

=========================  =======================================================
key                        value
=========================  =======================================================
``M``                      store metadata (msgpack map; see ``StoreMeta``)
``b`` + blob id (32)       blob location ``<IQIIB``: pack, offset, stored_len,
                           plain_len, kind
``d`` + dedup key (32)     blob id (32) holding that plaintext chunk
``p`` + pack no (u32 BE)   committed length of that pack ``<Q`` (bytes)
``s`` + snapshot id (32)   the snapshot's signed record (see ``_snapshot``)
``f`` + path hash (32)     files-cache entry (see ``ops.backup``)
``h`` + snapshot id (32)   hold: msgpack ``{until_ns, reason, created_ns}`` (``_holds``)
``a`` + seq (u64 BE)       audit entry, hash-chained and signed (``_audit``)
``a``                      audit head: the last entry's seq and hash, signed
``gD`` + pack no (u32 BE)  gc is deleting that pack (finished on open, ``_drops``)
``gL``                     the last gc's report (msgpack)
=========================  =======================================================

Pack numbers are big-endian in keys so that an iterator visits packs in order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocol import BlobId

from ._pack import BlobKind

META_KEY = b"M"
BLOB_PREFIX = b"b"
DEDUP_PREFIX = b"d"
PACK_PREFIX = b"p"
SNAPSHOT_PREFIX = b"s"
FILES_CACHE_PREFIX = b"f"
HOLD_PREFIX = b"h"
AUDIT_PREFIX = b"a"
GC_PREFIX = b"g"
GC_DROP_PREFIX = b"gD"
GC_LAST_KEY = b"gL"

_LOCATION = struct.Struct("<IQIIB")
BLOB_RECORD_SIZE = _LOCATION.size
BLOB_PLACE = struct.Struct("<IQI")
"""The leading fields of a blob record: pack, offset, stored_len."""
BLOB_KINDS = frozenset(int(k) for k in BlobKind)
"""Valid values of a blob record's last byte (its kind)."""
_PACK_KEY = struct.Struct(">I")
_PACK_LEN = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a blob lives. Offsets stay inside ``repo``: callers above see only ids."""

    pack: int
    offset: int
    stored_len: int
    plain_len: int
    kind: BlobKind

    def encode(self) -> bytes:
        return _LOCATION.pack(self.pack, self.offset, self.stored_len, self.plain_len, self.kind)

    @classmethod
    def decode(cls, raw: bytes) -> BlobLocation:
        """Raises ValueError on a record of the wrong size or an unknown kind."""
        try:
            pack, offset, stored_len, plain_len, kind = _LOCATION.unpack(raw)
        except struct.error as exc:
            raise ValueError(f"blob record of {len(raw)} bytes") from exc
        return cls(pack, offset, stored_len, plain_len, BlobKind(kind))


def blob_place(raw: bytes) -> tuple[int, int, int] | None:
    """(pack, offset, stored_len) of a blob record, None if it is damaged.

    The same checks as ``BlobLocation.decode`` without building the object: full index
    passes (gc's sweep) spend most of their time there otherwise.
    """
    if len(raw) != BLOB_RECORD_SIZE or raw[-1] not in BLOB_KINDS:
        return None
    place: tuple[int, int, int] = BLOB_PLACE.unpack_from(raw)
    return place


def blob_kind(raw: bytes) -> int | None:
    """The kind byte of a blob record, None if it is damaged (as ``blob_place``)."""
    if len(raw) != BLOB_RECORD_SIZE or raw[-1] not in BLOB_KINDS:
        return None
    return raw[-1]


def blob_key(blob_id: bytes) -> bytes:
    return BLOB_PREFIX + blob_id


def dedup_key(key: bytes) -> bytes:
    return DEDUP_PREFIX + key


def pack_key(pack_no: int) -> bytes:
    return PACK_PREFIX + _PACK_KEY.pack(pack_no)


def pack_no_of_key(key: bytes) -> int:
    return int(_PACK_KEY.unpack(key[1:])[0])


def drop_key(pack_no: int) -> bytes:
    return GC_DROP_PREFIX + _PACK_KEY.pack(pack_no)


def pack_no_of_drop_key(key: bytes) -> int:
    return int(_PACK_KEY.unpack(key[2:])[0])


def encode_pack_len(n: int) -> bytes:
    return _PACK_LEN.pack(n)


def decode_pack_len(raw: bytes) -> int:
    """Raises ValueError on a record of the wrong size."""
    try:
        return int(_PACK_LEN.unpack(raw)[0])
    except struct.error as exc:
        raise ValueError(f"pack record of {len(raw)} bytes") from exc


def blob_id_of_key(key: bytes) -> BlobId:
    return BlobId(key[1:])
