"""The sealed-blob envelope (docs/design.md, "Sealed blob").

A sealed blob is the concatenation::

    header (2 bytes) || nonce (24 bytes) || ciphertext || tag (16 bytes)

    header  = version:u8 || flags:u8
    version = 1
    flags   = bit 0: the plaintext was compressed with zstd before encryption;
              bits 1-7: reserved, MUST be zero.

The cipher is XChaCha20-Poly1305 (IETF) with the two header bytes as associated data, so
a changed flag or version fails authentication. The envelope is the only part a peer can
parse; it says nothing about the content beyond its length.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOB_FORMAT_VERSION = 1
BLOB_HEADER_SIZE = 2
BLOB_NONCE_SIZE = 24
BLOB_TAG_SIZE = 16
BLOB_OVERHEAD = BLOB_HEADER_SIZE + BLOB_NONCE_SIZE + BLOB_TAG_SIZE
"""Bytes a sealed blob has beyond its (possibly compressed) plaintext."""

FLAG_ZSTD = 0x01
_KNOWN_FLAGS = FLAG_ZSTD

MAX_BLOB_SIZE = 64 * 1024 * 1024
"""Largest sealed blob any node accepts (bytes). The biggest chunk is 16 MiB; trees of huge
directories are the reason for the headroom."""


class BlobFormatError(ValueError):
    """Bytes that are not a sealed blob of a format version this code understands."""


@dataclass(frozen=True, slots=True)
class BlobHeader:
    """The clear-text header of a sealed blob."""

    version: int
    flags: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_ZSTD)

    def to_bytes(self) -> bytes:
        return bytes((self.version, self.flags))


def parse_blob_header(sealed: bytes | bytearray | memoryview) -> BlobHeader:
    """Read and validate the header of a sealed blob.

    Raises:
        BlobFormatError: too short, too long, an unknown version or a reserved flag set.
    """
    if len(sealed) < BLOB_OVERHEAD:
        raise BlobFormatError(f"sealed blob of {len(sealed)} bytes is shorter than its envelope")
    if len(sealed) > MAX_BLOB_SIZE:
        raise BlobFormatError(f"sealed blob of {len(sealed)} bytes exceeds {MAX_BLOB_SIZE}")
    version, flags = sealed[0], sealed[1]
    if version != BLOB_FORMAT_VERSION:
        raise BlobFormatError(f"blob format version {version} is not supported")
    if flags & ~_KNOWN_FLAGS:
        raise BlobFormatError(f"blob has reserved flags set: {flags:#04x}")
    return BlobHeader(version, flags)
