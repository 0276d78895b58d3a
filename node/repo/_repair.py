"""Rebuilding the index from the packs (`shadowvault repair index`).

Packs are self-describing (every entry carries its id, kind and dedup key, and its bytes
hash to its id), and snapshot records are blobs too, so every index record but the files
cache can be rebuilt from them. Repair first lets LevelDB salvage what it can
(``plyvel.repair_db``), then re-scans every pack, rewrites every blob, dedup and pack
record, drops records that point at nothing, and re-signs snapshot records whose
signature record was lost (only blobs that open with this node's metadata key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import msgpack
import nacl.signing
import plyvel

from protocol import BlobId

from . import _index as ix
from ._drops import finish_pack_drops
from ._errors import CorruptBlob, FormatError, HomeError
from ._home import HomePaths
from ._identity import read_identity
from ._keys import derive_subkeys
from ._lock import OwnerLock
from ._pack import FILE_HEADER, BlobKind, ScanStop, parse_pack_name, read_file_header, scan_pack
from ._repository import unlock_master
from ._seal import Sealer
from ._snapshot import SIGN_DOMAIN
from ._store import StoreMeta, _leveldb_options


@dataclass
class RepairReport:
    """What a repair found and did."""

    packs: int = 0
    blobs: int = 0
    stale_records_removed: int = 0
    snapshots_resigned: int = 0
    damaged_tails: int = 0


def repair_index(home: HomePaths, passphrase: str) -> RepairReport:
    """Rebuild the index of a home's store from its packs.

    Raises:
        HomeError, WrongPassphrase: as for opening.
        StoreLocked: the store is in use.
        FormatError: the store metadata record cannot be recovered.
    """
    keys = derive_subkeys(unlock_master(home, passphrase))
    identity = read_identity(home.identity_key)
    root = home.store
    if not (root / "packs").is_dir():
        raise HomeError(f"no store at {root}")
    lock = OwnerLock(root / "owner.lock")
    lock.acquire()
    try:
        index = str(root / "index")
        plyvel.repair_db(index)
        db = plyvel.DB(index, create_if_missing=False, **_leveldb_options())
        try:
            raw = db.get(ix.META_KEY)
            if raw is None:
                raise FormatError("the store metadata record is lost; the store cannot be repaired")
            StoreMeta.decode(raw)
            # A pack gc was deleting holds no live blob: finish, never re-adopt it.
            finish_pack_drops(root / "packs", db)
            return _rebuild(root, db, keys.metadata, identity)
        finally:
            db.close()
    finally:
        lock.release()


def _rebuild(
    root: os.PathLike[str], db: plyvel.DB, meta_key: bytes, identity: nacl.signing.SigningKey
) -> RepairReport:
    report = RepairReport()
    packs_dir = os.path.join(root, "packs")
    found: set[bytes] = set()
    snapshots: list[BlobId] = []
    for name in sorted(os.listdir(packs_dir)):
        pack_no = parse_pack_name(name)
        if pack_no is None:
            continue
        report.packs += 1
        fd = os.open(os.path.join(packs_dir, name), os.O_RDONLY)
        try:
            if read_file_header(fd) != pack_no:
                report.damaged_tails += 1
                continue
            size = os.fstat(fd).st_size
            end = FILE_HEADER.size
            with db.write_batch(sync=True) as batch:
                for item in scan_pack(fd, FILE_HEADER.size, size, verify=True):
                    if isinstance(item, ScanStop):
                        report.damaged_tails += 1
                        break
                    loc = ix.BlobLocation(
                        pack_no, item.offset, item.stored_len, item.plain_len, item.kind
                    )
                    batch.put(ix.blob_key(item.blob_id), loc.encode())
                    if item.dedup_key is not None:
                        batch.put(ix.dedup_key(item.dedup_key), bytes(item.blob_id))
                    if item.kind is BlobKind.SNAPSHOT:
                        snapshots.append(item.blob_id)
                    found.add(bytes(item.blob_id))
                    report.blobs += 1
                    end = item.offset + item.stored_len
                batch.put(ix.pack_key(pack_no), ix.encode_pack_len(end))
        finally:
            os.close(fd)
    with db.write_batch(sync=True) as batch:
        for key, _ in db.iterator(prefix=ix.BLOB_PREFIX):
            if key[1:] not in found:
                batch.delete(key)
                report.stale_records_removed += 1
    sealer = Sealer(0)
    pub = bytes(identity.verify_key)
    for snap_id in snapshots:
        if db.get(ix.SNAPSHOT_PREFIX + bytes(snap_id)) is not None:
            continue
        loc = ix.BlobLocation.decode(db.get(ix.blob_key(snap_id)))
        with open(os.path.join(packs_dir, f"{loc.pack:08d}.pack"), "rb") as f:
            f.seek(loc.offset)
            sealed = f.read(loc.stored_len)
        try:
            record = msgpack.unpackb(sealer.open(snap_id, sealed, meta_key))
        except (CorruptBlob, ValueError):
            continue  # not ours (or damaged): never sign what we cannot read
        sig = identity.sign(SIGN_DOMAIN + bytes(snap_id)).signature
        db.put(
            ix.SNAPSHOT_PREFIX + bytes(snap_id),
            msgpack.packb({"sig": bytes(sig), "pub": pub, "t": int(record.get("time_ns", 0))}),
            sync=True,
        )
        report.snapshots_resigned += 1
    return report
