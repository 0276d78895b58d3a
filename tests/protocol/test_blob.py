"""The sealed-blob envelope and blob ids: exact limits, and a decoder that never crashes."""

from __future__ import annotations

import blake3
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol import (
    BLOB_FORMAT_VERSION,
    BLOB_OVERHEAD,
    FLAG_ZSTD,
    ID_SIZE,
    MAX_BLOB_SIZE,
    BlobFormatError,
    BlobHeader,
    BlobId,
    blob_id_of,
    parse_blob_header,
    parse_hex_id,
)


def _blob(version: int = BLOB_FORMAT_VERSION, flags: int = 0, size: int = BLOB_OVERHEAD) -> bytes:
    return bytes((version, flags)) + bytes(size - 2)


@pytest.mark.parametrize(
    ("flags", "compressed"), [(0, False), (FLAG_ZSTD, True)], ids=["raw", "zstd"]
)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_blob_header_accepts(flags, compressed, kind):
    header = parse_blob_header(kind(_blob(flags=flags)))
    assert header == BlobHeader(BLOB_FORMAT_VERSION, flags)
    assert header.compressed is compressed
    assert header.to_bytes() == bytes((BLOB_FORMAT_VERSION, flags))


@pytest.mark.parametrize(
    ("sealed", "message"),
    [
        (b"", "shorter than its envelope"),
        (_blob(size=BLOB_OVERHEAD)[:-1], "shorter than its envelope"),
        (_blob(version=0), "version 0"),
        (_blob(version=2), "version 2"),
        (_blob(flags=0x02), "reserved flags"),
        (_blob(flags=0x80), "reserved flags"),
        (_blob(flags=0xFF), "reserved flags"),
    ],
    ids=["empty", "one_short", "version_0", "version_2", "flag_bit_1", "flag_bit_7", "all_flags"],
)
def test_parse_blob_header_rejects(sealed, message):
    with pytest.raises(BlobFormatError, match=message):
        parse_blob_header(sealed)


def test_parse_blob_header_size_limits_are_inclusive():
    biggest = bytearray(MAX_BLOB_SIZE + 1)
    biggest[0] = BLOB_FORMAT_VERSION
    view = memoryview(biggest)
    assert parse_blob_header(view[:MAX_BLOB_SIZE]).version == BLOB_FORMAT_VERSION
    assert parse_blob_header(view[:BLOB_OVERHEAD]).version == BLOB_FORMAT_VERSION
    with pytest.raises(BlobFormatError, match="exceeds"):
        parse_blob_header(view)


def test_blob_format_error_is_a_value_error():
    assert issubclass(BlobFormatError, ValueError)


@given(st.binary(max_size=200))
@example(b"")
@example(bytes((BLOB_FORMAT_VERSION, FLAG_ZSTD)) + bytes(BLOB_OVERHEAD))
def test_parse_blob_header_fuzz_raises_only_blob_format_error(data):
    try:
        header = parse_blob_header(data)
    except BlobFormatError:
        return
    assert len(data) >= BLOB_OVERHEAD
    assert header.version == BLOB_FORMAT_VERSION == data[0]
    assert header.flags == data[1] and header.flags & ~FLAG_ZSTD == 0


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 64))
def test_parse_blob_header_fuzz_header_bytes(version, flags, extra):
    data = bytes((version, flags)) + bytes(BLOB_OVERHEAD - 2 + extra)
    valid = version == BLOB_FORMAT_VERSION and flags & ~FLAG_ZSTD == 0
    if valid:
        assert parse_blob_header(data).flags == flags
    else:
        with pytest.raises(BlobFormatError):
            parse_blob_header(data)


def test_blob_id_is_blake3_of_the_sealed_bytes():
    sealed = b"\x01\x00" + bytes(range(100))
    blob_id = blob_id_of(sealed)
    assert blob_id == blake3.blake3(sealed).digest()
    assert isinstance(blob_id, BlobId) and len(blob_id) == ID_SIZE
    assert str(blob_id) == blob_id.hex() and blob_id.short == blob_id.hex()[:8]
    assert blob_id_of(bytearray(sealed)) == blob_id_of(memoryview(sealed)) == blob_id


@pytest.mark.parametrize("size", [0, 31, 33], ids=["empty", "short", "long"])
def test_blob_id_wrong_size_is_value_error(size):
    with pytest.raises(ValueError, match="32 bytes"):
        BlobId(bytes(size))


def test_parse_hex_id_round_trip():
    blob_id = blob_id_of(b"x")
    assert parse_hex_id(blob_id.hex()) == blob_id
    assert parse_hex_id(blob_id.hex().upper()) == blob_id


@pytest.mark.parametrize(
    "text",
    ["", "ab" * 31, "ab" * 33, "zz" * 32, " " + "a" * 63],
    ids=["empty", "short", "long", "not_hex", "space"],
)
def test_parse_hex_id_rejects(text):
    with pytest.raises(ValueError):
        parse_hex_id(text)


@given(st.text(max_size=80))
def test_parse_hex_id_fuzz_raises_only_value_error(text):
    try:
        blob_id = parse_hex_id(text)
    except ValueError:
        return
    assert blob_id.hex() == text.lower()
