"""Pack files: append-only segments holding sealed blobs back to back.

Layout (little-endian)::

    pack  = file-header entry*
    file-header (16 bytes) = magic "SVPACK1\\n" (8) || pack number u32 || reserved u32 (0)
    entry = entry-header (80 bytes) || sealed blob (stored_len bytes)
    entry-header = blob id (32) || dedup key (32, zero if none) || stored_len u32
                   || plain_len u32 || kind u8 || reserved (3, zero)
                   || crc32 of the preceding 76 bytes u32

Packs are self-describing so the index can be rebuilt from them: an entry is valid when
its header CRC matches and BLAKE3 of its body equals its blob id. A crash can leave only
a torn tail (an incomplete last entry), which recovery cuts off.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from protocol import MAX_BLOB_SIZE, BlobId, blob_id_of

PACK_MAGIC = b"SVPACK1\n"
FILE_HEADER = struct.Struct("<8sII")
ENTRY_HEADER = struct.Struct("<32s32sIIB3xI")
_ENTRY_CRC_SPAN = ENTRY_HEADER.size - 4
NO_DEDUP_KEY = bytes(32)


class BlobKind(IntEnum):
    """What a blob holds; decides which subkey opens it."""

    DATA = 1
    """A chunk of file content (data key)."""
    TREE = 2
    """A directory listing (metadata key)."""
    SNAPSHOT = 3
    """A snapshot record (metadata key)."""
    MANIFEST = 4
    """The list of blob ids a snapshot uses (metadata key)."""
    FOREIGN = 5
    """A peer's blob kept for it; only its id can be checked here."""


def pack_name(pack_no: int) -> str:
    """File name of pack ``pack_no`` inside the packs directory."""
    return f"{pack_no:08d}.pack"


def parse_pack_name(name: str) -> int | None:
    """Pack number from a file name, or None for anything that is not a pack."""
    if len(name) == 13 and name.endswith(".pack") and name[:8].isdigit():
        return int(name[:8])
    return None


def file_header(pack_no: int) -> bytes:
    """The 16-byte header that starts pack ``pack_no``."""
    return FILE_HEADER.pack(PACK_MAGIC, pack_no, 0)


def entry_header(
    blob_id: bytes, dedup_key: bytes | None, stored_len: int, plain_len: int, kind: BlobKind
) -> bytes:
    """Encode the 80-byte header written before a blob in a pack."""
    head = ENTRY_HEADER.pack(
        blob_id, dedup_key or NO_DEDUP_KEY, stored_len, plain_len, int(kind), 0
    )[:_ENTRY_CRC_SPAN]
    return head + struct.pack("<I", zlib.crc32(head))


@dataclass(frozen=True, slots=True)
class PackEntry:
    """One blob as found by scanning a pack."""

    blob_id: BlobId
    dedup_key: bytes | None
    offset: int
    """Offset of the sealed bytes (after the entry header) in the pack file."""
    stored_len: int
    plain_len: int
    kind: BlobKind


@dataclass(frozen=True, slots=True)
class ScanStop:
    """Why and where a pack scan stopped before the end of the file."""

    offset: int
    reason: str


def parse_entry_header(raw: bytes | memoryview, offset: int) -> PackEntry | ScanStop:
    """Decode the 80-byte entry header found at ``offset`` (CRC and ranges checked)."""
    if len(raw) < ENTRY_HEADER.size:
        return ScanStop(offset, "incomplete entry header")
    blob_id, dedup, stored_len, plain_len, kind, crc = ENTRY_HEADER.unpack(raw)
    if zlib.crc32(raw[:_ENTRY_CRC_SPAN]) != crc:
        return ScanStop(offset, "entry header checksum mismatch")
    if stored_len > MAX_BLOB_SIZE or kind not in BlobKind._value2member_map_:
        return ScanStop(offset, "entry header out of range")
    return PackEntry(
        BlobId(blob_id),
        None if dedup == NO_DEDUP_KEY else dedup,
        offset + ENTRY_HEADER.size,
        stored_len,
        plain_len,
        BlobKind(kind),
    )


