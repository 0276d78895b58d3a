"""Pure wire and storage formats shared by every ShadowVault node.

This package holds the byte layouts that two parties must agree on: the sealed-blob
envelope, blob identifiers, the mesh's frames, signed requests and records, and the limits
a decoder enforces. It performs no I/O, needs no event loop and reads no clock, so any
layer (and any peer) can use it to validate data.

Terms:
    blob: a sealed (compressed, then encrypted) chunk, tree or record, as stored and sent.
    blob id: BLAKE3-256 of a blob's sealed bytes; anyone can verify it without a key.
    frame: one mesh message, a u32 BE length and a msgpack map (``_wire``).
    peer id: a libp2p peer id of an Ed25519 key; the raw form is 38 bytes (``_peer``).
    announcement, manifest, receipt: the signed mesh records (``_records``).
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._blob import BLOB_FORMAT_VERSION as BLOB_FORMAT_VERSION
    from ._blob import BLOB_HEADER_SIZE as BLOB_HEADER_SIZE
    from ._blob import BLOB_NONCE_SIZE as BLOB_NONCE_SIZE
    from ._blob import BLOB_OVERHEAD as BLOB_OVERHEAD
    from ._blob import BLOB_TAG_SIZE as BLOB_TAG_SIZE
    from ._blob import FLAG_ZSTD as FLAG_ZSTD
    from ._blob import MAX_BLOB_SIZE as MAX_BLOB_SIZE
    from ._blob import BlobFormatError as BlobFormatError
    from ._blob import BlobHeader as BlobHeader
    from ._blob import parse_blob_header as parse_blob_header
    from ._exchange import EXCHANGE_PROTOCOL as EXCHANGE_PROTOCOL
    from ._exchange import MAX_ANNOUNCEMENTS_PER_REPLY as MAX_ANNOUNCEMENTS_PER_REPLY
    from ._exchange import MAX_SKEW as MAX_SKEW
    from ._exchange import MAX_WANT as MAX_WANT
    from ._exchange import NONCE_SIZE as NONCE_SIZE
    from ._exchange import REPLY_BUDGET as REPLY_BUDGET
    from ._exchange import REQUEST_DOMAIN as REQUEST_DOMAIN
    from ._exchange import Ack as Ack
    from ._exchange import AnnouncementsReply as AnnouncementsReply
    from ._exchange import AnnouncementsSince as AnnouncementsSince
    from ._exchange import BlobsReply as BlobsReply
    from ._exchange import DeliverReceipt as DeliverReceipt
    from ._exchange import ErrorReply as ErrorReply
    from ._exchange import HaveQuery as HaveQuery
    from ._exchange import HaveReply as HaveReply
    from ._exchange import PushAnnouncement as PushAnnouncement
    from ._exchange import Reply as Reply
    from ._exchange import RequestBody as RequestBody
    from ._exchange import SignedRequest as SignedRequest
    from ._exchange import WantBlobs as WantBlobs
    from ._exchange import decode_body as decode_body
    from ._exchange import decode_reply as decode_reply
    from ._exchange import decode_request as decode_request
    from ._exchange import encode_body as encode_body
    from ._exchange import encode_reply as encode_reply
    from ._exchange import sign_request as sign_request
    from ._exchange import signed_bytes as signed_bytes
    from ._ids import ID_SIZE as ID_SIZE
    from ._ids import BlobId as BlobId
    from ._ids import blob_id_of as blob_id_of
    from ._ids import parse_hex_id as parse_hex_id
    from ._peer import PEER_ID_SIZE as PEER_ID_SIZE
    from ._peer import parse_peer_id as parse_peer_id
    from ._peer import peer_id_from_public as peer_id_from_public
    from ._peer import peer_id_text as peer_id_text
    from ._peer import public_of_peer_id as public_of_peer_id
    from ._records import ANNOUNCE_DOMAIN as ANNOUNCE_DOMAIN
    from ._records import MAX_MANIFEST_IDS as MAX_MANIFEST_IDS
    from ._records import MAX_NOTICE_SNAPSHOTS as MAX_NOTICE_SNAPSHOTS
    from ._records import MAX_SNAPSHOT_RECORD as MAX_SNAPSHOT_RECORD
    from ._records import NOTICE_DOMAIN as NOTICE_DOMAIN
    from ._records import NOTICE_KINDS as NOTICE_KINDS
    from ._records import RECEIPT_DOMAIN as RECEIPT_DOMAIN
    from ._records import Announcement as Announcement
    from ._records import Manifest as Manifest
    from ._records import Notice as Notice
    from ._records import OwnerRecord as OwnerRecord
    from ._records import Receipt as Receipt
    from ._records import decode_announcement as decode_announcement
    from ._records import decode_manifest as decode_manifest
    from ._records import decode_notice as decode_notice
    from ._records import decode_owner_record as decode_owner_record
    from ._records import decode_receipt as decode_receipt
    from ._signing import SIGNATURE_SIZE as SIGNATURE_SIZE
    from ._wire import FRAME_HEADER_SIZE as FRAME_HEADER_SIZE
    from ._wire import MAX_LIST as MAX_LIST
    from ._wire import MAX_REQUEST_FRAME as MAX_REQUEST_FRAME
    from ._wire import MAX_RESPONSE_FRAME as MAX_RESPONSE_FRAME
    from ._wire import ErrorCode as ErrorCode
    from ._wire import WireError as WireError
    from ._wire import decode_map as decode_map
    from ._wire import encode_frame as encode_frame
    from ._wire import encode_map as encode_map
    from ._wire import parse_frame_header as parse_frame_header

# Loaded on first use (PEP 562), not here: every command imports this package through
# the store, and most use only blob ids and the envelope; the signed requests
# (``_exchange``) and records were 12 ms of every start-up.
_HOME = {
    "BLOB_FORMAT_VERSION": "_blob",
    "BLOB_HEADER_SIZE": "_blob",
    "BLOB_NONCE_SIZE": "_blob",
    "BLOB_OVERHEAD": "_blob",
    "BLOB_TAG_SIZE": "_blob",
    "FLAG_ZSTD": "_blob",
    "MAX_BLOB_SIZE": "_blob",
    "BlobFormatError": "_blob",
    "BlobHeader": "_blob",
    "parse_blob_header": "_blob",
    "EXCHANGE_PROTOCOL": "_exchange",
    "MAX_ANNOUNCEMENTS_PER_REPLY": "_exchange",
    "MAX_SKEW": "_exchange",
    "MAX_WANT": "_exchange",
    "NONCE_SIZE": "_exchange",
    "REPLY_BUDGET": "_exchange",
    "REQUEST_DOMAIN": "_exchange",
    "Ack": "_exchange",
    "AnnouncementsReply": "_exchange",
    "AnnouncementsSince": "_exchange",
    "BlobsReply": "_exchange",
    "DeliverReceipt": "_exchange",
    "ErrorReply": "_exchange",
    "HaveQuery": "_exchange",
    "HaveReply": "_exchange",
    "PushAnnouncement": "_exchange",
    "Reply": "_exchange",
    "RequestBody": "_exchange",
    "SignedRequest": "_exchange",
    "WantBlobs": "_exchange",
    "decode_body": "_exchange",
    "decode_reply": "_exchange",
    "decode_request": "_exchange",
    "encode_body": "_exchange",
    "encode_reply": "_exchange",
    "sign_request": "_exchange",
    "signed_bytes": "_exchange",
    "ID_SIZE": "_ids",
    "BlobId": "_ids",
    "blob_id_of": "_ids",
    "parse_hex_id": "_ids",
    "PEER_ID_SIZE": "_peer",
    "parse_peer_id": "_peer",
    "peer_id_from_public": "_peer",
    "peer_id_text": "_peer",
    "public_of_peer_id": "_peer",
    "ANNOUNCE_DOMAIN": "_records",
    "MAX_MANIFEST_IDS": "_records",
    "MAX_NOTICE_SNAPSHOTS": "_records",
    "MAX_SNAPSHOT_RECORD": "_records",
    "NOTICE_DOMAIN": "_records",
    "NOTICE_KINDS": "_records",
    "RECEIPT_DOMAIN": "_records",
    "Announcement": "_records",
    "Manifest": "_records",
    "Notice": "_records",
    "OwnerRecord": "_records",
    "Receipt": "_records",
    "decode_announcement": "_records",
    "decode_manifest": "_records",
    "decode_notice": "_records",
    "decode_owner_record": "_records",
    "decode_receipt": "_records",
    "SIGNATURE_SIZE": "_signing",
    "FRAME_HEADER_SIZE": "_wire",
    "MAX_LIST": "_wire",
    "MAX_REQUEST_FRAME": "_wire",
    "MAX_RESPONSE_FRAME": "_wire",
    "ErrorCode": "_wire",
    "WireError": "_wire",
    "decode_map": "_wire",
    "encode_frame": "_wire",
    "encode_map": "_wire",
    "parse_frame_header": "_wire",
}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ANNOUNCE_DOMAIN",
    "Ack",
    "Announcement",
    "AnnouncementsReply",
    "AnnouncementsSince",
    "BLOB_FORMAT_VERSION",
    "BLOB_HEADER_SIZE",
    "BLOB_NONCE_SIZE",
    "BLOB_OVERHEAD",
    "BLOB_TAG_SIZE",
    "BlobFormatError",
    "BlobHeader",
    "BlobId",
    "BlobsReply",
    "DeliverReceipt",
    "EXCHANGE_PROTOCOL",
    "ErrorCode",
    "ErrorReply",
    "FLAG_ZSTD",
    "FRAME_HEADER_SIZE",
    "HaveQuery",
    "HaveReply",
    "ID_SIZE",
    "MAX_ANNOUNCEMENTS_PER_REPLY",
    "MAX_BLOB_SIZE",
    "MAX_LIST",
    "MAX_MANIFEST_IDS",
    "MAX_NOTICE_SNAPSHOTS",
    "MAX_REQUEST_FRAME",
    "MAX_RESPONSE_FRAME",
    "MAX_SKEW",
    "MAX_SNAPSHOT_RECORD",
    "MAX_WANT",
    "Manifest",
    "NONCE_SIZE",
    "NOTICE_DOMAIN",
    "NOTICE_KINDS",
    "Notice",
    "OwnerRecord",
    "PEER_ID_SIZE",
    "PushAnnouncement",
    "RECEIPT_DOMAIN",
    "REPLY_BUDGET",
    "REQUEST_DOMAIN",
    "Receipt",
    "Reply",
    "RequestBody",
    "SIGNATURE_SIZE",
    "SignedRequest",
    "WantBlobs",
    "WireError",
    "blob_id_of",
    "decode_announcement",
    "decode_body",
    "decode_manifest",
    "decode_map",
    "decode_notice",
    "decode_owner_record",
    "decode_receipt",
    "decode_reply",
    "decode_request",
    "encode_body",
    "encode_frame",
    "encode_map",
    "encode_reply",
    "parse_blob_header",
    "parse_frame_header",
    "parse_hex_id",
    "parse_peer_id",
    "peer_id_from_public",
    "peer_id_text",
    "public_of_peer_id",
    "sign_request",
    "signed_bytes",
]
