"""Putting an owner's snapshot records back from its own announcements (recovery).

A node that lost its disk, restarted with the same identity and master secret (the
recovery kit), pulls its own announcements from the peers that store for it. Each one
carries the sealed snapshot record and the record's signature, which is all the store's
snapshot index needs: the record goes back as a SNAPSHOT blob and the signed index
record is rewritten in the store's own format (docs/design.md sections 4 and 6). Trees
and data are fetched afterwards, on demand, with ``Mesh.fetch_blobs``.
"""

from __future__ import annotations

import msgpack
import nacl.exceptions
import nacl.signing

from node.repo import BlobKind, CorruptBlob, RepoError, Repository, Sealer, Snapshot
from protocol import Announcement, BlobId

# The store's snapshot index: "s" + snapshot id -> msgpack {sig, pub, t}, where sig is
# Ed25519(identity, SNAPSHOT_SIGN_DOMAIN || snapshot id) (docs/design.md section 6).
SNAPSHOT_INDEX_PREFIX = b"s"
SNAPSHOT_SIGN_DOMAIN = b"shadowvault/snapshot/v1\x00"


def restore_snapshot_record(repo: Repository, ann: Announcement) -> BlobId | None:
    """Store one of our snapshot records from our announcement (blocking).

    Returns the snapshot id if it was restored, None if the store already had it.

    Raises:
        RepoError: the record's signature is not by this node's identity, or the record
            does not open with this node's metadata key (a different master secret).
    """
    snap_id = ann.snapshot_id
    if repo.store.get_record(SNAPSHOT_INDEX_PREFIX + bytes(snap_id)) is not None:
        return None
    public = bytes(repo.identity.verify_key)
    try:
        nacl.signing.VerifyKey(public).verify(SNAPSHOT_SIGN_DOMAIN + bytes(snap_id), ann.record_sig)
    except nacl.exceptions.BadSignatureError as exc:
        raise RepoError(f"snapshot {snap_id.short} was not signed by this node") from exc
    try:
        plaintext = Sealer.for_thread(0).open(snap_id, ann.record, repo.keys.metadata)
    except CorruptBlob as exc:
        raise RepoError(
            f"snapshot {snap_id.short} does not open with this node's keys: {exc}"
        ) from exc
    snap = Snapshot.decode(plaintext, snap_id)
    with repo.store.writer() as writer:
        writer.put(ann.record, BlobKind.SNAPSHOT, len(plaintext), blob_id=snap_id)
    meta = msgpack.packb({"sig": ann.record_sig, "pub": public, "t": snap.time_ns})
    repo.store.put_records([(SNAPSHOT_INDEX_PREFIX + bytes(snap_id), bytes(meta))])
    return snap_id
