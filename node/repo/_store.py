"""The blob store: sealed blobs in append-only packs, located through a LevelDB index.

Why two parts: LevelDB rewrites large values on every compaction (5.3x write
amplification and a fall to ~60 MB/s at 4 GiB, perf-baseline.md), so payloads go into
pack files and LevelDB keeps only small records (``_index``). This is key-value
separation, as in WiscKey or restic's packs.

Write ordering (the crash-safety invariant): a blob's bytes are appended to a pack,
the pack is ``fdatasync``ed, and only then is the index batch naming it committed. So
every indexed blob is durable. A crash can leave bytes in a pack that no index entry
names yet; on open, ``_recover`` re-indexes every whole, verified entry past the
committed length and cuts the torn tail. After each fdatasync the pack's pages are
dropped from the page cache: measured on these VMs, a growing cache halves the write
rate after 1-2 GiB (packs-field-notes.md section 1).

Ownership: one process owns a store (``OwnerLock``); inside it, writes go through
``Store.writer()`` sessions, which may overlap (a backup and a replication) and share
one pack appender.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import plyvel

from protocol import BlobId, blob_id_of

from . import _index as ix
from ._chunker import ChunkerParams
from ._drops import drop_pack, finish_pack_drops
from ._errors import BlobNotFound, CorruptBlob, FormatError, RepoError, StoreFull
from ._fsutil import fsync_dir
from ._lock import OwnerLock
from ._pack import (
    ENTRY_HEADER,
    FILE_HEADER,
    BlobKind,
    PackEntry,
    ScanStop,
    entry_header,
    file_header,
    pack_name,
    parse_entry_header,
    parse_pack_name,
    read_file_header,
    scan_pack,
)
from ._pins import PinRegistry, PinSet

STORE_FORMAT = "shadowvault-store"
STORE_VERSION = 1

MiB = 1024 * 1024
PACK_TARGET_SIZE = 128 * MiB
"""A pack is closed once it reaches this size. 64 and 128 MiB measured the same; bigger
packs mean fewer files."""
FLUSH_EVERY = 32 * MiB
"""Bytes appended between fdatasync + index commits; 16-128 MiB measured within 10 %."""


def _is_no_space(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT, from the OS or from LevelDB (which reports it as text)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, plyvel.Error) and (
        "No space left" in str(exc) or "Disk quota exceeded" in str(exc)
    )


def _leveldb_options() -> dict[str, Any]:
    # Index only: payloads live in packs, so the buffers never fill and bigger ones buy
    # nothing (packs-field-notes.md section 1). Sealed data does not compress: no snappy.
    return {
        "compression": None,
        "write_buffer_size": 4 * MiB,
        "lru_cache_size": 8 * MiB,
        "max_open_files": 64,
        "bloom_filter_bits": 10,
    }


@dataclass(frozen=True, slots=True)
class StoreMeta:
    """Facts fixed when the store was created."""

    repo_id: str
    created_ns: int
    chunker: ChunkerParams
    compression: int

    def encode(self) -> bytes:
        return bytes(
            msgpack.packb(
                {
                    "format": STORE_FORMAT,
                    "version": STORE_VERSION,
                    "repo_id": self.repo_id,
                    "created_ns": self.created_ns,
                    "chunker": [
                        self.chunker.min_size,
                        self.chunker.avg_size,
                        self.chunker.max_size,
                    ],
                    "compression": self.compression,
                }
            )
        )

    @classmethod
    def decode(cls, raw: bytes) -> StoreMeta:
        """Raises FormatError for a foreign, damaged or newer store."""
        try:
            doc = msgpack.unpackb(raw)
        except Exception as exc:
            raise FormatError("store metadata is damaged") from exc
        if not isinstance(doc, dict) or doc.get("format") != STORE_FORMAT:
            raise FormatError("not a ShadowVault store (foreign metadata)")
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise FormatError(f"store metadata is damaged: bad version field {version!r}")
        if version > STORE_VERSION:
            raise FormatError(
                f"store format version {version} is newer than this shadowvault supports "
                f"({STORE_VERSION}); upgrade shadowvault"
            )
        if version < 1:
            raise FormatError(f"store format version {version} is not supported")
        try:
            lo, avg, hi = doc["chunker"]
            return cls(
                str(doc["repo_id"]),
                int(doc["created_ns"]),
                ChunkerParams(int(lo), int(avg), int(hi)),
                int(doc["compression"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"store metadata is damaged: {exc}") from exc

    @classmethod
    def new(cls, chunker: ChunkerParams, compression: int) -> StoreMeta:
        return cls(secrets.token_hex(16), time.time_ns(), chunker, compression)


@dataclass
class RecoveryReport:
    """What ``Store.open`` repaired after a crash."""

    reindexed: int = 0
    truncated: list[tuple[int, int, str]] = field(default_factory=list)
    """(pack, offset cut at, reason) for each torn tail removed."""
    rebuilt_pack_records: list[int] = field(default_factory=list)
    """Packs whose damaged length record was rebuilt by re-scanning them."""


class Store:
    """Packs + index of one node. Use ``Store.create`` or ``Store.open``, then ``close``.

    Thread-safety: reads may run from any thread; writes go through ``writer()``.
    """

    def __init__(self, root: Path, db: plyvel.DB, lock: OwnerLock, meta: StoreMeta) -> None:
        self.root = root
        self.meta = meta
        self._db = db
        self._lock = lock
        self._packs_dir = root / "packs"
        # pack -> [fd, readers in flight, retired]: gc may delete a pack while a reader
        # holds its fd; the fd is closed when the last such reader is done.
        self._read_fds: dict[int, list[int]] = {}
        self._read_fds_lock = threading.Lock()
        self._pack_alloc_lock = threading.Lock()
        self.pins = PinRegistry()
        self._appender = _Appender(self)
        self.recovery = RecoveryReport()
        self.damaged_pack_records: list[bytes] = []
        self._closed = False
        self.durable = True
        """False only for throw-away stores (``create(..., durable=False)``)."""

    # -- life cycle -------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, meta: StoreMeta, *, durable: bool = True) -> Store:
        """Create a new, empty store at ``root`` (which must not hold one).

        Args:
            durable: False for a throw-away store (a drill's scratch store, deleted when
                done): commits skip ``fdatasync`` and synced index batches, and pack
                pages stay cached for the reads that follow. A crash may lose or tear
                what it holds, which is acceptable only because nobody keeps it.

        Raises:
            FormatError: ``root`` already holds a store.
        """
        root.mkdir(parents=True, exist_ok=True)
        if (root / "index" / "CURRENT").exists():
            raise FormatError(f"{root} already holds a store")
        (root / "packs").mkdir(exist_ok=True)
        lock = OwnerLock(root / "owner.lock")
        lock.acquire()
        try:
            db = plyvel.DB(str(root / "index"), create_if_missing=True, **_leveldb_options())
            db.put(ix.META_KEY, meta.encode(), sync=True)
            fsync_dir(root)
        except BaseException:
            lock.release()
            raise
        store = cls(root, db, lock, meta)
        store.durable = durable
        return store

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open an existing store, take ownership, and repair what a crash left.

        Raises:
            StoreLocked: another process owns it.
            FormatError: no store here, a foreign or newer one, or a damaged index.
        """
        if not (root / "index" / "CURRENT").exists():
            raise FormatError(f"no store at {root}")
        lock = OwnerLock(root / "owner.lock")
        lock.acquire()
        try:
            try:
                db = plyvel.DB(str(root / "index"), create_if_missing=False, **_leveldb_options())
            except plyvel.CorruptionError as exc:
                raise FormatError(
                    f"store index is damaged ({exc}); run `shadowvault repair index`"
                ) from exc
            except plyvel.Error as exc:
                if _is_no_space(exc):
                    raise StoreFull(
                        "disk full while opening the store; free space and retry"
                    ) from exc
                raise FormatError(f"cannot open store index: {exc}") from exc
            try:
                raw = db.get(ix.META_KEY)
                if raw is None:
                    raise FormatError("not a ShadowVault store (no metadata record)")
                store = cls(root, db, lock, StoreMeta.decode(raw))
            except BaseException:
                db.close()
                raise
        except BaseException:
            lock.release()
            raise
        try:
            store.recovery = store._recover()
        except (OSError, plyvel.Error) as exc:
            store.close()
            if _is_no_space(exc):
                raise StoreFull(
                    "disk full while recovering the store; free space and retry"
                ) from exc
            raise RepoError(f"recovering the store failed: {exc}") from exc
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Flush pending writes, close the index and release the lock (idempotent)."""
        if self._closed:
            return
        try:
            self._appender.close()
        finally:
            self._closed = True
            with self._read_fds_lock:
                for slot in self._read_fds.values():
                    os.close(slot[0])
                self._read_fds.clear()
            self._db.close()
            self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ------------------------------------------------------------------------

    def has(self, blob_id: bytes) -> bool:
        """True if the blob is stored (committed or appended in an open session)."""
        if blob_id in self._appender.pending:
            return True
        return self._db.get(ix.blob_key(blob_id)) is not None

    def location(self, blob_id: bytes) -> ix.BlobLocation:
        """Where a blob is.

        Raises:
            BlobNotFound: not in the index.
            CorruptBlob: its index record does not decode.
        """
        loc = self._appender.pending.get(blob_id)
        if loc is not None:
            return loc
        raw = self._db.get(ix.blob_key(blob_id))
        if raw is None:
            raise BlobNotFound(blob_id)
        try:
            return ix.BlobLocation.decode(raw)
        except ValueError as exc:
            raise CorruptBlob(blob_id, "its index record is damaged") from exc

    def read(self, blob_id: bytes, *, verify: bool = True) -> bytes:
        """Return a blob's sealed bytes, checked against its id unless ``verify`` is off.

        Raises:
            BlobNotFound: not in the index.
            CorruptBlob: its pack is missing or short, or the bytes do not match the id.
        """
        loc = self.location(blob_id)
        return self.read_at(blob_id, loc, verify=verify)

    def read_at(self, blob_id: bytes, loc: ix.BlobLocation, *, verify: bool = True) -> bytes:
        """Like ``read`` for a location already looked up (used by check and restore)."""
        try:
            data = self._pread(loc)
        except FileNotFoundError as exc:
            # gc may have moved the blob to a new pack and deleted the old one since the
            # caller looked it up: look again once.
            fresh = None
            with contextlib.suppress(RepoError):
                fresh = self.location(blob_id)
            if fresh is None or fresh == loc:
                raise CorruptBlob(blob_id, "its pack file is missing", loc.pack) from exc
            loc = fresh
            try:
                data = self._pread(loc)
            except FileNotFoundError as exc2:
                raise CorruptBlob(blob_id, "its pack file is missing", loc.pack) from exc2
        if len(data) != loc.stored_len:
            raise CorruptBlob(blob_id, "its pack file is truncated", loc.pack)
        if verify and blob_id_of(data) != blob_id:
            raise CorruptBlob(blob_id, "bytes do not match the blob id", loc.pack)
        return data

    def _read_slot(self, pack: int) -> list[int]:
        """The pack's shared read fd slot ``[fd, readers, closing]``, one reader more.

        Called under ``_read_fds_lock``; the caller gives the reader back after.
        """
        slot = self._read_fds.get(pack)
        if slot is None:
            fd = os.open(self._packs_dir / pack_name(pack), os.O_RDONLY)
            # Restores read a pack mostly front to back: a larger read-ahead window.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            slot = self._read_fds[pack] = [fd, 0, 0]
        slot[1] += 1
        return slot

    def prefetch(self, locations: Iterable[ix.BlobLocation]) -> None:
        """Ask the kernel to start reading these blobs now (``POSIX_FADV_WILLNEED``).

        A walk that reads small blobs one by one from a cold page cache waits for each
        read in turn (gc's mark on the 1 GiB corpus: 1,100 trees, half its time);
        announced together, the reads are queued at once and the later ``read`` calls
        find the pages. Only a hint: a pack that cannot be opened is left to the read.
        """
        by_pack: dict[int, list[ix.BlobLocation]] = {}
        for loc in locations:
            by_pack.setdefault(loc.pack, []).append(loc)
        for pack, locs in by_pack.items():
            try:
                with self._read_fds_lock:
                    slot = self._read_slot(pack)
            except OSError:
                continue
            try:
                for loc in locs:
                    os.posix_fadvise(slot[0], loc.offset, loc.stored_len, os.POSIX_FADV_WILLNEED)
            finally:
                with self._read_fds_lock:
                    slot[1] -= 1
                    if slot[2] and not slot[1]:
                        os.close(slot[0])

    def _pread(self, loc: ix.BlobLocation) -> bytes:
        with self._read_fds_lock:
            slot = self._read_slot(loc.pack)
        try:
            return os.pread(slot[0], loc.stored_len, loc.offset)
        finally:
            with self._read_fds_lock:
                slot[1] -= 1
                if slot[2] and not slot[1]:
                    os.close(slot[0])

    def entry_dedup_key(self, loc: ix.BlobLocation) -> bytes | None:
        """The dedup key in a blob's entry header (None if it has none or is unreadable)."""
        at = loc.offset - ENTRY_HEADER.size
        try:
            head = self._pread(ix.BlobLocation(loc.pack, at, ENTRY_HEADER.size, 0, loc.kind))
        except OSError:
            return None
        entry = parse_entry_header(head, at)
        return None if isinstance(entry, ScanStop) else entry.dedup_key

    def forget_pack_fd(self, pack_no: int) -> None:
        """Stop reading a pack that is being deleted (its fd closes after its readers)."""
        with self._read_fds_lock:
            slot = self._read_fds.pop(pack_no, None)
            if slot is not None:
                if slot[1]:
                    slot[2] = 1
                else:
                    os.close(slot[0])

    def lookup_dedup(self, key: bytes) -> BlobId | None:
        """The blob holding the plaintext with this dedup key, if stored."""
        hit = self._appender.pending_dedup.get(key)
        if hit is not None:
            return hit
        raw = self._db.get(ix.dedup_key(key))
        if raw is None or len(raw) != 32:
            return None
        blob_id = BlobId(raw)
        # A dedup entry is only as good as the blob it names: a blob removed by gc or
        # damaged index must lead to a fresh seal, not to a dangling reference.
        return blob_id if self.has(blob_id) else None

    def index_dedup(self, pairs: list[tuple[bytes, BlobId]]) -> None:
        """Record (dedup key, blob id) pairs for blobs stored without their key (our own
        chunks fetched back from peers), so that backups deduplicate against them."""
        self.put_records([(ix.dedup_key(key), bytes(blob_id)) for key, blob_id in pairs])

    def iter_blobs(self) -> Iterator[tuple[BlobId, ix.BlobLocation | None]]:
        """Every committed blob with its location (None where the record is damaged)."""
        for key, raw in self._db.iterator(prefix=ix.BLOB_PREFIX):
            try:
                loc: ix.BlobLocation | None = ix.BlobLocation.decode(raw)
            except ValueError:
                loc = None
            yield ix.blob_id_of_key(key), loc

    def iter_blob_ids(self, kind: BlobKind) -> Iterator[bytes]:
        """The id of every committed blob of one kind (damaged records left out).

        Reads only the kind byte of each record: a full index pass that builds every
        location (``iter_blobs``) was 40 % of gc's time on the 1 GiB corpus.
        """
        want, size = int(kind), ix.BLOB_RECORD_SIZE
        for key, raw in self._db.iterator(prefix=ix.BLOB_PREFIX):
            if raw[-1] == want and len(raw) == size:  # ix.blob_kind, inlined
                yield key[1:]

    def committed_packs(self) -> dict[int, int]:
        """Pack number -> committed length, as the index records them.

        A damaged record is left out (and listed in ``damaged_pack_records``): the pack is
        then treated as uncommitted, so recovery re-scans it and writes a fresh record.
        """
        out = {}
        damaged = []
        for key, value in self._db.iterator(prefix=ix.PACK_PREFIX):
            try:
                out[ix.pack_no_of_key(key)] = ix.decode_pack_len(value)
            except (ValueError, IndexError):
                damaged.append(key)
        self.damaged_pack_records = damaged
        return out

    def pack_files(self) -> dict[int, Path]:
        """Pack number -> path of every pack file on disk."""
        found = {}
        for entry in os.scandir(self._packs_dir):
            no = parse_pack_name(entry.name)
            if no is not None:
                found[no] = Path(entry.path)
        return found

    def pack_path(self, pack_no: int) -> Path:
        return self._packs_dir / pack_name(pack_no)

    # -- small records ------------------------------------------------------------------

    def get_record(self, key: bytes) -> bytes | None:
        """Read a small record (snapshots, files cache, ...) by its full key."""
        value: bytes | None = self._db.get(key)
        return value

    def put_records(self, items: list[tuple[bytes, bytes | None]], *, sync: bool = True) -> None:
        """Write (key, value) pairs atomically; a None value deletes the key."""
        with self._db.write_batch(sync=sync) as batch:
            for key, value in items:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)

    def iter_records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """All (key, value) pairs under ``prefix``, in key order."""
        yield from self._db.iterator(prefix=prefix)

    # -- writes ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self) -> Iterator[BlobWriter]:
        """A write session. On a clean exit everything it wrote is durable and indexed.

        Every blob the session writes or finds through ``BlobWriter.lookup_dedup`` is
        pinned (gc spares it) until the session ends (``_pins``).

        Cancellation: on an exception the session still commits the whole blobs it
        appended (they are valid; unreferenced ones are garbage for gc) and re-raises.
        """
        with self.pins.session(self._appender.position()) as pins:
            session = BlobWriter(self._appender, pins)
            try:
                yield session
            finally:
                self._appender.flush(wait=True)

    def pin_snapshot(self, pins: PinSet, snapshot_id: bytes) -> bool:
        """Pin a snapshot and all it reaches; False if it is gone (forgotten) already."""
        with self.pins.lock:
            return pins.add_root(
                snapshot_id, self._db.get(ix.SNAPSHOT_PREFIX + bytes(snapshot_id)) is not None
            )

    def create_pack(self) -> tuple[int, int]:
        """Allocate the next pack number, create the pack with its header; (number, fd).

        The fd is open for appending. The directory entry is durable on return (an index
        entry may name the pack from then on).

        Raises:
            StoreFull: no space for the new file.
        """
        with self._pack_alloc_lock:
            known = set(self.pack_files()) | set(self.committed_packs())
            pack_no = max(known, default=0) + 1
            path = self.pack_path(pack_no)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreFull(
                        "disk full while creating a pack; free space and retry"
                    ) from exc
                raise RepoError(f"cannot create pack {path.name}: {exc.strerror}") from exc
        try:
            os.write(fd, file_header(pack_no))
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull("disk full while creating a pack; free space and retry") from exc
            raise
        fsync_dir(self._packs_dir)
        return pack_no, fd

    def drop_pack(self, pack_no: int) -> int:
        """Delete a pack that holds no live blob, crash-safely (``_drops``); its size."""
        self.forget_pack_fd(pack_no)
        return drop_pack(self._packs_dir, self._db, pack_no)

    def settled_packs(self) -> tuple[dict[int, int], int]:
        """(committed pack lengths, the pack being appended to or -1), for gc.

        The appender's batch and any flush still in flight for a pack it just closed are
        committed first, under its lock: every other pack's length record is then final
        (a closed pack never grows), which gc relies on to delete or rewrite it.
        """
        with self._appender._lock:
            self._appender.flush(wait=True)
            return self.committed_packs(), self._appender._pack_no

    def pack_length(self, pack_no: int) -> int | None:
        """A pack's committed length as recorded now (None if it has no record)."""
        raw = self._db.get(ix.pack_key(pack_no))
        try:
            return None if raw is None else ix.decode_pack_len(raw)
        except ValueError:
            return None

    def write_batch(self, sync: bool = True) -> Any:
        """A raw LevelDB write batch (for gc, inside ``node.repo`` only)."""
        return self._db.write_batch(sync=sync)

    def raw_get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def raw_iter(self, prefix: bytes) -> Any:
        """A LevelDB iterator over ``prefix`` (a consistent snapshot of the index)."""
        return self._db.iterator(prefix=prefix)

    # -- recovery ---------------------------------------------------------------------------

    def _indexed_end(self, pack_no: int) -> int:
        """End of the last indexed blob in a pack (its header size if none): one index pass."""
        end = FILE_HEADER.size
        for _, loc in self.iter_blobs():
            if loc is not None and loc.pack == pack_no:
                end = max(end, loc.offset + loc.stored_len)
        return end

    def _replaces(self, entry: PackEntry, pack_no: int) -> bool:
        """True if an unindexed tail entry is a replacement whose index commit a crash
        cut off: the indexed copy of the same id no longer reads back (healing appends a
        good copy of a corrupt blob, then repoints the index; see ``BlobWriter.put``)."""
        try:
            loc = self.location(entry.blob_id)
            if loc.pack == pack_no and loc.offset == entry.offset:
                return False
            self.read_at(entry.blob_id, loc)
        except (BlobNotFound, CorruptBlob):
            return True
        return False

    def _recover(self) -> RecoveryReport:
        """Cut torn pack tails and index whole blobs that a crash left unindexed."""
        report = RecoveryReport()
        # First finish what an interrupted gc was deleting: those packs hold no live
        # blob, and re-indexing them would bring swept garbage back. Its mark set
        # (a scratch LevelDB) is of no use any more either.
        finish_pack_drops(self.root / "packs", self._db)
        shutil.rmtree(self.root / "gc-mark", ignore_errors=True)
        committed = self.committed_packs()
        for key in self.damaged_pack_records:
            report.rebuilt_pack_records.append(ix.pack_no_of_key(key))
        rebuilt = set(report.rebuilt_pack_records)
        for pack_no, path in sorted(self.pack_files().items()):
            size = path.stat().st_size
            done = committed.get(pack_no, 0)
            if pack_no in rebuilt:
                # The length record is gone: never cut below the blobs the index names.
                done = self._indexed_end(pack_no)
            if size <= done:
                if pack_no in rebuilt:  # a fresh record; if bytes were lost, check names them
                    self._db.put(ix.pack_key(pack_no), ix.encode_pack_len(done), sync=True)
                continue  # lost committed bytes are reported by `check`, never hidden
            fd = os.open(path, os.O_RDWR)
            try:
                start = done
                if done == 0:
                    if read_file_header(fd) != pack_no:
                        # Crashed while creating it: nothing in it was ever indexed.
                        os.close(fd)
                        fd = -1
                        path.unlink()
                        report.truncated.append((pack_no, 0, "pack header incomplete"))
                        continue
                    start = FILE_HEADER.size
                entries: list[PackEntry] = []
                end = start
                for item in scan_pack(fd, start, size, verify=True):
                    if isinstance(item, ScanStop):
                        report.truncated.append((pack_no, item.offset, item.reason))
                        break
                    entries.append(item)
                    end = item.offset + item.stored_len
                if end < size:
                    os.ftruncate(fd, end)
                os.fdatasync(fd)
                with self._db.write_batch(sync=True) as batch:
                    for e in entries:
                        if self._db.get(ix.blob_key(e.blob_id)) is None or (
                            self._replaces(e, pack_no)
                        ):
                            loc = ix.BlobLocation(
                                pack_no, e.offset, e.stored_len, e.plain_len, e.kind
                            )
                            batch.put(ix.blob_key(e.blob_id), loc.encode())
                            if e.dedup_key is not None:
                                batch.put(ix.dedup_key(e.dedup_key), bytes(e.blob_id))
                            report.reindexed += 1
                    batch.put(ix.pack_key(pack_no), ix.encode_pack_len(end))
            finally:
                if fd >= 0:
                    os.close(fd)
        return report


