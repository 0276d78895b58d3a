"""The ``--read-data`` pass of check: every indexed blob read once, in pack order, and opened.

Each pack is read front to back in 4 MiB reads; every entry found is matched to its index
record, and the entries the index names are hashed against their ids, authenticated,
decrypted and decompressed on two threads (sealing and hashing release the GIL).

Matching entries to records: a LevelDB get per entry cost 0.55 s of a 3 s cold check on
the 1 GiB corpus (23 k blobs; the gets also fight the verify threads for the GIL). So
the records are held in memory instead, as a map blob id -> raw record, for one group of
packs at a time: the index pass fills it for free while it fits ``_GROUP_RECORDS``;
a bigger store is scanned in groups of consecutive packs, one index pass per group, so
memory stays flat in the number of blobs (~160 bytes a record: 10 MB at the limit).
An entry whose record is not in the map, or names another place, is looked up in
LevelDB as before: a copy gc left behind (stale) or a blob gc swept (unindexed), both
rare.

Index <-> pack agreement comes out of the same scan: a record is proven right when an
entry with its id is found at its offset with its length. The caller compares, per
pack, the records that lie inside the pack with those proven, and reads entry headers
only for the packs where the two differ.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from protocol import blob_id_of

from . import _index as ix
from ._check_report import CheckReport, Problem, ProgressFn, Subset
from ._errors import CorruptBlob, RepoError
from ._pack import (
    ENTRY_HEADER,
    FILE_HEADER,
    BlobKind,
    ScanStop,
    read_file_header,
    scan_pack_entries,
)
from ._repository import Repository
from ._seal import Sealer
from ._store import Store

_GROUP_RECORDS = 1 << 16
"""Index records held in memory at once (the map of one group of packs)."""
_BATCH_BYTES = 4 * 1024 * 1024
"""Sealed bytes handed to a verify thread at once."""
_READ_BLOCK = 4 * 1024 * 1024
"""Each batch in flight pins the blocks its views point into, so smaller blocks keep
peak memory under restic's at the same speed."""
_PLACE = ix.BLOB_PLACE  # the leading 16 bytes of a blob record
_KINDS = {int(k): k for k in BlobKind}


class RecordMap:
    """Blob id -> raw index record, for the packs one scan covers.

    Filled by the index pass (``add``) until ``_GROUP_RECORDS``; past that it is emptied
    and ``whole`` turns False: the scan then builds one map per group of packs.
    """

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}
        self.whole = True
        """True while ``records`` holds every valid record the index pass saw."""

    def add(self, blob_id: bytes, raw: bytes) -> None:
        if not self.whole:
            return
        if len(self.records) >= _GROUP_RECORDS:
            self.records = {}
            self.whole = False
            return
        self.records[blob_id] = raw


def _groups(
    store: Store, packs: list[int], first: RecordMap, in_bounds: dict[int, int]
) -> Iterator[tuple[list[int], dict[bytes, bytes]]]:
    """(packs, their records) in pack order, each group's map built when it is reached."""
    if first.whole:
        yield packs, first.records
        return
    group: list[int] = []
    count = 0
    for no in packs:
        n = in_bounds.get(no, 0)
        if group and count + n > _GROUP_RECORDS:
            yield group, _records_of(store, set(group))
            group, count = [], 0
        group.append(no)
        count += n
    if group:
        yield group, _records_of(store, set(group))


def _records_of(store: Store, packs: set[int]) -> dict[bytes, bytes]:
    """The valid records of the blobs in ``packs``: one pass over the index."""
    out: dict[bytes, bytes] = {}
    for key, raw in store.raw_iter(ix.BLOB_PREFIX):
        place = ix.blob_place(raw)
        if place is not None and place[0] in packs:
            out[key[1:]] = raw
    return out


def prefetch_trees(store: Store, records: dict[bytes, bytes]) -> None:
    """Ask the kernel to read every tree blob in ``records``, in pack order.

    The snapshot walk loads trees one at a time, each a cold random read (1,880 trees,
    0.5 s of waiting on the 1 GiB corpus); queued together they are read in parallel and
    in order. ``POSIX_FADV_WILLNEED`` only starts the reads: the walk's own reads wait
    for them, and pages the scan needs anyway are not read twice.
    """
    tree = int(BlobKind.TREE)
    unplace = _PLACE.unpack_from
    places = sorted(unplace(raw) for raw in records.values() if raw[-1] == tree)
    fd, fd_pack = -1, -1
    try:
        for pack, offset, stored_len in places:
            if pack != fd_pack:
                if fd >= 0:
                    os.close(fd)
                    fd = -1
                fd_pack = pack
                try:
                    fd = os.open(store.pack_path(pack), os.O_RDONLY)
                except OSError:
                    continue  # a missing pack: the index pass reports it
            if fd >= 0:
                os.posix_fadvise(fd, offset, stored_len, os.POSIX_FADV_WILLNEED)
    finally:
        if fd >= 0:
            os.close(fd)


_Item = tuple[bytes, BlobKind, int, memoryview]


