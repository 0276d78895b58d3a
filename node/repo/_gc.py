"""Garbage collection: mark from every kept snapshot, sweep the rest, rewrite sparse packs.

Mark. The roots are every snapshot record in the index, the snapshots pinned by
operations in flight (a backup's parent), and ``extra_roots`` (the mesh passes the
blobs of the owners this node stores for: their manifests and FOREIGN blobs). Every
blob they reach goes into the mark set (``_marks``): a Python set up to 65 536 ids,
then a temporary LevelDB beside the store (``gc-mark/``), so memory stays flat in the
number of blobs, and LevelDB keeps the spilled keys sorted, which the sweep uses. A
tree already marked is not read again (subtrees shared between snapshots are walked
once). Trees are read breadth first, 256 at a time, each batch announced to the kernel
first (``Store.prefetch``): from a cold page cache one read after another was half of
gc's time on the 1 GiB corpus. A tree that cannot be read stops gc before it deletes
anything: what that tree references is unknown, so nothing may go.

Sweep. The blob index is read in id order and each record asked of the mark set (a set
look-up, or a merge with the spilled keys: no random look-ups). Unmarked blobs
still pinned by a write session (``_pins``), or in a pack newer than ``grace`` or
created since gc started, are spared; the rest leave the index in batches, each
committed under the pin lock after checking the pins. Their dedup records are deleted
when compaction drops their entries.
A swept blob's bytes stay in its pack inside the pack's committed length, where
recovery never looks, so it cannot come back on the next open.

Compact. A pack with no live blob is deleted (only its entry headers are read, for the
dedup records that go with it); one whose live share is below ``rewrite_below`` has its
live entries copied as they are (never re-sealed) into a new pack (fdatasync, then one
index batch moves them), and only then is the old pack deleted (``_drops``: an intent
record first, so a crash cannot bring its garbage back). Packs are done one at a time,
so the extra disk needed is at most one pack's live bytes. The pack the appender is
writing into is never rewritten.

A gc killed at any point leaves a valid store: every index change is one synced batch
that names only durable bytes, in an order where each live blob is indexed somewhere at
every moment.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol import BlobId, blob_id_of

from . import _index as ix
from . import _store
from ._errors import RepoError
from ._marks import MarkSet, Probe
from ._pack import ENTRY_HEADER, FILE_HEADER, ScanStop, scan_pack_entries
from ._repository import Repository
from ._snapshot import load_snapshot
from ._store import Store
from ._tree import DIR, FILE
from ._walk import load_tree

MARK_DIR = "gc-mark"
DEFAULT_REWRITE_BELOW = 0.5
"""Rewrite a pack when less than half of its bytes are live: each rewrite then frees at
least as much as it copies."""
_SWEEP_BATCH = 4_096
# trees whose reads are announced together; enough to keep the disk's queue full
_PREFETCH = 256
_MOVE_BATCH = 16_384
"""Blobs copied between two fdatasync + index commits during compaction."""
_IOV_MAX = 512
_IOV_BYTES = 8 << 20
"""Copied entries are written out once this many (or these many bytes) are queued."""
_PLACE = struct.Struct("<IQ")  # pack, offset: the leading fields of a blob record

_running = threading.Lock()  # one gc per process (and one process owns the store)


class GcError(RepoError):
    """gc stopped before deleting anything (unreadable snapshot or tree, gc running)."""


@dataclass
class GcReport:
    """What a gc found and did. Byte counts include the 80-byte entry headers."""

    dry_run: bool = False
    snapshots: int = 0
    pinned_snapshots: int = 0
    extra_roots: int = 0
    blobs_total: int = 0
    blobs_live: int = 0
    blobs_removed: int = 0
    bytes_removed: int = 0
    """Stored bytes of the blobs swept from the index."""
    marks_spilled: int = 0
    """Times the mark set outgrew memory and moved to disk (0: it fitted)."""
    spared_pinned: int = 0
    spared_grace: int = 0
    packs_total: int = 0
    packs_deleted: int = 0
    """Packs deleted, rewritten ones included."""
    packs_rewritten: int = 0
    bytes_copied: int = 0
    bytes_freed: int = 0
    """Disk space given back: deleted packs minus the bytes copied into new ones."""
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PhaseHook = Callable[[str], None]


def collect_garbage(
    repo: Repository,
    *,
    extra_roots: Iterable[bytes] = (),
    grace_s: float = 0.0,
    dry_run: bool = False,
    rewrite_below: float = DEFAULT_REWRITE_BELOW,
    on_phase: PhaseHook | None = None,
) -> GcReport:
    """Remove every blob no kept snapshot, pin or extra root needs; see the module doc.

    Args:
        repo: an open repository; backups and replication may run at the same time.
        extra_roots: blob ids to keep besides what own snapshots reach (foreign
            owners' manifests and blobs, fed by the mesh); iterated once.
        grace_s: also spare blobs in packs written within this many seconds.
        dry_run: count what would go, change nothing.
        rewrite_below: rewrite packs whose live share is below this (0 disables).
        on_phase: called with "marked", "swept", "compacted" (tests, progress).

    Returns:
        The report.

    Raises:
        GcError: another gc runs, or a kept snapshot or tree cannot be read (nothing
            was deleted).
        RepoError, StoreFull: the store failed; what was done so far is consistent.
    """
    if not _running.acquire(blocking=False):
        raise GcError("a gc is already running on this store")
    started = time.monotonic()
    report = GcReport(dry_run=dry_run)
    store = repo.store
    try:
        with store.pins.gc_window():
            packs_at_start, open_pack = store.settled_packs()
            report.packs_total = len(packs_at_start)
            spare_packs = {open_pack} if grace_s > 0 else set()
            if grace_s > 0:
                cut = time.time() - grace_s
                for no, path in store.pack_files().items():
                    try:
                        if path.stat().st_mtime >= cut:
                            spare_packs.add(no)
                    except FileNotFoundError:
                        continue
            with MarkSet(store.root / MARK_DIR) as marks:
                with store.pins.lock:  # the snapshot list and the root pins at one moment
                    snaps = [
                        BlobId(k[1:])
                        for k, _ in store.iter_records(ix.SNAPSHOT_PREFIX)
                        if len(k) == 33
                    ]
                    pinned = [BlobId(r) for r in store.pins.roots()]
                report.snapshots = len(snaps)
                report.pinned_snapshots = len(pinned)
                _mark(repo, marks, snaps + pinned, extra_roots, report)
                report.marks_spilled = marks.spills
                if on_phase:
                    on_phase("marked")
                live, damaged = _sweep(
                    store, marks.sorted_probe(), packs_at_start, spare_packs, report, dry_run
                )
                if on_phase:
                    on_phase("swept")
            if dry_run:
                _estimate(packs_at_start, live, open_pack, rewrite_below, report)
            else:
                _compact(
                    store, packs_at_start, live, open_pack, rewrite_below, report, damaged == 0
                )
                if on_phase:
                    on_phase("compacted")
        report.duration_s = round(time.monotonic() - started, 3)
        if not dry_run:
            # Not synced on its own: a report, made durable by the next synced write
            # (the audit entry run_gc appends right after).
            store.put_records(
                [(ix.GC_LAST_KEY, bytes(msgpack.packb(report.as_dict())))], sync=False
            )
        return report
    finally:
        _running.release()


def _mark(
    repo: Repository,
    marks: MarkSet,
    snapshots: list[BlobId],
    extra_roots: Iterable[bytes],
    report: GcReport,
) -> None:
    for blob_id in extra_roots:
        marks.add(blob_id)
        report.extra_roots += 1
    for snap_id in snapshots:
        if marks.seen(snap_id):
            continue
        marks.add(snap_id)
        try:
            snap = load_snapshot(repo, snap_id)
        except RepoError as exc:
            raise GcError(
                f"snapshot {snap_id.short} cannot be read ({exc}); gc deleted nothing. "
                "Run `shadowvault check` and repair the store first"
            ) from exc
        # Breadth first, _PREFETCH trees at a time: their locations are looked up and
        # announced to the kernel together (``Store.prefetch``), so that from a cold page
        # cache the disk serves them in parallel instead of one read after another.
        queue = collections.deque([snap.tree])
        while queue:
            batch: list[tuple[BlobId, ix.BlobLocation | None]] = []
            while queue and len(batch) < _PREFETCH:
                tree_id = queue.popleft()
                if marks.seen(tree_id):
                    continue
                marks.add(tree_id)
                try:
                    loc: ix.BlobLocation | None = repo.store.location(tree_id)
                except RepoError:
                    loc = None  # the read below raises it again, with the snapshot named
                batch.append((tree_id, loc))
            repo.store.prefetch(loc for _, loc in batch if loc is not None)
            for tree_id, loc in batch:
                try:
                    chunks, subtrees = _tree_refs(repo, tree_id, loc)
                except RepoError as exc:
                    raise GcError(
                        f"tree {tree_id.short} of snapshot {snap_id.short} cannot be read "
                        f"({exc}); gc deleted nothing. Run `shadowvault check` and repair "
                        "the store first"
                    ) from exc
                marks.update(chunks)
                queue.extend(subtrees)


def _tree_refs(
    repo: Repository, tree_id: BlobId, loc: ix.BlobLocation | None = None
) -> tuple[list[bytes], list[BlobId]]:
    """The chunk and subtree ids a tree names.

    Only the ids are read (the strict decoder, which builds every entry and checks its
    name, was two thirds of gc's time); every id in any entry counts, a superset of what
    a walk follows, which can only spare more. A tree the fast path cannot read goes
    through ``load_tree``, whose error names the problem.
    """
    plain = repo.load(tree_id, loc)
    try:
        doc = msgpack.unpackb(plain, raw=False, strict_map_key=False)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise ValueError("not a version 1 tree")
        chunks: list[bytes] = []
        subtrees: list[BlobId] = []
        for entry in doc["e"]:
            listed = entry.get("c")
            if listed:
                chunks.extend(listed)
            sub = entry.get("sub")
            if sub is not None:
                subtrees.append(BlobId(sub))
        if any(type(c) is not bytes or len(c) != 32 for c in chunks):
            raise ValueError("a chunk id is not 32 bytes")
        return chunks, subtrees
    except Exception:  # anything malformed: let the strict decoder say what
        nodes = load_tree(repo, tree_id)  # raises RepoError with the exact problem
        return (
            [c for n in nodes if n.type == FILE for c in n.chunks],
            [n.subtree for n in nodes if n.type == DIR and n.subtree is not None],
        )


def _sweep(
    store: Store,
    marked: Probe,
    packs_at_start: dict[int, int],
    spare_packs: set[int],
    report: GcReport,
    dry_run: bool,
) -> tuple[dict[int, int], int]:
    """Ask the mark set about every index record, in id order.

    Returns live bytes per pack and the number of damaged records (kept: they may place
    a live blob in any pack).
    """
    live: dict[int, int] = {}
    batch: list[tuple[bytes, int, int, int]] = []  # (blob id, pack, offset, size)
    header = ENTRY_HEADER.size
    total = kept = spared = damaged = 0
    # ix.blob_place inlined: this loop runs once per blob in the store.
    size, kinds, unpack = ix.BLOB_RECORD_SIZE, ix.BLOB_KINDS, ix.BLOB_PLACE.unpack_from
    for key, raw in store.raw_iter(ix.BLOB_PREFIX):
        total += 1
        if len(raw) != size or raw[-1] not in kinds:
            kept += 1  # damaged record: never delete what we cannot place
            damaged += 1
            continue
        pack, offset, stored_len = unpack(raw)
        blob_id = key[1:]
        if marked(blob_id):
            live[pack] = live.get(pack, 0) + stored_len + header
            kept += 1
            continue
        if pack in spare_packs or pack not in packs_at_start:
            live[pack] = live.get(pack, 0) + stored_len + header
            kept += 1
            spared += 1
            continue
        batch.append((blob_id, pack, offset, stored_len + header))
        if len(batch) >= _SWEEP_BATCH:
            _delete(store, batch, live, report, dry_run)
            batch = []
    _delete(store, batch, live, report, dry_run)
    report.blobs_total += total
    report.blobs_live += kept
    report.spared_grace += spared
    return live, damaged


def _delete(
    store: Store,
    batch: list[tuple[bytes, int, int, int]],
    live: dict[int, int],
    report: GcReport,
    dry_run: bool,
) -> None:
    if not batch:
        return
    # Dedup records are not touched here: reading each garbage blob's entry header for
    # its dedup key was a third of gc's time. A dedup record naming a blob that is gone
    # is ignored by every look-up, and compaction deletes the records of the entries it
    # drops (it reads those headers anyway).
    with store.pins.lock, store.write_batch(sync=True) as wb:
        for blob_id, pack, offset, size in batch:
            if store.pins.is_pinned(blob_id, (pack, offset)):
                live[pack] = live.get(pack, 0) + size
                report.blobs_live += 1
                report.spared_pinned += 1
                continue
            report.blobs_removed += 1
            report.bytes_removed += size
            if not dry_run:
                wb.delete(ix.BLOB_PREFIX + blob_id)


def _estimate(
    packs_at_start: dict[int, int],
    live: dict[int, int],
    open_pack: int,
    rewrite_below: float,
    report: GcReport,
) -> None:
    for no, length in packs_at_start.items():
        if no == open_pack:
            continue
        body = max(length - FILE_HEADER.size, 0)
        share = live.get(no, 0) / body if body else 0.0
        if live.get(no, 0) == 0:
            report.packs_deleted += 1
            report.bytes_freed += length
        elif share < rewrite_below:
            report.packs_deleted += 1
            report.packs_rewritten += 1
            report.bytes_copied += live[no]
            report.bytes_freed += length - live[no]


class _PackOut:
    """The pack(s) gc copies live entries into; committed as it goes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._fd = -1
        self.pack_no = -1
        self._offset = 0
        self._dirty: list[tuple[int, int, int, bool]] = []  # (fd, pack, length, close)
        self._iov: list[memoryview] = []  # entries not written yet (one writev)
        self._iov_bytes = 0
        self.created: list[int] = []

    def append(self, entry: memoryview) -> tuple[int, int]:
        """Queue one entry (header + sealed blob, as read); returns (pack, offset of the
        blob). Entries are written in batches: contiguous live entries cost one syscall."""
        size = len(entry)
        if self._fd < 0 or self._offset + size > _store.PACK_TARGET_SIZE:
            self._write()
            if self._fd >= 0:
                self._dirty.append((self._fd, self.pack_no, self._offset, True))
            self.pack_no, self._fd = self._store.create_pack()
            self.created.append(self.pack_no)
            self._offset = FILE_HEADER.size
        self._iov.append(entry)
        self._iov_bytes += size
        at = self._offset + ENTRY_HEADER.size
        self._offset += size
        if len(self._iov) >= _IOV_MAX or self._iov_bytes >= _IOV_BYTES:
            self._write()
        return self.pack_no, at

    def _write(self) -> None:
        if not self._iov:
            return
        written = os.writev(self._fd, self._iov)
        if written != self._iov_bytes:
            raise RepoError(f"short write to pack {self.pack_no:08d}")
        self._iov = []
        self._iov_bytes = 0

    def commit(
        self,
        moves: list[tuple[bytes, bytes]],
        dead_dedup: list[bytes] = (),  # type: ignore[assignment]
    ) -> None:
        """Write and fdatasync what was queued, then put the moved index records (full
        keys and values) and delete the dedup records of dropped entries, in one batch."""
        self._write()
        dirty = [*self._dirty]
        if self._fd >= 0:
            dirty.append((self._fd, self.pack_no, self._offset, False))
        for fd, _, _, _ in dirty:
            os.fdatasync(fd)  # the copies are durable BEFORE the index names them
        with self._store.write_batch(sync=True) as wb:
            for key, value in moves:
                wb.put(key, value)
            for key in dead_dedup:
                wb.delete(ix.dedup_key(key))
            for _, pack_no, length, _ in dirty:
                wb.put(ix.pack_key(pack_no), ix.encode_pack_len(length))
        for fd, _, _, close in self._dirty:
            if close:
                os.close(fd)
        self._dirty = []

    def close(self) -> None:
        """Commit the length of what was written (no uncommitted tail that recovery could
        re-index later), then close."""
        try:
            if self._fd >= 0 or self._dirty:
                self.commit([])
        finally:
            for fd, _, _, _ in self._dirty:
                os.close(fd)
            self._dirty = []
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _compact(
    store: Store,
    packs_at_start: dict[int, int],
    live: dict[int, int],
    open_pack: int,
    rewrite_below: float,
    report: GcReport,
    index_whole: bool,
) -> None:
    """Delete dead packs, rewrite sparse ones. ``index_whole``: the sweep found no damaged
    record, so a pack it left without a live blob has none (see ``_rewrite``)."""
    out = _PackOut(store)
    try:
        for no, length in sorted(packs_at_start.items()):
            if no == open_pack:
                continue
            body = max(length - FILE_HEADER.size, 0)
            kept = live.get(no, 0)
            if kept and (not body or kept / body >= rewrite_below):
                continue
            if store.pack_length(no) != length:
                continue  # changed since gc started (never expected): leave it alone
            copied = None if kept else _rewrite(store, no, length, out, dead=index_whole)
            if copied is None:
                copied = _rewrite(store, no, length, out, dead=False)
            if copied is None:
                continue  # damaged: left for check and repair to report
            report.bytes_copied += copied
            if kept or copied:
                report.packs_rewritten += 1
            report.packs_deleted += 1
            report.bytes_freed += store.drop_pack(no)
    finally:
        out.close()
    report.bytes_freed -= report.bytes_copied


def _rewrite(store: Store, pack_no: int, length: int, out: _PackOut, *, dead: bool) -> int | None:
    """Copy the entries of a pack that the index still places there; bytes copied.

    Entries are copied as they are on disk (``scan_pack_entries``), each checked against
    its id first, after looking its index record up. With ``dead`` only the entry
    headers are read, for the dedup records that go with the pack, and no blob record is
    looked up: the sweep found none placing a blob in this pack and no damaged one, and
    no record can come to name a settled pack afterwards (the appender writes only to
    its open pack, gc moves blobs only into packs it creates). Those look-ups were half
    of gc's time on a 10^6-blob store.

    None if the pack is damaged, a live blob does not match its id or its index record
    is damaged (then nothing more is moved and the pack stays).
    """
    try:
        fd = os.open(store.pack_path(pack_no), os.O_RDONLY)
    except FileNotFoundError:
        return None
    get = store.raw_get
    unpack = ix.BLOB_PLACE.unpack_from
    moves: list[tuple[bytes, bytes]] = []
    dead_dedup: list[bytes] = []
    copied = 0
    try:
        for item in scan_pack_entries(fd, FILE_HEADER.size, length, bodies=not dead):
            if isinstance(item, ScanStop):
                return None
            blob_id, dedup, at, _, entry = item
            key = ix.BLOB_PREFIX + blob_id
            raw = None if dead else get(key)
            if raw is None:
                # Swept: its dedup record goes with the pack (if it still names it).
                if dedup is not None and get(ix.DEDUP_PREFIX + dedup) == blob_id:
                    dead_dedup.append(dedup)
                    if len(dead_dedup) >= _SWEEP_BATCH:  # memory stays flat per pack
                        _delete_dedup(store, dead_dedup)
                        dead_dedup = []
                continue
            if len(raw) != ix.BLOB_RECORD_SIZE:
                return None  # a damaged record may place a live blob here: keep the pack
            pack, offset, _ = unpack(raw)
            if pack != pack_no or offset != at:
                continue  # garbage, or a stale copy of a blob that lives elsewhere
            if blob_id_of(entry[ENTRY_HEADER.size :]) != blob_id:
                return None
            new_pack, new_at = out.append(entry)
            # The record keeps stored_len, plain_len and kind: only the place changes.
            moves.append((key, _PLACE.pack(new_pack, new_at) + raw[_PLACE.size :]))
            copied += len(entry)
            if len(moves) >= _MOVE_BATCH:
                # Commit as we go (copies synced first): the old pack stays until all
                # its live blobs are moved, so partial progress is always consistent.
                out.commit(moves)
                moves = []
    finally:
        os.close(fd)
    if moves or dead_dedup:
        out.commit(moves, dead_dedup)
    return copied


def _delete_dedup(store: Store, keys: list[bytes]) -> None:
    with store.write_batch(sync=False) as wb:  # advisory records: no sync needed
        for key in keys:
            wb.delete(ix.dedup_key(key))


def last_gc(store: Store) -> dict[str, Any] | None:
    """The report of the last gc that ran to the end, if any."""
    raw = store.get_record(ix.GC_LAST_KEY)
    if raw is None:
        return None
    doc: dict[str, Any] = msgpack.unpackb(raw)
    return doc
