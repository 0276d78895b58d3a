"""The chunk exchange protocol: signed requests and their replies (docs/design.md, "Exchange").

One protocol id, ``EXCHANGE_PROTOCOL``, on long-lived streams: the requester writes a request
frame, the responder answers with exactly one reply frame, and so on until either side
closes. Every request is signed::

    request  = {"v": 1, "from": peer id, "to": peer id, "t": unix seconds, "n": nonce (16),
                "body": msgpack body, "sig": Ed25519 over signed_bytes}
    signed_bytes = REQUEST_DOMAIN || u8 len(protocol) || protocol || from (38) || to (38)
                   || t (u64 BE) || nonce (16) || BLAKE3-256(body)

The responder checks that ``from`` is the Noise-authenticated peer (so the key comes from
the connection, never from the message), that ``to`` is itself, that ``t`` is inside the
window, and (outside this pure package) that the nonce is new and the requester's role.
Replies are not signed: the connection authenticates the responder, blobs are checked
against their ids, and announcements and receipts carry their own signatures.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import blake3
import nacl.signing

from ._blob import MAX_BLOB_SIZE
from ._ids import ID_SIZE, BlobId
from ._peer import PEER_ID_SIZE
from ._records import MAX_ANNOUNCEMENT, MAX_RECEIPT
from ._signing import SIGNATURE_SIZE, sign, verify
from ._wire import (
    MAX_REQUEST_FRAME,
    MAX_RESPONSE_FRAME,
    ErrorCode,
    WireError,
    check_version,
    decode_map,
    encode_map,
    get_bool,
    get_bytes,
    get_id_list,
    get_int,
    get_list,
    get_str,
)

EXCHANGE_PROTOCOL = "/shadowvault/exchange/1.0.0"
EXCHANGE_VERSION = 1
REQUEST_DOMAIN = b"shadowvault/request/v1\x00"
NONCE_SIZE = 16
MAX_SKEW = 120
"""Seconds a request's time may differ from the responder's clock."""
MAX_WANT = 1024
"""Most blob ids one want or have request may name."""
MAX_ANNOUNCEMENTS_PER_REPLY = 64
REPLY_BUDGET = 8 * 1024 * 1024
"""Bytes of blobs a responder puts in one reply before deferring the rest (at least one
blob is always sent, so a 64 MiB blob still fits in one ``MAX_RESPONSE_FRAME``)."""

_TIME = struct.Struct(">Q")


# -- request bodies -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WantBlobs:
    """Send me these blobs (reply: ``BlobsReply``)."""

    ids: tuple[BlobId, ...]


@dataclass(frozen=True, slots=True)
class HaveQuery:
    """Which of these blobs do you hold? (reply: ``HaveReply``)."""

    ids: tuple[BlobId, ...]


@dataclass(frozen=True, slots=True)
class AnnouncementsSince:
    """Every announcement by ``owner`` with a sequence number above ``seq``."""

    owner: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class PushAnnouncement:
    """An owner pushes one signed announcement to a holder (reply: ``Ack``)."""

    announcement: bytes


@dataclass(frozen=True, slots=True)
class DeliverReceipt:
    """A holder hands the owner a signed receipt (reply: ``Ack``)."""

    receipt: bytes


RequestBody = WantBlobs | HaveQuery | AnnouncementsSince | PushAnnouncement | DeliverReceipt


def encode_body(body: RequestBody) -> bytes:
    """The canonical bytes of a request body (what the signature's digest covers)."""
    doc: dict[str, Any]
    if isinstance(body, WantBlobs):
        doc = {"k": "want", "ids": [bytes(i) for i in body.ids]}
    elif isinstance(body, HaveQuery):
        doc = {"k": "have", "ids": [bytes(i) for i in body.ids]}
    elif isinstance(body, AnnouncementsSince):
        doc = {"k": "since", "owner": body.owner, "seq": body.seq}
    elif isinstance(body, PushAnnouncement):
        doc = {"k": "announce", "ann": body.announcement}
    else:
        doc = {"k": "receipt", "rcpt": body.receipt}
    return encode_map(doc)


def decode_body(raw: bytes) -> RequestBody:
    """Raises WireError on anything but one well-formed body."""
    doc = decode_map(raw, MAX_REQUEST_FRAME)
    kind = doc.get("k")
    if kind == "want":
        return WantBlobs(tuple(BlobId(i) for i in get_id_list(doc, "ids", ID_SIZE, MAX_WANT)))
    if kind == "have":
        return HaveQuery(tuple(BlobId(i) for i in get_id_list(doc, "ids", ID_SIZE, MAX_WANT)))
    if kind == "since":
        return AnnouncementsSince(get_bytes(doc, "owner", PEER_ID_SIZE), get_int(doc, "seq"))
    if kind == "announce":
        return PushAnnouncement(get_bytes(doc, "ann", cap=MAX_ANNOUNCEMENT))
    if kind == "receipt":
        return DeliverReceipt(get_bytes(doc, "rcpt", cap=MAX_RECEIPT))
    raise WireError(f"unknown request kind {kind!r}")


# -- the signed envelope ----------------------------------------------------------------------


def signed_bytes(
    protocol: str, requester: bytes, responder: bytes, time: int, nonce: bytes, body: bytes
) -> bytes:
    """The canonical bytes a request signature covers (see the module docstring)."""
    proto = protocol.encode("ascii")
    return b"".join(
        (
            bytes((len(proto),)),
            proto,
            requester,
            responder,
            _TIME.pack(time),
            nonce,
            blake3.blake3(body).digest(),
        )
    )


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A decoded request whose signature has not been checked yet (see ``verify``)."""

    requester: bytes
    responder: bytes
    time: int
    nonce: bytes
    body_raw: bytes
    signature: bytes
    body: RequestBody

    def verify(
        self,
        *,
        protocol: str,
        authenticated_peer: bytes,
        local_peer: bytes,
        now: int,
        max_skew: int = MAX_SKEW,
    ) -> None:
        """Check signer, addressee and time window (the nonce and role are the caller's).

        Args:
            max_skew: seconds the request time may be off ``now`` (default ``MAX_SKEW``).

        Raises:
            WireError: code bad_signature (not signed by the connected peer) or stale
                (outside the window, or addressed to another node).
        """
        if self.requester != authenticated_peer:
            raise WireError("request not signed by the connected peer", ErrorCode.BAD_SIGNATURE)
        data = signed_bytes(
            protocol, self.requester, self.responder, self.time, self.nonce, self.body_raw
        )
        verify(authenticated_peer, REQUEST_DOMAIN, data, self.signature)
        if self.responder != local_peer:
            raise WireError("request is addressed to another node", ErrorCode.STALE)
        if abs(now - self.time) > max_skew:
            raise WireError(f"request time is {now - self.time} s off", ErrorCode.STALE)


def sign_request(
    key: nacl.signing.SigningKey,
    *,
    protocol: str,
    requester: bytes,
    responder: bytes,
    time: int,
    nonce: bytes,
    body: RequestBody,
) -> bytes:
    """Encode and sign a request (the map; frame it with ``encode_frame``-style framing)."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
    body_raw = encode_body(body)
    data = signed_bytes(protocol, requester, responder, time, nonce, body_raw)
    return encode_map(
        {
            "v": EXCHANGE_VERSION,
            "from": requester,
            "to": responder,
            "t": time,
            "n": nonce,
            "body": body_raw,
            "sig": sign(key, REQUEST_DOMAIN, data),
        }
    )


def decode_request(raw: bytes) -> SignedRequest:
    """Decode a request's structure and body (no signature check).

    Raises:
        WireError: malformed or oversized.
    """
    doc = decode_map(raw, MAX_REQUEST_FRAME)
    check_version(doc, EXCHANGE_VERSION, "request")
    body_raw = get_bytes(doc, "body", cap=MAX_REQUEST_FRAME)
    return SignedRequest(
        requester=get_bytes(doc, "from", PEER_ID_SIZE),
        responder=get_bytes(doc, "to", PEER_ID_SIZE),
        time=get_int(doc, "t"),
        nonce=get_bytes(doc, "n", NONCE_SIZE),
        body_raw=body_raw,
        signature=get_bytes(doc, "sig", SIGNATURE_SIZE),
        body=decode_body(body_raw),
    )


# -- replies --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobsReply:
    """Blobs found (unverified: the requester checks each against its id), ids not held,
    and ids deferred to a later request because the reply budget was spent."""

    blobs: tuple[tuple[BlobId, bytes], ...]
    missing: tuple[BlobId, ...] = ()
    more: tuple[BlobId, ...] = ()


@dataclass(frozen=True, slots=True)
class HaveReply:
    ids: tuple[BlobId, ...]


@dataclass(frozen=True, slots=True)
class AnnouncementsReply:
    announcements: tuple[bytes, ...]
    more: bool = False
    """True if the responder holds more after the last one sent."""


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A refusal, with a code from the closed set the requester can show its user."""

    code: ErrorCode
    message: str = ""


Reply = BlobsReply | HaveReply | AnnouncementsReply | Ack | ErrorReply


def encode_reply(reply: Reply) -> bytes:
    """The reply map's bytes (unframed)."""
    doc: dict[str, Any] = {"v": EXCHANGE_VERSION}
    if isinstance(reply, BlobsReply):
        doc |= {
            "r": "blobs",
            "blobs": [[bytes(i), data] for i, data in reply.blobs],
            "missing": [bytes(i) for i in reply.missing],
            "more": [bytes(i) for i in reply.more],
        }
    elif isinstance(reply, HaveReply):
        doc |= {"r": "have", "ids": [bytes(i) for i in reply.ids]}
    elif isinstance(reply, AnnouncementsReply):
        doc |= {"r": "anns", "anns": list(reply.announcements), "more": reply.more}
    elif isinstance(reply, Ack):
        doc |= {"r": "ack"}
    else:
        doc |= {"r": "error", "code": reply.code.value, "msg": reply.message[:1000]}
    return encode_map(doc)


def decode_reply(raw: bytes) -> Reply:
    """Raises WireError on anything but one well-formed reply."""
    doc = decode_map(raw, MAX_RESPONSE_FRAME)
    check_version(doc, EXCHANGE_VERSION, "reply")
    kind = doc.get("r")
    if kind == "blobs":
        blobs = []
        for item in get_list(doc, "blobs", MAX_WANT):
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], bytes)
                or len(item[0]) != ID_SIZE
                or not isinstance(item[1], bytes)
                or len(item[1]) > MAX_BLOB_SIZE
            ):
                raise WireError("reply blobs must be [32-byte id, blob] pairs")
            blobs.append((BlobId(item[0]), item[1]))
        return BlobsReply(
            tuple(blobs),
            tuple(BlobId(i) for i in get_id_list(doc, "missing", ID_SIZE, MAX_WANT)),
            tuple(BlobId(i) for i in get_id_list(doc, "more", ID_SIZE, MAX_WANT)),
        )
    if kind == "have":
        return HaveReply(tuple(BlobId(i) for i in get_id_list(doc, "ids", ID_SIZE, MAX_WANT)))
    if kind == "anns":
        anns = get_list(doc, "anns", MAX_ANNOUNCEMENTS_PER_REPLY)
        if not all(isinstance(a, bytes) and len(a) <= MAX_ANNOUNCEMENT for a in anns):
            raise WireError("reply announcements must be binary")
        return AnnouncementsReply(tuple(anns), get_bool(doc, "more"))
    if kind == "ack":
        return Ack()
    if kind == "error":
        code = get_str(doc, "code", 64)
        try:
            return ErrorReply(ErrorCode(code), get_str(doc, "msg", 1000))
        except ValueError as exc:
            raise WireError(f"unknown error code {code!r}") from exc
    raise WireError(f"unknown reply kind {kind!r}")
