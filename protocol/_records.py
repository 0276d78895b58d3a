"""Announcements, manifests and receipts (docs/design.md, "Mesh records").

* An **announcement** is the owner's signed statement "my snapshot number ``seq`` is
  ``snapshot_id``, and ``manifest_id`` lists every blob it uses". It carries the sealed
  snapshot record and the owner's record signature, so an owner that lost its disk gets
  its snapshot list back from any holder. Peers learn nothing from it: ids are hashes of
  ciphertext and the record is sealed.
* A **manifest** is the list of every blob id one snapshot uses, in clear: a holder must
  read it to know what to fetch. Its id is BLAKE3 of its bytes like any blob.
* A **receipt** is a holder's signed statement "I hold a complete copy of owner's snapshot".
* A **notice** is the owner's signed statement about snapshots it announced: "forget
  them", "hold them until T" or "release their holds". Notices share the owner's
  sequence with its announcements (one stream per owner, pulled "since N" the same
  way), so a holder that was offline catches them up in order.

Signed structures are ``{"v": 1, "body": msgpack map, "sig": Ed25519(domain || body)}``;
the signer is named inside the body and its key is derived from that peer id.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.signing

from ._ids import ID_SIZE, BlobId, blob_id_of
from ._peer import PEER_ID_SIZE, peer_id_from_public
from ._signing import SIGNATURE_SIZE, sign, verify
from ._wire import WireError, check_version, decode_map, encode_map, get_bytes, get_int

RECORD_VERSION = 1
ANNOUNCE_DOMAIN = b"shadowvault/announce/v1\x00"
RECEIPT_DOMAIN = b"shadowvault/receipt/v1\x00"
NOTICE_DOMAIN = b"shadowvault/notice/v1\x00"

MAX_SNAPSHOT_RECORD = 64 * 1024
"""Largest sealed snapshot record an announcement may carry (bytes)."""
MAX_ANNOUNCEMENT = MAX_SNAPSHOT_RECORD + 1024
MAX_RECEIPT = 1024
MAX_MANIFEST_IDS = 1 << 20
"""Most blob ids one manifest may list (32 MiB of ids: a snapshot of ~1 TiB of 1 MiB chunks)."""
MAX_MANIFEST = MAX_MANIFEST_IDS * ID_SIZE + 1024
MAX_NOTICE_SNAPSHOTS = 1024
"""Most snapshot ids one notice names (32 KiB of ids: a notice fits wherever an
announcement does). A bigger forget is split into several notices."""
NOTICE_KINDS = ("forget", "hold", "release")


def _seal_signed(key: nacl.signing.SigningKey, domain: bytes, body: dict[str, object]) -> bytes:
    raw = encode_map(body)
    return encode_map({"v": RECORD_VERSION, "body": raw, "sig": sign(key, domain, raw)})


def _open_signed(
    raw: bytes, domain: bytes, signer_field: str, cap: int, what: str
) -> dict[str, object]:
    outer = decode_map(raw, cap)
    check_version(outer, RECORD_VERSION, what)
    body_raw = get_bytes(outer, "body", cap=cap)
    signature = get_bytes(outer, "sig", SIGNATURE_SIZE)
    body = decode_map(body_raw, cap)
    signer = get_bytes(body, signer_field, PEER_ID_SIZE)
    verify(signer, domain, body_raw, signature)
    return body


@dataclass(frozen=True, slots=True)
class Announcement:
    """An owner's signed announcement of one snapshot."""

    owner: bytes
    """Raw peer id of the owner (the signer)."""
    seq: int
    """Per-owner sequence number, from 1, one per announcement."""
    snapshot_id: BlobId
    manifest_id: BlobId
    record: bytes
    """The sealed snapshot record (its blob id is ``snapshot_id``)."""
    record_sig: bytes
    """The owner's signature of the snapshot record (the store's ``s`` record)."""
    time: int
    """Unix seconds when announced."""
    raw: bytes = b""
    """The signed bytes as sent; stored and forwarded unchanged."""

    @classmethod
    def create(
        cls,
        key: nacl.signing.SigningKey,
        *,
        seq: int,
        snapshot_id: BlobId,
        manifest_id: BlobId,
        record: bytes,
        record_sig: bytes,
        time: int,
    ) -> Announcement:
        """Sign a new announcement with the owner's identity key."""
        owner = peer_id_from_public(bytes(key.verify_key))
        body = {
            "owner": owner,
            "seq": seq,
            "snap": bytes(snapshot_id),
            "man": bytes(manifest_id),
            "rec": record,
            "rsig": record_sig,
            "t": time,
        }
        raw = _seal_signed(key, ANNOUNCE_DOMAIN, body)
        return cls(owner, seq, snapshot_id, manifest_id, record, record_sig, time, raw)