class BlobWriter:
    """The write capability of one ``Store.writer()`` session; ``put`` is thread-safe."""

    def __init__(self, appender: _Appender, pins: PinSet) -> None:
        self._appender = appender
        self.pins = pins
        self._count_lock = threading.Lock()
        self.blobs_written = 0
        self.bytes_written = 0

    def put(
        self,
        sealed: bytes | memoryview,
        kind: BlobKind,
        plain_len: int,
        dedup_key: bytes | None = None,
        blob_id: BlobId | None = None,
        replace: bool = False,
    ) -> BlobId:
        """Append a sealed blob (unless already stored) and return its id.

        Args:
            sealed: the blob's bytes as they will be stored and sent.
            kind: what it holds.
            plain_len: plaintext length in bytes (0 when unknown, for peers' blobs).
            dedup_key: the keyed hash of the plaintext, for the owner's own data.
            blob_id: the id if the caller computed it already.
            replace: append even if the id is indexed, and point the index at the new
                copy (healing: the old copy is corrupt). The caller must have checked
                the bytes against the id. The old bytes stay in their pack, unreferenced.

        Raises:
            StoreFull: the disk is full; this blob was not stored.
            RepoError: an earlier background flush failed; the session is unusable.
        """
        bid = blob_id if blob_id is not None else blob_id_of(sealed)
        # A new blob lands above this session's watermark (pinned); one already stored
        # is pinned by id inside the append, in one step with its existence check.
        if self._appender.append(bid, sealed, kind, plain_len, dedup_key, self.pins, replace):
            with self._count_lock:  # sessions may be fed from several threads
                self.blobs_written += 1
                self.bytes_written += len(sealed)
        return bid

    def flush(self) -> None:
        """Make everything appended so far durable and indexed."""
        self._appender.flush(wait=True)

    def lookup_dedup(self, key: bytes) -> BlobId | None:
        """Like ``Store.lookup_dedup``, and pins a hit for the rest of the session.

        The lookup and the pin are one step for gc (under the pin lock): a hit is never
        a blob that gc is deleting.
        """
        store = self._appender._store
        with store.pins.lock:
            hit = store.lookup_dedup(key)
            if hit is not None:
                loc = store.location(hit)
                if (loc.pack, loc.offset) < self.pins.watermark:
                    self.pins.blobs.add(bytes(hit))  # older than the session: pin by id
            return hit

    def pin_snapshot(self, snapshot_id: bytes) -> bool:
        """Pin a snapshot this session reuses (see ``Store.pin_snapshot``)."""
        return self._appender._store.pin_snapshot(self.pins, snapshot_id)


