"""Snapshot records: sealed with the metadata key, signed with the node's identity.

A record is a msgpack map sealed into a blob of kind SNAPSHOT; the snapshot id is that
blob's id. The signature covers ``SIGN_DOMAIN || snapshot id``, so a peer holding only
the sealed blob can verify who made it (not what is inside). The index keeps
``s + id -> msgpack {"sig": 64 bytes, "pub": 32 bytes, "t": time_ns}``; being blobs in
packs, records also survive an index rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import nacl.exceptions
import nacl.signing

from protocol import BlobId

from . import _index as ix
from ._errors import FormatError, RepoError
from ._holds import check_not_held
from ._pack import BlobKind
from ._repository import Repository
from ._seal import Sealer
from ._store import BlobWriter

SIGN_DOMAIN = b"shadowvault/snapshot/v1\x00"
RECORD_VERSION = 1


@dataclass(slots=True)
class Snapshot:
    """What one backup recorded."""

    time_ns: int
    host: str
    paths: list[str]
    tree: BlobId
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    id: BlobId | None = None
    """Set once saved (or loaded)."""

    def encode(self) -> bytes:
        return bytes(
            msgpack.packb(
                {
                    "v": RECORD_VERSION,
                    "time_ns": self.time_ns,
                    "host": self.host,
                    "paths": self.paths,
                    "tags": self.tags,
                    "parent": self.parent,
                    "tree": bytes(self.tree),
                    "summary": self.summary,
                }
            )
        )

    @classmethod
    def decode(cls, data: bytes | memoryview, snapshot_id: BlobId) -> Snapshot:
        """Raises FormatError if the record is malformed."""
        try:
            doc = msgpack.unpackb(data)
            if doc.get("v") != RECORD_VERSION:
                raise FormatError(f"snapshot record version {doc.get('v')} is not supported")
            return cls(
                time_ns=int(doc["time_ns"]),
                host=str(doc["host"]),
                paths=[str(p) for p in doc["paths"]],
                tree=BlobId(doc["tree"]),
                tags=[str(t) for t in doc["tags"]],
                parent=doc.get("parent"),
                summary=dict(doc.get("summary") or {}),
                id=snapshot_id,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FormatError(f"snapshot {snapshot_id.short} record is damaged") from exc

    @property
    def short_id(self) -> str:
        return self.id.short if self.id else "?"


def save_snapshot(repo: Repository, writer: BlobWriter, snap: Snapshot) -> BlobId:
    """Seal, store, sign and index a snapshot record; returns its id.

    The caller must have flushed the writer first, so that every blob the snapshot names
    is durable before the record that names them (the record is written last).
    """
    data = snap.encode()
    sealed = Sealer.for_thread(0).seal(data, repo.keys.metadata)
    snap_id = writer.put(sealed, BlobKind.SNAPSHOT, len(data))
    writer.flush()
    signature = repo.identity.sign(SIGN_DOMAIN + bytes(snap_id)).signature
    meta = msgpack.packb(
        {"sig": bytes(signature), "pub": bytes(repo.identity.verify_key), "t": snap.time_ns}
    )
    repo.store.put_records([(ix.SNAPSHOT_PREFIX + bytes(snap_id), bytes(meta))])
    snap.id = snap_id
    return snap_id


def verify_signature(snap_id: bytes, meta: dict[str, Any], expected_pub: bytes) -> bool:
    """True if ``meta`` holds a valid signature of ``snap_id`` by ``expected_pub``."""
    try:
        if meta.get("pub") != expected_pub:
            return False
        nacl.signing.VerifyKey(expected_pub).verify(SIGN_DOMAIN + snap_id, meta["sig"])
        return True
    except (nacl.exceptions.BadSignatureError, KeyError, TypeError, ValueError):
        return False


def load_snapshot(repo: Repository, snap_id: BlobId) -> Snapshot:
    """Open one snapshot record.

    Raises:
        BlobNotFound, CorruptBlob, FormatError
    """
    return Snapshot.decode(repo.load(snap_id), snap_id)


def list_snapshots(repo: Repository) -> list[Snapshot]:
    """All snapshots whose records open and whose signatures are ours, oldest first.

    Raises:
        RepoError: a record is damaged or its signature fails (never silently skipped).
    """
    pub = bytes(repo.identity.verify_key)
    out = []
    for key, raw in repo.store.iter_records(ix.SNAPSHOT_PREFIX):
        snap_id = BlobId(key[1:])
        try:
            meta = msgpack.unpackb(raw)
        except Exception as exc:
            raise FormatError(f"snapshot {snap_id.short} index record is damaged") from exc
        if not verify_signature(bytes(snap_id), meta, pub):
            raise RepoError(f"snapshot {snap_id.short} has no valid signature by this node")
        out.append(load_snapshot(repo, snap_id))
    out.sort(key=lambda s: (s.time_ns, bytes(s.id or b"")))
    return out


def resolve_snapshot(repo: Repository, ref: str, snaps: list[Snapshot] | None = None) -> Snapshot:
    """Find a snapshot by full id, unique prefix of 8+ hex digits, or ``latest``.

    Raises:
        RepoError: unknown, ambiguous, or a prefix too short.
    """
    snaps = list_snapshots(repo) if snaps is None else snaps
    if ref == "latest":
        if not snaps:
            raise RepoError("no snapshots yet")
        return snaps[-1]
    ref = ref.lower()
    if len(ref) < 8 or any(c not in "0123456789abcdef" for c in ref):
        raise RepoError(f"snapshot reference {ref!r}: use `latest`, or 8 or more hex digits")
    hits = [s for s in snaps if s.id is not None and s.id.hex().startswith(ref)]
    if not hits:
        raise RepoError(f"no snapshot matches {ref!r}")
    if len(hits) > 1:
        raise RepoError(
            f"snapshot prefix {ref!r} is ambiguous: " + ", ".join(s.short_id for s in hits[:5])
        )
    return hits[0]


def resolve_snapshot_id(repo: Repository, ref: str) -> tuple[BlobId, int]:
    """``resolve_snapshot`` from the snapshot index alone: no blob is read.

    For a drill from peers, which must not lean on the local copy of any blob (the
    snapshot record included): the index record holds the id, our signature over it and
    the snapshot time. Records without a valid signature by this node are ignored.

    Returns:
        (snapshot id, snapshot time in Unix ns).

    Raises:
        RepoError: unknown, ambiguous, a prefix too short, or no snapshots.
    """
    pub = bytes(repo.identity.verify_key)
    found: list[tuple[int, BlobId]] = []
    for key, raw in repo.store.iter_records(ix.SNAPSHOT_PREFIX):
        snap_id = BlobId(key[1:])
        try:
            meta = msgpack.unpackb(raw)
        except (ValueError, TypeError):  # damaged: cannot be shown ours (check reports it)
            continue
        if isinstance(meta, dict) and verify_signature(bytes(snap_id), meta, pub):
            t = meta.get("t")
            found.append((t if isinstance(t, int) else 0, snap_id))
    found.sort(key=lambda item: (item[0], bytes(item[1])))
    if ref == "latest":
        if not found:
            raise RepoError("no snapshots yet")
        time_ns, snap_id = found[-1]
        return snap_id, time_ns
    ref = ref.lower()
    if len(ref) < 8 or any(c not in "0123456789abcdef" for c in ref):
        raise RepoError(f"snapshot reference {ref!r}: use `latest`, or 8 or more hex digits")
    hits = [(s, t) for t, s in found if s.hex().startswith(ref)]
    if not hits:
        raise RepoError(f"no snapshot matches {ref!r}")
    if len(hits) > 1:
        raise RepoError(
            f"snapshot prefix {ref!r} is ambiguous: " + ", ".join(s.short for s, _ in hits[:5])
        )
    return hits[0]


def delete_snapshot_record(repo: Repository, snap_id: BlobId) -> None:
    """Remove a snapshot from the index (its blobs become garbage for gc).

    Raises:
        SnapshotHeld: an active hold protects it (checked here, so no caller can skip it).
    """
    with repo.store.pins.lock:  # one step with respect to set_hold
        check_not_held(repo.store, snap_id)
        repo.store.put_records([(ix.SNAPSHOT_PREFIX + bytes(snap_id), None)])
