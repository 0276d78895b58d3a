"""Frames and strict msgpack decoding for the mesh (docs/design.md, "Mesh frames").

Every message between nodes is one frame::

    frame = length:u32 BE || body (length bytes, a msgpack map)

A receiver checks ``length`` against its cap *before* reading the body, so a peer cannot
make it buffer more than the cap. Bodies are decoded with msgpack's own limits on string,
binary, array and map lengths, and every decoder in this package raises exactly one
exception type, ``WireError``, for anything that is not a well-formed message: garbage,
truncation, wrong types, oversized lists. Peers are untrusted; a decoder never crashes.
"""

from __future__ import annotations

import struct
from enum import StrEnum
from typing import Any

import msgpack

FRAME_HEADER_SIZE = 4
_FRAME_HEADER = struct.Struct(">I")

MAX_REQUEST_FRAME = 256 * 1024
"""Largest request frame a responder reads (bytes). A want-list of 1024 ids is ~35 KiB and
an announcement carries at most a 64 KiB snapshot record."""

MAX_RESPONSE_FRAME = 80 * 1024 * 1024
"""Largest response frame a requester reads (bytes): one blob of ``MAX_BLOB_SIZE`` (64 MiB)
plus the lists around it."""

MAX_LIST = 4096
"""Longest list any mesh message may hold (ids in a want or have query, blobs in a reply)."""


class WireError(ValueError):
    """Bytes from a peer that are not a valid message: malformed, truncated or too large.

    Attributes:
        code: the ``ErrorCode`` a responder sends back for it.
    """

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code = code if code is not None else ErrorCode.MALFORMED


class ErrorCode(StrEnum):
    """The closed set of error codes a node sends a peer (and a user may see).

    The values are stable: they are on the wire and in metrics labels.
    """

    NOT_AUTHORISED = "not_authorised"
    """The requester is in neither role (store-for, store-at) for this request."""
    BAD_SIGNATURE = "bad_signature"
    """The signature does not verify, or the signer is not the connected peer."""
    REPLAYED = "replayed"
    """The nonce was seen before inside the time window."""
    STALE = "stale"
    """The request time is outside the accepted window (or the request is for another node)."""
    TOO_LARGE = "too_large"
    """A frame or list exceeds its cap."""
    MALFORMED = "malformed"
    """The bytes do not decode as the expected message."""
    QUOTA_EXCEEDED = "quota_exceeded"
    """Accepting this would exceed the quota the node keeps for the owner."""
    NOT_FOUND = "not_found"
    """The thing asked for is not here."""
    BUSY = "busy"
    """The node cannot take the request now (replay cache full); retry later."""
    INTERNAL = "internal"
    """The responder failed; nothing about the request was wrong."""


def encode_frame(body: dict[str, Any]) -> bytes:
    """Serialise a message map into one length-prefixed frame."""
    raw = bytes(msgpack.packb(body, use_bin_type=True))
    return _FRAME_HEADER.pack(len(raw)) + raw


def parse_frame_header(header: bytes | bytearray | memoryview, cap: int) -> int:
    """Return the body length announced by a 4-byte frame header.

    Raises:
        WireError: the header is not 4 bytes (code malformed), or the length is zero or
            exceeds ``cap`` (code too_large).
    """
    if len(header) != FRAME_HEADER_SIZE:
        raise WireError(f"frame header of {len(header)} bytes")
    (length,) = _FRAME_HEADER.unpack(header)
    if length == 0:
        raise WireError("empty frame")
    if length > cap:
        raise WireError(f"frame of {length} bytes exceeds the cap of {cap}", ErrorCode.TOO_LARGE)
    return int(length)


def decode_map(raw: bytes | bytearray | memoryview, cap: int) -> dict[str, Any]:
    """Decode a msgpack map with hard limits; reject anything else.

    Raises:
        WireError: not one complete msgpack map, nested too deep, lists longer than
            ``MAX_LIST``, extension types, or larger than ``cap`` bytes.
    """
    if len(raw) > cap:
        raise WireError(f"message of {len(raw)} bytes exceeds {cap}", ErrorCode.TOO_LARGE)
    try:
        doc = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_bin_len=cap,
            max_str_len=64 * 1024,
            max_array_len=MAX_LIST,
            max_map_len=64,
            max_ext_len=0,
        )
    except ValueError as exc:
        # msgpack signals "too long" with ValueError as well as its FormatError/ExtraData.
        raise WireError(f"not a valid message: {exc}") from exc
    except Exception as exc:  # StackError, TypeError on unhashable keys, ...
        raise WireError(f"not a valid message: {type(exc).__name__}") from exc
    if not isinstance(doc, dict):
        raise WireError(f"expected a map, got {type(doc).__name__}")
    return doc


def encode_map(body: dict[str, Any]) -> bytes:
    """Serialise a message map (no frame header), as signed and embedded."""
    return bytes(msgpack.packb(body, use_bin_type=True))


# -- typed field access: every getter raises WireError, never KeyError/TypeError ------------


def get_bytes(doc: dict[str, Any], key: str, size: int | None = None, cap: int = 1 << 30) -> bytes:
    """A binary field, optionally of an exact size."""
    value = doc.get(key)
    if not isinstance(value, bytes):
        raise WireError(f"field {key!r} must be binary")
    if size is not None and len(value) != size:
        raise WireError(f"field {key!r} must be {size} bytes, got {len(value)}")
    if len(value) > cap:
        raise WireError(f"field {key!r} of {len(value)} bytes exceeds {cap}", ErrorCode.TOO_LARGE)
    return value


def get_int(doc: dict[str, Any], key: str, lo: int = 0, hi: int = (1 << 64) - 1) -> int:
    """An integer field within ``[lo, hi]`` (booleans are not integers here)."""
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"field {key!r} must be an integer")
    if not lo <= value <= hi:
        raise WireError(f"field {key!r} = {value} is out of range")
    return value


def get_str(doc: dict[str, Any], key: str, cap: int = 1024) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise WireError(f"field {key!r} must be a string")
    if len(value) > cap:
        raise WireError(f"field {key!r} is longer than {cap}", ErrorCode.TOO_LARGE)
    return value


def get_bool(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key)
    if not isinstance(value, bool):
        raise WireError(f"field {key!r} must be a boolean")
    return value


def get_list(doc: dict[str, Any], key: str, cap: int = MAX_LIST) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise WireError(f"field {key!r} must be a list")
    if len(value) > cap:
        raise WireError(f"field {key!r} holds {len(value)} items, over {cap}", ErrorCode.TOO_LARGE)
    return value


def get_id_list(doc: dict[str, Any], key: str, size: int, cap: int = MAX_LIST) -> list[bytes]:
    """A list of binary ids, each exactly ``size`` bytes."""
    items = get_list(doc, key, cap)
    for item in items:
        if not isinstance(item, bytes) or len(item) != size:
            raise WireError(f"field {key!r} must hold {size}-byte ids")
    return items


def check_version(doc: dict[str, Any], version: int, what: str) -> None:
    v = doc.get("v")
    if v != version:
        raise WireError(f"{what} version {v!r} is not supported")