class _Appender:
    """Appends blobs to the current pack and commits them to the index in the background.

    At most one flush job runs at a time, in one background thread, while the caller
    keeps appending (the measured best, packs-field-notes.md config H).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.RLock()
        self.pending: dict[bytes, ix.BlobLocation] = {}
        self.pending_dedup: dict[bytes, BlobId] = {}
        self._fd = -1
        self._pack_no = -1
        self._offset = 0
        # (blob id, its location or None if already indexed, dedup key or None)
        self._batch_items: list[tuple[BlobId, ix.BlobLocation | None, bytes | None]] = []
        self._dirty = 0
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future[None] | None = None
        self._failed: BaseException | None = None

    def append(
        self,
        blob_id: BlobId,
        sealed: bytes | memoryview,
        kind: BlobKind,
        plain_len: int,
        dedup_key: bytes | None,
        pins: PinSet | None = None,
        replace: bool = False,
    ) -> bool:
        with self._lock:
            if self._failed is not None:
                self._raise_failed()
            # With a dedup key the caller has looked the content up already, and a fresh
            # random nonce makes an existing blob with this id impossible: skip the get.
            # A replacement is appended whatever is indexed: the index batch of its flush
            # overwrites the old location (the later put of the batch wins).
            if not replace and self._stored(blob_id, dedup_key, pins):
                if dedup_key is not None and dedup_key not in self.pending_dedup:
                    self._batch_items.append((blob_id, None, dedup_key))
                    self.pending_dedup[dedup_key] = blob_id
                return False
            size = ENTRY_HEADER.size + len(sealed)
            if self._fd < 0 or self._offset + size > PACK_TARGET_SIZE:
                self._roll()
            head = entry_header(blob_id, dedup_key, len(sealed), plain_len, kind)
            try:
                written = os.writev(self._fd, [head, sealed])
                if written != size:
                    raise OSError(errno.ENOSPC, "short write")
            except OSError as exc:
                # Undo a partial append so the pack still ends on an entry boundary.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._offset)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreFull(
                        f"disk full while writing pack {self._pack_no:08d}; "
                        "free space and run the operation again"
                    ) from exc
                raise RepoError(f"cannot write pack {self._pack_no:08d}: {exc}") from exc
            loc = ix.BlobLocation(
                self._pack_no, self._offset + ENTRY_HEADER.size, len(sealed), plain_len, kind
            )
            self.pending[blob_id] = loc
            if dedup_key is not None:
                self.pending_dedup[dedup_key] = blob_id
            self._batch_items.append((blob_id, loc, dedup_key))
            self._offset += size
            self._dirty += size
            if self._dirty >= FLUSH_EVERY:
                self.flush(wait=False)
            return True

    def _stored(self, blob_id: BlobId, dedup_key: bytes | None, pins: PinSet | None) -> bool:
        """True if the blob is stored already; then it is pinned for ``pins``, in one step
        with the check (under the pin lock, as gc deletes), since it may predate the
        session's watermark."""
        if blob_id not in self.pending and dedup_key is not None:
            return False
        with self._store.pins.lock:
            found = blob_id in self.pending or self._store._db.get(ix.blob_key(blob_id)) is not None
            if found and pins is not None:
                pins.blobs.add(bytes(blob_id))
            return found

    def position(self) -> tuple[int, int]:
        """Where the next blob will be appended: every later blob lies at or above this."""
        with self._lock:
            if self._fd >= 0:
                return self._pack_no, self._offset
            known = set(self._store.pack_files()) | set(self._store.committed_packs())
            return max(known, default=0) + 1, 0

    def _roll(self) -> None:
        """Close the current pack (flushing it) and start the next one."""
        if self._fd >= 0:
            self.flush(wait=False, close_fd=True)
        # The new pack's directory entry is durable before any index entry names it.
        self._pack_no, fd = self._store.create_pack()
        self._fd = fd
        self._offset = FILE_HEADER.size
        self._dirty = FILE_HEADER.size

    def flush(self, *, wait: bool, close_fd: bool = False) -> None:
        """Commit what was appended: fdatasync the pack, then write the index batch."""
        with self._lock:
            if self._failed is not None:
                self._raise_failed()
            if self._fd < 0:
                self._wait()
                return
            items, self._batch_items = self._batch_items, []
            fd, pack_no, length = self._fd, self._pack_no, self._offset
            self._dirty = 0
            if close_fd:
                self._fd, self._pack_no, self._offset = -1, -1, 0
            job = _FlushJob(self, fd, pack_no, length, items, close_fd)
            self._wait()  # at most one job in flight: keeps memory and lag bounded
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="sv-flush")
            self._inflight = self._pool.submit(job.run)
            if wait:
                self._wait()

    def _raise_failed(self) -> None:
        assert self._failed is not None
        if _is_no_space(self._failed):
            raise StoreFull("disk full while committing; free space and retry") from self._failed
        raise RepoError(f"store writes failed earlier: {self._failed}") from self._failed

    def _wait(self) -> None:
        if self._inflight is not None:
            future, self._inflight = self._inflight, None
            try:
                future.result()
            except BaseException as exc:
                self._failed = exc
                if _is_no_space(exc):
                    raise StoreFull("disk full while committing; free space and retry") from exc
                raise RepoError(f"committing to the store failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            try:
                if self._failed is None:
                    if self._fd >= 0:
                        self.flush(wait=True, close_fd=True)
                    self._wait()
            finally:
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                    self._pool = None


@dataclass
class _FlushJob:
    appender: _Appender
    fd: int
    pack_no: int
    length: int
    items: list[tuple[BlobId, ix.BlobLocation | None, bytes | None]]
    close_fd: bool

    def run(self) -> None:
        store = self.appender._store
        try:
            if store.durable:
                os.fdatasync(self.fd)  # the pack data is durable BEFORE the index names it
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
            with store._db.write_batch(sync=store.durable) as batch:
                for blob_id, loc, dedup in self.items:
                    if loc is not None:
                        batch.put(ix.blob_key(blob_id), loc.encode())
                    if dedup is not None:
                        batch.put(ix.dedup_key(dedup), bytes(blob_id))
                batch.put(ix.pack_key(self.pack_no), ix.encode_pack_len(self.length))
        finally:
            if self.close_fd:
                os.close(self.fd)
        # Only now may readers stop seeing these in the pending maps.
        for blob_id, loc, dedup in self.items:
            # A replacement appended since (healing) stays pending until its own commit.
            if loc is not None and self.appender.pending.get(blob_id) == loc:
                self.appender.pending.pop(blob_id, None)
            if dedup is not None:
                self.appender.pending_dedup.pop(dedup, None)
