"""Mesh wire formats: round trips, signatures bound to peer ids, and decoders that never crash."""

from __future__ import annotations

import contextlib

import blake3
import msgpack
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    EXCHANGE_PROTOCOL,
    MAX_NOTICE_SNAPSHOTS,
    MAX_REQUEST_FRAME,
    MAX_SKEW,
    MAX_WANT,
    Ack,
    Announcement,
    AnnouncementsReply,
    AnnouncementsSince,
    BlobId,
    BlobsReply,
    DeliverReceipt,
    ErrorCode,
    ErrorReply,
    HaveQuery,
    HaveReply,
    Manifest,
    Notice,
    PushAnnouncement,
    Receipt,
    WantBlobs,
    WireError,
    blob_id_of,
    decode_announcement,
    decode_body,
    decode_manifest,
    decode_notice,
    decode_owner_record,
    decode_receipt,
    decode_reply,
    decode_request,
    encode_frame,
    encode_map,
    encode_reply,
    parse_frame_header,
    parse_peer_id,
    peer_id_from_public,
    peer_id_text,
    public_of_peer_id,
    sign_request,
)

KEY_A = nacl.signing.SigningKey(b"\x01" * 32)
KEY_B = nacl.signing.SigningKey(b"\x02" * 32)
PEER_A = peer_id_from_public(bytes(KEY_A.verify_key))
PEER_B = peer_id_from_public(bytes(KEY_B.verify_key))
NOW = 1_800_000_000


def _ids(n: int) -> tuple[BlobId, ...]:
    return tuple(BlobId(bytes([i % 256]) * 32) for i in range(n))


def _request(body=None, key=KEY_A, frm=PEER_A, to=PEER_B, t=NOW, nonce=b"n" * 16) -> bytes:
    return sign_request(
        key,
        protocol=EXCHANGE_PROTOCOL,
        requester=frm,
        responder=to,
        time=t,
        nonce=nonce,
        body=body or WantBlobs(_ids(3)),
    )


def _announcement(key=KEY_A, seq=1) -> Announcement:
    record = b"sealed snapshot record"
    return Announcement.create(
        key,
        seq=seq,
        snapshot_id=blob_id_of(record),
        manifest_id=BlobId(b"m" * 32),
        record=record,
        record_sig=b"s" * 64,
        time=NOW,
    )


# -- peer ids -------------------------------------------------------------------------------


def test_peer_id_matches_libp2p_text_form():
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    kp = create_new_key_pair(bytes(KEY_A))
    pid = ID.from_pubkey(kp.public_key)
    assert pid.to_bytes() == PEER_A
    assert peer_id_text(PEER_A) == pid.to_base58()
    assert parse_peer_id(pid.to_base58()) == PEER_A
    assert public_of_peer_id(PEER_A) == bytes(KEY_A.verify_key)


@pytest.mark.parametrize(
    "text", ["", "0OIl", "12D3KooW", "Qm" + "1" * 44, "x" * 200], ids=lambda t: repr(t[:10])
)
def test_parse_peer_id_rejects(text):
    with pytest.raises(WireError):
        parse_peer_id(text)


# -- frames ---------------------------------------------------------------------------------


def test_frame_round_trip_and_caps():
    frame = encode_frame({"a": 1})
    assert parse_frame_header(frame[:4], 100) == len(frame) - 4
    with pytest.raises(WireError) as err:
        parse_frame_header((101).to_bytes(4, "big"), 100)
    assert err.value.code is ErrorCode.TOO_LARGE
    for bad in (b"", b"\0\0\0", b"\0\0\0\0"):
        with pytest.raises(WireError) as err:
            parse_frame_header(bad, 100)
        assert err.value.code is ErrorCode.MALFORMED


# -- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        WantBlobs(_ids(5)),
        HaveQuery(_ids(2)),
        AnnouncementsSince(PEER_A, 7),
        PushAnnouncement(b"x" * 100),
        DeliverReceipt(b"y" * 10),
    ],
    ids=["want", "have", "since", "announce", "receipt"],
)
def test_request_round_trip_verifies(body):
    req = decode_request(_request(body))
    assert req.body == body
    req.verify(protocol=EXCHANGE_PROTOCOL, authenticated_peer=PEER_A, local_peer=PEER_B, now=NOW)


@pytest.mark.parametrize(
    ("kwargs", "verify_kw", "code"),
    [
        ({"key": KEY_B}, {}, ErrorCode.BAD_SIGNATURE),  # signed by someone else
        ({}, {"authenticated_peer": PEER_B}, ErrorCode.BAD_SIGNATURE),  # not the connected peer
        ({}, {"protocol": "/other/1"}, ErrorCode.BAD_SIGNATURE),  # domain: other protocol
        ({"to": PEER_A}, {}, ErrorCode.STALE),  # addressed to another node
        ({"t": NOW - MAX_SKEW - 1}, {}, ErrorCode.STALE),
        ({"t": NOW + MAX_SKEW + 1}, {}, ErrorCode.STALE),
    ],
    ids=["wrong-key", "not-connected-peer", "other-protocol", "wrong-responder", "old", "future"],
)
def test_request_verify_refuses(kwargs, verify_kw, code):
    req = decode_request(_request(**kwargs))
    args = {
        "protocol": EXCHANGE_PROTOCOL,
        "authenticated_peer": PEER_A,
        "local_peer": PEER_B,
        "now": NOW,
    } | verify_kw
    with pytest.raises(WireError) as err:
        req.verify(**args)
    assert err.value.code is code