def decode_announcement(raw: bytes) -> Announcement:
    """Decode an announcement and verify the owner's signature.

    Raises:
        WireError: malformed, oversized, a bad signature, or a record that is not the
            snapshot it claims to be.
    """
    body = _open_signed(raw, ANNOUNCE_DOMAIN, "owner", MAX_ANNOUNCEMENT, "announcement")
    record = get_bytes(body, "rec", cap=MAX_SNAPSHOT_RECORD)
    snap = BlobId(get_bytes(body, "snap", ID_SIZE))
    if blob_id_of(record) != snap:
        raise WireError("announcement's snapshot record does not match its snapshot id")
    return Announcement(
        owner=get_bytes(body, "owner", PEER_ID_SIZE),
        seq=get_int(body, "seq", 1),
        snapshot_id=snap,
        manifest_id=BlobId(get_bytes(body, "man", ID_SIZE)),
        record=record,
        record_sig=get_bytes(body, "rsig", SIGNATURE_SIZE),
        time=get_int(body, "t"),
        raw=bytes(raw),
    )


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every blob id one snapshot uses (including the snapshot record itself)."""

    snapshot_id: BlobId
    blob_ids: tuple[BlobId, ...]

    def encode(self) -> bytes:
        """The manifest blob's bytes; its id is ``blob_id_of`` of them."""
        if len(self.blob_ids) > MAX_MANIFEST_IDS:
            raise ValueError(f"a manifest lists at most {MAX_MANIFEST_IDS} blob ids")
        return encode_map(
            {
                "v": RECORD_VERSION,
                "snap": bytes(self.snapshot_id),
                "ids": b"".join(self.blob_ids),
            }
        )


def decode_manifest(raw: bytes) -> Manifest:
    """Decode a manifest blob.

    Raises:
        WireError: malformed, or more than ``MAX_MANIFEST_IDS`` ids.
    """
    doc = decode_map(raw, MAX_MANIFEST)
    check_version(doc, RECORD_VERSION, "manifest")
    packed = get_bytes(doc, "ids", cap=MAX_MANIFEST_IDS * ID_SIZE)
    if len(packed) % ID_SIZE:
        raise WireError("manifest ids are not a whole number of 32-byte ids")
    ids = tuple(BlobId(packed[i : i + ID_SIZE]) for i in range(0, len(packed), ID_SIZE))
    return Manifest(BlobId(get_bytes(doc, "snap", ID_SIZE)), ids)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A holder's signed statement that it holds a complete copy of a snapshot."""

    holder: bytes
    owner: bytes
    snapshot_id: BlobId
    manifest_id: BlobId
    seq: int
    time: int
    raw: bytes = b""

    @classmethod
    def create(
        cls,
        key: nacl.signing.SigningKey,
        *,
        owner: bytes,
        snapshot_id: BlobId,
        manifest_id: BlobId,
        seq: int,
        time: int,
    ) -> Receipt:
        """Sign a receipt with the holder's identity key."""
        holder = peer_id_from_public(bytes(key.verify_key))
        body = {
            "holder": holder,
            "owner": owner,
            "snap": bytes(snapshot_id),
            "man": bytes(manifest_id),
            "seq": seq,
            "t": time,
        }
        raw = _seal_signed(key, RECEIPT_DOMAIN, body)
        return cls(holder, owner, snapshot_id, manifest_id, seq, time, raw)


def decode_receipt(raw: bytes) -> Receipt:
    """Decode a receipt and verify the holder's signature.

    Raises:
        WireError: malformed, oversized or a bad signature.
    """
    body = _open_signed(raw, RECEIPT_DOMAIN, "holder", MAX_RECEIPT, "receipt")
    return Receipt(
        holder=get_bytes(body, "holder", PEER_ID_SIZE),
        owner=get_bytes(body, "owner", PEER_ID_SIZE),
        snapshot_id=BlobId(get_bytes(body, "snap", ID_SIZE)),
        manifest_id=BlobId(get_bytes(body, "man", ID_SIZE)),
        seq=get_int(body, "seq", 1),
        time=get_int(body, "t"),
        raw=bytes(raw),
    )


