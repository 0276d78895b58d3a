"""Blob identifiers (docs/design.md, "Blob ids").

A blob id is the BLAKE3-256 digest of the blob's sealed bytes. Hashing the ciphertext,
not the plaintext, means any node can check a blob it holds or receives without a key,
and an id reveals nothing about the content it protects.
"""

from __future__ import annotations

import blake3

ID_SIZE = 32
"""Bytes in a blob id (BLAKE3-256)."""


class BlobId(bytes):
    """A 32-byte blob identifier; ``str()`` gives lowercase hex, ``short`` the first 8 digits."""

    __slots__ = ()

    def __new__(cls, raw: bytes) -> BlobId:
        if len(raw) != ID_SIZE:
            raise ValueError(f"a blob id is {ID_SIZE} bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"BlobId({self.hex()[:16]}…)"

    @property
    def short(self) -> str:
        """The first 8 hex digits, as used in messages."""
        return self.hex()[:8]


def blob_id_of(sealed: bytes | bytearray | memoryview) -> BlobId:
    """Return the id of a sealed blob: BLAKE3-256 of exactly these bytes."""
    return BlobId(blake3.blake3(sealed).digest())


def parse_hex_id(text: str) -> BlobId:
    """Parse a full 64-digit hex id.

    Raises:
        ValueError: the text is not 64 hex digits.
    """
    if len(text) != 2 * ID_SIZE:
        raise ValueError(f"expected {2 * ID_SIZE} hex digits, got {len(text)}")
    try:
        return BlobId(bytes.fromhex(text))
    except ValueError as exc:
        raise ValueError(f"not a hex id: {text!r}") from exc
