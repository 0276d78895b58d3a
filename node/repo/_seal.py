"""Sealing: turn plaintext into a blob (compress, then encrypt) and back.

Compression comes first because ciphertext does not compress. A chunk that zstd cannot
shrink is stored raw (flag bit clear): encrypted random data would otherwise grow by the
zstd frame overhead, and decompressing it would be wasted work on every read.

A ``Sealer`` holds one zstd compressor and decompressor, which are not thread-safe: give
each thread its own ``Sealer`` (they are cheap) or use ``Sealer.for_thread``.
"""

from __future__ import annotations

import threading

import nacl.utils
import zstandard

from protocol import (
    BLOB_FORMAT_VERSION,
    BLOB_HEADER_SIZE,
    BLOB_NONCE_SIZE,
    FLAG_ZSTD,
    BlobFormatError,
    BlobId,
    parse_blob_header,
)

from ._aead import AuthenticationFailed, open_from, seal_into
from ._errors import CorruptBlob

COMPRESSION_OFF = 0
DEFAULT_COMPRESSION = 3
MAX_PLAINTEXT = 48 * 1024 * 1024
"""Largest plaintext a blob may decompress to (bytes): bounds memory on a hostile blob."""

_HEADER_RAW = bytes((BLOB_FORMAT_VERSION, 0))
_HEADER_ZSTD = bytes((BLOB_FORMAT_VERSION, FLAG_ZSTD))


def parse_compression(text: str) -> int:
    """Parse a compression setting: ``off`` or a zstd level 1-19.

    Raises:
        ValueError: anything else, with the accepted values in the message.
    """
    if text.strip().lower() in ("off", "none", "0"):
        return COMPRESSION_OFF
    try:
        level = int(text)
    except ValueError:
        raise ValueError(f"compression must be 'off' or a level 1-19, got {text!r}") from None
    if not 1 <= level <= 19:
        raise ValueError(f"compression level must be 1-19, got {level}")
    return level


class Sealer:
    """Compress-then-encrypt one plaintext at a time with a fixed compression level.

    Args:
        level: zstd level 1-19, or 0 (``COMPRESSION_OFF``) to never compress.
    """

    _local = threading.local()

    def __init__(self, level: int = DEFAULT_COMPRESSION) -> None:
        self.level = level
        self._compressor = zstandard.ZstdCompressor(level=level) if level else None
        self._decompressor = zstandard.ZstdDecompressor()

    @classmethod
    def for_thread(cls, level: int) -> Sealer:
        """Return this thread's ``Sealer`` for ``level``, creating it on first use."""
        cache: dict[int, Sealer] = cls._local.__dict__.setdefault("by_level", {})
        sealer = cache.get(level)
        if sealer is None:
            sealer = cache[level] = cls(level)
        return sealer

    def seal(self, plaintext: bytes | memoryview, key: bytes) -> memoryview:
        """Return the sealed blob for ``plaintext`` under ``key`` (a fresh random nonce).

        The result is a read-only buffer (bytes-like); ``bytes(result)`` copies it.
        """
        header = _HEADER_RAW
        body: bytes | memoryview = plaintext
        if self._compressor is not None and len(plaintext) > 0:
            packed = self._compressor.compress(plaintext)
            if len(packed) < len(plaintext):
                header, body = _HEADER_ZSTD, packed
        nonce = nacl.utils.random(BLOB_NONCE_SIZE)
        return seal_into(header + nonce, body, nonce, header, key)

    def open(
        self, blob_id: BlobId | bytes, sealed: bytes | memoryview, key: bytes
    ) -> bytes | memoryview:
        """Authenticate, decrypt and decompress a blob; return its plaintext (bytes-like).

        Raises:
            CorruptBlob: a bad envelope, a failed MAC (damage or the wrong key), or a
                zstd frame that does not decode.
        """
        try:
            header = parse_blob_header(sealed)
        except BlobFormatError as exc:
            raise CorruptBlob(blob_id, str(exc)) from exc
        view = memoryview(sealed)
        nonce = bytes(view[BLOB_HEADER_SIZE : BLOB_HEADER_SIZE + BLOB_NONCE_SIZE])
        try:
            body = open_from(
                view[BLOB_HEADER_SIZE + BLOB_NONCE_SIZE :],
                nonce,
                bytes(view[:BLOB_HEADER_SIZE]),
                key,
            )
        except AuthenticationFailed as exc:
            raise CorruptBlob(blob_id, "authentication failed (damaged or wrong key)") from exc
        if not header.compressed:
            return body
        try:
            # decompress() trusts a size declared in the frame header over max_output_size,
            # so a hostile frame must be refused on its declared size first.
            declared = zstandard.frame_content_size(body)
            if declared > MAX_PLAINTEXT:
                raise CorruptBlob(blob_id, f"declares {declared} bytes, over the limit")
            return self._decompressor.decompress(body, max_output_size=MAX_PLAINTEXT)
        except zstandard.ZstdError as exc:
            raise CorruptBlob(blob_id, f"does not decompress: {exc}") from exc