@dataclass(frozen=True, slots=True)
class Notice:
    """An owner's signed forget, hold or release of some of its announced snapshots."""

    owner: bytes
    """Raw peer id of the owner (the signer)."""
    seq: int
    """Per-owner sequence number, shared with the owner's announcements."""
    kind: str
    """``forget``, ``hold`` or ``release`` (``NOTICE_KINDS``)."""
    snapshots: tuple[BlobId, ...]
    until: int
    """Unix seconds a hold lasts until (0 for forget and release)."""
    time: int
    """Unix seconds when made."""
    raw: bytes = b""

    @classmethod
    def create(
        cls,
        key: nacl.signing.SigningKey,
        *,
        seq: int,
        kind: str,
        snapshots: tuple[BlobId, ...],
        until: int = 0,
        time: int,
    ) -> Notice:
        """Sign a new notice with the owner's identity key.

        Raises:
            ValueError: an unknown kind, no snapshots or more than
                ``MAX_NOTICE_SNAPSHOTS``, or a hold without ``until``.
        """
        _check_notice(kind, len(snapshots), until, ValueError)
        owner = peer_id_from_public(bytes(key.verify_key))
        body = {
            "owner": owner,
            "seq": seq,
            "k": kind,
            "snaps": b"".join(bytes(s) for s in snapshots),
            "until": until,
            "t": time,
        }
        raw = _seal_signed(key, NOTICE_DOMAIN, body)
        return cls(owner, seq, kind, tuple(snapshots), until, time, raw)


def _check_notice(kind: str, count: int, until: int, error: type[Exception]) -> None:
    if kind not in NOTICE_KINDS:
        raise error(f"unknown notice kind {kind!r}")
    if not 1 <= count <= MAX_NOTICE_SNAPSHOTS:
        raise error(f"a notice names 1 to {MAX_NOTICE_SNAPSHOTS} snapshots, not {count}")
    if (kind == "hold") != (until > 0):
        raise error("a hold notice, and only a hold notice, has an until time")


def decode_notice(raw: bytes) -> Notice:
    """Decode a notice and verify the owner's signature.

    Raises:
        WireError: malformed, oversized, a bad signature or inconsistent fields.
    """
    body = _open_signed(raw, NOTICE_DOMAIN, "owner", MAX_ANNOUNCEMENT, "notice")
    kind = body.get("k")
    packed = get_bytes(body, "snaps", cap=MAX_NOTICE_SNAPSHOTS * ID_SIZE)
    if len(packed) % ID_SIZE:
        raise WireError("notice snapshot ids are not a whole number of 32-byte ids")
    until = get_int(body, "until")
    if not isinstance(kind, str):
        raise WireError("field 'k' must be a string")
    _check_notice(kind, len(packed) // ID_SIZE, until, WireError)
    return Notice(
        owner=get_bytes(body, "owner", PEER_ID_SIZE),
        seq=get_int(body, "seq", 1),
        kind=kind,
        snapshots=tuple(BlobId(packed[i : i + ID_SIZE]) for i in range(0, len(packed), ID_SIZE)),
        until=until,
        time=get_int(body, "t"),
        raw=bytes(raw),
    )


OwnerRecord = Announcement | Notice
"""One entry of an owner's sequence: an announcement or a notice."""


def decode_owner_record(raw: bytes) -> OwnerRecord:
    """Decode an entry of an owner's stream (announcement or notice), signature checked.

    A notice's body has a ``k`` field, an announcement's has not; each is then verified
    under its own signature domain, so one can never pass for the other.

    Raises:
        WireError: as ``decode_announcement`` / ``decode_notice``.
    """
    outer = decode_map(raw, MAX_ANNOUNCEMENT)
    body = decode_map(get_bytes(outer, "body", cap=MAX_ANNOUNCEMENT), MAX_ANNOUNCEMENT)
    if "k" in body:
        return decode_notice(raw)
    return decode_announcement(raw)