def scan_pack(
    fd: int, start: int, end: int, *, verify: bool = True
) -> Iterator[PackEntry | ScanStop]:
    """Walk the entries of an open pack from ``start`` (an entry boundary) to ``end``.

    Yields each valid entry; on the first invalid or incomplete one yields a ``ScanStop``
    and ends. With ``verify`` the body is read and hashed against its id (recovery needs
    that; a structural check reads headers only).
    """
    offset = start
    while offset < end:
        entry = parse_entry_header(os.pread(fd, ENTRY_HEADER.size, offset), offset)
        if isinstance(entry, ScanStop):
            yield entry
            return
        if entry.offset + entry.stored_len > end:
            yield ScanStop(offset, "incomplete blob")
            return
        if verify:
            body = os.pread(fd, entry.stored_len, entry.offset)
            if len(body) != entry.stored_len or blob_id_of(body) != entry.blob_id:
                yield ScanStop(offset, "blob does not match its id")
                return
        yield entry
        offset = entry.offset + entry.stored_len


def read_file_header(fd: int) -> int | None:
    """Return the pack number in a pack's file header, or None if it is missing or bad."""
    raw = os.pread(fd, FILE_HEADER.size, 0)
    if len(raw) < FILE_HEADER.size:
        return None
    magic, pack_no, _ = FILE_HEADER.unpack(raw)
    return pack_no if magic == PACK_MAGIC else None


RawEntry = tuple[bytes, bytes | None, int, int, memoryview]
"""(blob id, dedup key or None, offset of the sealed bytes, stored_len, the entry's bytes
as on disk: header and sealed blob)."""
_KIND_VALUES = frozenset(int(k) for k in BlobKind)


def scan_pack_entries(
    fd: int, start: int, end: int, *, block: int = 4 * 1024 * 1024, bodies: bool = True
) -> Iterator[RawEntry | ScanStop]:
    """Walk a pack's entries like ``scan_pack``, yielding each entry's bytes as on disk.

    Reads the pack in ``block``-sized sequential reads (one syscall per few blobs instead
    of two per blob); the yielded views share those blocks, so keeping one keeps its
    block alive.

    Used by gc's copies (the entry header already holds everything the blob's new place
    needs, so header and sealed blob are written out unchanged: no decrypt, no re-seal,
    no re-encoded header) and by check's scan. The header is checked as
    ``parse_entry_header`` does, without building a ``PackEntry``. With ``bodies=False``
    only the headers are read (in 64 KiB reads) and the yielded view is empty: a pack
    with no live blob is read for its dedup keys, not for its data.
    """
    if not bodies:
        block = 64 * 1024
    buf = memoryview(b"")
    buf_at = start
    offset = start
    head_size = ENTRY_HEADER.size
    unpack = ENTRY_HEADER.unpack

    def window(at: int, size: int) -> memoryview:
        nonlocal buf, buf_at
        if at < buf_at or at + size > buf_at + len(buf):
            buf, buf_at = memoryview(os.pread(fd, max(block, size), at)), at
            if bodies:  # the next blocks are read by the disk while these are copied
                os.posix_fadvise(fd, at + len(buf), 2 * block, os.POSIX_FADV_WILLNEED)
        return buf[at - buf_at : at - buf_at + size]

    empty = memoryview(b"")
    while offset < end:
        head = window(offset, min(head_size, end - offset))
        if len(head) < head_size:
            yield ScanStop(offset, "incomplete entry header")
            return
        blob_id, dedup, stored_len, _, kind, crc = unpack(head)
        if zlib.crc32(head[:_ENTRY_CRC_SPAN]) != crc:
            yield ScanStop(offset, "entry header checksum mismatch")
            return
        if stored_len > MAX_BLOB_SIZE or kind not in _KIND_VALUES:
            yield ScanStop(offset, "entry header out of range")
            return
        body_at = offset + head_size
        if body_at + stored_len > end:
            yield ScanStop(offset, "incomplete blob")
            return
        whole = window(offset, head_size + stored_len) if bodies else empty
        if bodies and len(whole) != head_size + stored_len:
            yield ScanStop(offset, "incomplete blob")
            return
        yield blob_id, (None if dedup == NO_DEDUP_KEY else dedup), body_at, stored_len, whole
        offset = body_at + stored_len