def _verify_batch(repo: Repository, batch: list[_Item]) -> list[Problem]:
    sealer = Sealer.for_thread(0)
    problems = []
    for blob_id, kind, pack_no, sealed in batch:
        if blob_id_of(sealed) != blob_id:
            problems.append(
                Problem("corrupt_blob", "bytes do not match the blob id", blob_id.hex(), pack_no)
            )
            continue
        if kind is BlobKind.FOREIGN:
            continue  # a peer's blob: its id is all we can check
        try:
            sealer.open(blob_id, sealed, repo.key_for(kind))
        except CorruptBlob as exc:
            problems.append(Problem("corrupt_blob", exc.reason, blob_id.hex(), pack_no))
    return problems


class open_ro:
    """An fd opened read-only for one front-to-back read (a context manager)."""

    def __init__(self, path: os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        # Read front to back: a larger kernel read-ahead window keeps a cold disk busy.
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def read_blobs(
    repo: Repository,
    committed: dict[int, int],
    sizes: dict[int, int],
    subset: Subset | None,
    report: CheckReport,
    progress: ProgressFn | None,
    first: RecordMap,
    in_bounds: dict[int, int],
    *,
    bodies: bool = True,
) -> dict[int, int]:
    """Scan the packs and verify the blobs; returns per pack how many records it proved.

    Args:
        first: the map the index pass filled.
        in_bounds: per pack, how many records lie inside it (to size the groups).
        bodies: False for a check without ``--read-data``: only the entry headers are
            read (64 KiB reads, in pack order) and nothing is verified.
    """
    store = repo.store
    matched: dict[int, int] = {}
    inflight: deque[Future[list[Problem]]] = deque()
    batch: list[_Item] = []
    batch_bytes = 0
    head = ENTRY_HEADER.size
    place_of, unplace = _PLACE.pack, _PLACE.unpack_from
    kinds = _KINDS

    with ThreadPoolExecutor(2, thread_name_prefix="sv-check") as pool:

        def drain(limit: int) -> None:
            while len(inflight) > limit:
                report.problems.extend(inflight.popleft().result())
                if progress:
                    progress(report.bytes_read, report.blobs_read)

        packs = sorted(set(committed) & set(sizes))
        for group, records in _groups(store, packs, first, in_bounds):
            for no in group:
                end = min(committed[no], sizes[no])
                proved = 0
                with open_ro(store.pack_path(no)) as fd:
                    if read_file_header(fd) != no:
                        report.problems.append(
                            Problem("damaged_pack", "pack file header is damaged", pack=no)
                        )
                        continue
                    stopped_at = None
                    for item in scan_pack_entries(
                        fd, FILE_HEADER.size, end, block=_READ_BLOCK, bodies=bodies
                    ):
                        if isinstance(item, ScanStop):
                            stopped_at = item.offset
                            report.problems.append(
                                Problem(
                                    "damaged_pack",
                                    f"unreadable from offset {item.offset}: {item.reason}",
                                    pack=no,
                                )
                            )
                            break
                        blob_id, _, at, stored_len, whole = item
                        raw = records.get(blob_id)
                        if raw is None:
                            # Not in the map: a blob gc swept, or one indexed in a pack
                            # of another group (a stale copy here). Rare: ask LevelDB.
                            try:
                                loc = store.location(blob_id)
                            except RepoError:  # absent or damaged: swept by gc
                                report.unindexed_entries += 1
                                continue
                            raw = loc.encode()
                        if raw[:16] == place_of(no, at, stored_len):
                            proved += 1
                        else:
                            pack, offset, _ = unplace(raw)
                            if pack != no or offset != at:
                                continue  # a stale copy; the indexed one is read in its pack
                            # The record's length disagrees: not proved (the caller names
                            # it), but the entry is still this blob's bytes: read them.
                        if not bodies:
                            continue
                        kind = kinds[raw[-1]]
                        if subset is not None and not subset.contains(blob_id):
                            continue
                        body = whole[head:]
                        batch.append((blob_id, kind, no, body))
                        batch_bytes += stored_len
                        report.blobs_read += 1
                        report.bytes_read += stored_len
                        if batch_bytes >= _BATCH_BYTES:
                            inflight.append(pool.submit(_verify_batch, repo, batch))
                            batch, batch_bytes = [], 0
                            drain(2)
                    if stopped_at is not None and bodies:
                        batch_bytes += _read_past_damage(
                            store, fd, no, stopped_at, end, subset, batch, report
                        )
                matched[no] = proved
        if batch:
            inflight.append(pool.submit(_verify_batch, repo, batch))
        drain(0)
    return matched


def _read_past_damage(
    store: Store,
    fd: int,
    no: int,
    stopped_at: int,
    end: int,
    subset: Subset | None,
    batch: list[_Item],
    report: CheckReport,
) -> int:
    """Queue the blobs the index places after a damaged entry header; returns their bytes.

    A damaged header hides the rest of the pack from a scan, so these are read directly
    (rare: one index pass).
    """
    added = 0
    for blob_id, found in store.iter_blobs():
        if found is None or found.pack != no or found.offset <= stopped_at:
            continue
        if found.offset + found.stored_len > end:
            continue  # past the end: reported as missing by the index pass
        if subset is not None and not subset.contains(blob_id):
            continue
        sealed = os.pread(fd, found.stored_len, found.offset)
        batch.append((blob_id, found.kind, no, memoryview(sealed)))
        added += len(sealed)
        report.blobs_read += 1
        report.bytes_read += len(sealed)
    return added