def test_request_tampered_body_fails_signature():
    doc = msgpack.unpackb(_request())
    doc["body"] = encode_map({"k": "want", "ids": [b"z" * 32]})
    req = decode_request(msgpack.packb(doc))
    with pytest.raises(WireError) as err:
        req.verify(
            protocol=EXCHANGE_PROTOCOL, authenticated_peer=PEER_A, local_peer=PEER_B, now=NOW
        )
    assert err.value.code is ErrorCode.BAD_SIGNATURE


def test_want_list_over_cap_is_too_large():
    raw = encode_map({"k": "want", "ids": [b"a" * 32] * (MAX_WANT + 1)})
    with pytest.raises(WireError) as err:
        decode_body(raw)
    assert err.value.code is ErrorCode.TOO_LARGE


def test_oversized_request_is_too_large():
    with pytest.raises(WireError) as err:
        decode_request(b"\x80" + bytes(MAX_REQUEST_FRAME))
    assert err.value.code is ErrorCode.TOO_LARGE


# -- replies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        BlobsReply(((BlobId(b"a" * 32), b"data"),), _ids(1), _ids(2)),
        HaveReply(_ids(3)),
        AnnouncementsReply((b"a", b"b"), True),
        Ack(),
        ErrorReply(ErrorCode.NOT_AUTHORISED, "who are you"),
    ],
    ids=["blobs", "have", "anns", "ack", "error"],
)
def test_reply_round_trip(reply):
    assert decode_reply(encode_reply(reply)) == reply


# -- records --------------------------------------------------------------------------------


def test_announcement_round_trip_and_signature():
    ann = _announcement()
    back = decode_announcement(ann.raw)
    assert back == ann
    assert back.owner == PEER_A


def test_announcement_forged_owner_is_refused():
    ann = _announcement()
    outer = msgpack.unpackb(ann.raw)
    body = msgpack.unpackb(outer["body"])
    body["owner"] = PEER_B  # claim to be B, keep A's signature
    outer["body"] = msgpack.packb(body)
    with pytest.raises(WireError) as err:
        decode_announcement(msgpack.packb(outer))
    assert err.value.code is ErrorCode.BAD_SIGNATURE


def test_announcement_record_must_match_snapshot_id():
    record = b"one record"
    ann = Announcement.create(
        KEY_A,
        seq=1,
        snapshot_id=BlobId(b"q" * 32),
        manifest_id=BlobId(b"m" * 32),
        record=record,
        record_sig=b"s" * 64,
        time=NOW,
    )
    with pytest.raises(WireError, match="does not match"):
        decode_announcement(ann.raw)


def test_manifest_round_trip():
    m = Manifest(BlobId(b"s" * 32), _ids(300))
    assert decode_manifest(m.encode()) == m


def test_receipt_round_trip_and_forgery():
    r = Receipt.create(
        KEY_B,
        owner=PEER_A,
        snapshot_id=BlobId(b"s" * 32),
        manifest_id=BlobId(b"m" * 32),
        seq=3,
        time=NOW,
    )
    assert decode_receipt(r.raw) == r
    assert r.holder == PEER_B
    outer = msgpack.unpackb(r.raw)
    outer["sig"] = bytes(64)
    with pytest.raises(WireError):
        decode_receipt(msgpack.packb(outer))


def _notice(key=KEY_A, kind="forget", until=0, n=2) -> Notice:
    return Notice.create(key, seq=7, kind=kind, snapshots=_ids(n), until=until, time=NOW)


@pytest.mark.parametrize(
    ("kind", "until"), [("forget", 0), ("hold", NOW + 86400), ("release", 0)], ids=str
)
def test_notice_round_trip_and_owner_stream_dispatch(kind, until):
    notice = _notice(kind=kind, until=until)
    assert decode_notice(notice.raw) == notice
    assert decode_owner_record(notice.raw) == notice
    ann = _announcement()
    assert decode_owner_record(ann.raw) == ann


def test_notice_forged_owner_and_cross_domain_are_refused():
    notice = _notice()
    outer = msgpack.unpackb(notice.raw)
    body = msgpack.unpackb(outer["body"])
    body["owner"] = PEER_B  # claim to be B, keep A's signature
    outer["body"] = msgpack.packb(body)
    with pytest.raises(WireError) as err:
        decode_owner_record(msgpack.packb(outer))
    assert err.value.code is ErrorCode.BAD_SIGNATURE
    # An announcement's signature never passes for a notice (separate domains).
    ann_outer = msgpack.unpackb(_announcement().raw)
    ann_body = msgpack.unpackb(ann_outer["body"])
    ann_body.update({"k": "forget", "snaps": b"x" * 32, "until": 0})
    ann_outer["body"] = msgpack.packb(ann_body)
    with pytest.raises(WireError):
        decode_owner_record(msgpack.packb(ann_outer))


