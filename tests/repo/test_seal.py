"""Sealing: compress-then-encrypt round trips, raw storage, and every tampering is caught."""

from __future__ import annotations

import os
import random

import nacl.bindings
import pytest
import zstandard

from node.repo import COMPRESSION_OFF, CorruptBlob, Sealer, parse_compression
from protocol import (
    BLOB_HEADER_SIZE,
    BLOB_NONCE_SIZE,
    BLOB_OVERHEAD,
    BLOB_TAG_SIZE,
    FLAG_ZSTD,
    blob_id_of,
    parse_blob_header,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
MiB = 1024 * 1024


def _random(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _text(size: int) -> bytes:
    return (b"the quick brown fox jumps over the lazy dog\n" * (size // 44 + 1))[:size]


PLAINTEXTS = {
    "empty": b"",
    "one_byte": b"x",
    "text_100k": _text(100_000),
    "random_100k": _random(100_000),
    "mixed_1m": _random(MiB // 2, 1) + _text(MiB // 2),
}


@pytest.mark.parametrize("plain", PLAINTEXTS.values(), ids=PLAINTEXTS.keys())
@pytest.mark.parametrize("level", [COMPRESSION_OFF, 1, 3, 19], ids=["off", "l1", "l3", "l19"])
def test_seal_open_round_trip(plain, level):
    sealer = Sealer(level)
    sealed = sealer.seal(plain, KEY)
    assert Sealer(3).open(blob_id_of(sealed), sealed, KEY) == plain  # any level opens it
    assert len(sealed) <= len(plain) + BLOB_OVERHEAD  # never bigger than raw


def test_seal_incompressible_is_stored_raw():
    plain = _random(64 * 1024)
    sealed = Sealer(19).seal(plain, KEY)
    assert not parse_blob_header(sealed).compressed
    assert sealed[1] == 0
    assert len(sealed) == len(plain) + BLOB_OVERHEAD


def test_seal_compressible_is_compressed():
    plain = _text(64 * 1024)
    sealed = Sealer(3).seal(plain, KEY)
    assert parse_blob_header(sealed).compressed
    assert sealed[1] == FLAG_ZSTD
    assert len(sealed) < len(plain) // 4


@pytest.mark.parametrize("plain", [_text(64 * 1024), b""], ids=["compressible", "empty"])
def test_seal_compression_off_stores_raw(plain):
    sealed = Sealer(COMPRESSION_OFF).seal(plain, KEY)
    assert not parse_blob_header(sealed).compressed
    assert len(sealed) == len(plain) + BLOB_OVERHEAD


def test_seal_uses_a_fresh_nonce_each_time():
    plain = _text(1000)
    first, second = Sealer(3).seal(plain, KEY), Sealer(3).seal(plain, KEY)
    nonce = slice(BLOB_HEADER_SIZE, BLOB_HEADER_SIZE + BLOB_NONCE_SIZE)
    assert first[nonce] != second[nonce]
    assert blob_id_of(first) != blob_id_of(second)


@pytest.mark.parametrize(
    ("text", "level"),
    [("off", 0), ("none", 0), ("0", 0), ("OFF ", 0), ("1", 1), ("19", 19)],
    ids=lambda v: repr(v),
)
def test_parse_compression_accepts(text, level):
    assert parse_compression(text) == level


@pytest.mark.parametrize("text", ["20", "-1", "fast", ""], ids=["20", "negative", "word", "empty"])
def test_parse_compression_rejects(text):
    with pytest.raises(ValueError, match="compression"):
        parse_compression(text)


def _tamper(sealed: bytes, how: str) -> bytes:
    data = bytearray(sealed)
    ct_start = BLOB_HEADER_SIZE + BLOB_NONCE_SIZE
    if how == "version":
        data[0] = 2
    elif how == "zstd_flag":
        data[1] ^= FLAG_ZSTD
    elif how == "reserved_flag":
        data[1] |= 0x80
    elif how == "nonce_first":
        data[BLOB_HEADER_SIZE] ^= 0x01
    elif how == "nonce_last":
        data[ct_start - 1] ^= 0x80
    elif how == "ciphertext_first":
        data[ct_start] ^= 0x01
    elif how == "ciphertext_middle":
        data[(ct_start + len(data) - BLOB_TAG_SIZE) // 2] ^= 0x10
    elif how == "tag_last":
        data[-1] ^= 0x01
    elif how == "drop_last_byte":
        del data[-1]
    elif how == "append_byte":
        data.append(0)
    elif how == "shorter_than_envelope":
        del data[BLOB_OVERHEAD - 1 :]
    elif how == "empty":
        data.clear()
    else:
        raise AssertionError(how)
    return bytes(data)


TAMPERINGS = [
    "version",
    "zstd_flag",
    "reserved_flag",
    "nonce_first",
    "nonce_last",
    "ciphertext_first",
    "ciphertext_middle",
    "tag_last",
    "drop_last_byte",
    "append_byte",
    "shorter_than_envelope",
    "empty",
]


@pytest.mark.parametrize("how", TAMPERINGS)
@pytest.mark.parametrize(
    "plain", [_text(20_000), _random(20_000)], ids=["compressed_blob", "raw_blob"]
)
def test_seal_open_tampered_blob_is_corrupt_blob(plain, how):
    sealed = Sealer(3).seal(plain, KEY)
    blob_id = blob_id_of(sealed)
    with pytest.raises(CorruptBlob) as info:
        Sealer(3).open(blob_id, _tamper(sealed, how), KEY)
    assert info.value.blob_id == blob_id
    assert blob_id.hex()[:16] in str(info.value)


def test_seal_open_with_another_key_is_corrupt_blob():
    sealed = Sealer(3).seal(_text(5000), KEY)
    with pytest.raises(CorruptBlob, match="authentication failed"):
        Sealer(3).open(blob_id_of(sealed), sealed, OTHER_KEY)


def _authentic(body: bytes, flags: int) -> bytes:
    """A blob that authenticates under KEY with an arbitrary body (as only a key holder can)."""
    header = bytes((1, flags))
    nonce = os.urandom(BLOB_NONCE_SIZE)
    return (
        header
        + nonce
        + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(body, header, nonce, KEY)
    )


def test_seal_open_authentic_blob_with_bad_zstd_frame_is_corrupt_blob():
    sealed = _authentic(b"this is not a zstd frame", FLAG_ZSTD)
    with pytest.raises(CorruptBlob, match="does not decompress"):
        Sealer(3).open(blob_id_of(sealed), sealed, KEY)


def _bomb(declare_size: bool) -> bytes:
    """A small zstd frame of 64 MiB of zeros, more than Sealer's 48 MiB plaintext bound."""
    zeros = bytes(64 * MiB)
    if declare_size:
        return zstandard.ZstdCompressor(level=3).compress(zeros)
    stream = zstandard.ZstdCompressor(level=3).compressobj()
    return stream.compress(zeros) + stream.flush()


@pytest.mark.parametrize(
    "declare_size",
    [
        pytest.param(False, id="size_unknown"),
        pytest.param(True, id="size_in_frame_header"),
    ],
)
def test_seal_open_decompression_bomb_is_corrupt_blob(declare_size):
    sealed = _authentic(_bomb(declare_size), FLAG_ZSTD)
    assert len(sealed) < 4096
    with pytest.raises(CorruptBlob):
        Sealer(3).open(blob_id_of(sealed), sealed, KEY)


def test_sealer_for_thread_reuses_one_per_level():
    assert Sealer.for_thread(3) is Sealer.for_thread(3)
    assert Sealer.for_thread(3) is not Sealer.for_thread(0)