@pytest.mark.parametrize(
    ("kind", "until", "n"),
    [
        ("hold", 0, 1),
        ("forget", NOW, 1),
        ("purge", 0, 1),
        ("forget", 0, 0),
        ("forget", 0, MAX_NOTICE_SNAPSHOTS + 1),
    ],
    ids=["hold-without-until", "forget-with-until", "unknown-kind", "empty", "too-many"],
)
def test_notice_inconsistent_fields_are_refused(kind, until, n):
    with pytest.raises(ValueError):
        _notice(kind=kind, until=until, n=n)
    body = {
        "owner": PEER_A,
        "seq": 1,
        "k": kind,
        "snaps": b"".join(_ids(n)),
        "until": until,
        "t": NOW,
    }
    raw_body = encode_map(body)
    from protocol import NOTICE_DOMAIN

    sig = bytes(KEY_A.sign(NOTICE_DOMAIN + raw_body).signature)
    with pytest.raises(WireError):
        decode_notice(encode_map({"v": 1, "body": raw_body, "sig": sig}))


# -- fuzz: garbage and truncation give WireError, nothing else ------------------------------

DECODERS = [
    decode_request,
    decode_body,
    decode_reply,
    decode_announcement,
    decode_manifest,
    decode_receipt,
    decode_notice,
    decode_owner_record,
]
VALID = {
    "request": _request(),
    "reply": encode_reply(BlobsReply(((BlobId(b"a" * 32), b"data"),))),
    "announcement": _announcement().raw,
    "manifest": Manifest(BlobId(b"s" * 32), _ids(4)).encode(),
    "notice": Notice.create(
        KEY_A, seq=2, kind="hold", snapshots=_ids(2), until=NOW + 1, time=NOW
    ).raw,
    "receipt": Receipt.create(
        KEY_B,
        owner=PEER_A,
        snapshot_id=BlobId(b"s" * 32),
        manifest_id=BlobId(b"m" * 32),
        seq=1,
        time=NOW,
    ).raw,
}


def _msgpack_values() -> st.SearchStrategy[object]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.binary(max_size=40)
        | st.text(max_size=10)
    )
    return st.recursive(
        leaves,
        lambda kids: (
            st.lists(kids, max_size=5)
            | st.dictionaries(
                st.sampled_from(["v", "k", "ids", "body", "sig", "r", "owner", "x"]),
                kids,
                max_size=6,
            )
        ),
        max_leaves=20,
    )


@pytest.mark.parametrize("decode", DECODERS, ids=lambda f: f.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300))
def test_decoders_garbage_raises_wire_error_only(decode, data):
    with contextlib.suppress(WireError):
        decode(data)


@pytest.mark.parametrize("decode", DECODERS, ids=lambda f: f.__name__)
@settings(max_examples=150, deadline=None)
@given(value=_msgpack_values())
def test_decoders_wrong_structure_raises_wire_error_only(decode, value):
    with contextlib.suppress(WireError):
        decode(msgpack.packb(value))


@pytest.mark.parametrize("name", sorted(VALID), ids=str)
@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0), flip=st.integers(min_value=0), bit=st.integers(0, 7))
def test_decoders_truncated_or_flipped_raise_wire_error_only(name, cut, flip, bit):
    raw = VALID[name]
    decode = {
        "request": decode_request,
        "reply": decode_reply,
        "announcement": decode_announcement,
        "manifest": decode_manifest,
        "receipt": decode_receipt,
        "notice": decode_owner_record,
    }[name]
    truncated = raw[: cut % len(raw)]
    with pytest.raises(WireError):
        decode(truncated)
    flipped = bytearray(raw)
    flipped[flip % len(raw)] ^= 1 << bit
    with contextlib.suppress(WireError):
        decode(bytes(flipped))


def test_request_signed_bytes_golden_vector():
    """The exact bytes a request signature covers (design.md section 9); a change here is
    a wire-format change and needs a new protocol version."""
    from protocol import REQUEST_DOMAIN, encode_body, signed_bytes

    body = encode_body(WantBlobs((BlobId(b"\x11" * 32),)))
    data = signed_bytes(EXCHANGE_PROTOCOL, PEER_A, PEER_B, NOW, b"\x22" * 16, body)
    assert data.hex() == (
        "1b2f736861646f777661756c742f65786368616e67652f312e302e30"
        + PEER_A.hex()
        + PEER_B.hex()
        + "000000006b49d200"
        + "22" * 16
        + blake3.blake3(body).hexdigest()
    )
    assert body.hex() == "82a16ba477616e74a3696473" + "91c420" + "11" * 32
    assert REQUEST_DOMAIN == b"shadowvault/request/v1\x00"
    raw = _request(WantBlobs((BlobId(b"\x11" * 32),)), nonce=b"\x22" * 16)
    assert decode_request(raw).signature == KEY_A.sign(REQUEST_DOMAIN + data).signature
