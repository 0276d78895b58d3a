"""Checking a store: the index and the packs agree, and (optionally) every blob reads back.

Two passes, each with memory independent of the number of blobs:

1. index -> packs: every index record decodes, names a pack that exists and lies inside
   its committed length. The records go into a bounded in-memory map (``_check_data``).
2. packs -> index: every pack is scanned front to back up to its committed length, each
   entry matched to its record through the map: a record is proven right when an entry
   with its id sits at its offset with its length. Entries the index does not name are
   counted (``unindexed_entries``: garbage gc swept and has not rewritten away; a
   crash's leftovers past the committed length are indexed on open). Without
   ``read_data`` only the entry headers are read; with it every blob (or the N-th of M
   slices, by blob id) is also hashed against its id, authenticated, decrypted and
   decompressed. For a pack where fewer records were proven than lie inside it, each
   of its records' entry header is read to name the ones that are wrong.

Before, pass 1 read the entry header of every record (a cold random read each, in blob
id order) and pass 2 looked up every entry in LevelDB; one scan in pack order does both.

Referenced-but-missing blobs (a snapshot naming a blob the store lacks) are found by the
caller, which knows the snapshots, and passed in through ``referenced``. That walk runs
on its own thread beside the scan: its tree loads are small random reads and decoding,
which overlap the scan's sequential reads and hashing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from protocol import BlobId

from . import _index as ix
from ._check_data import RecordMap, prefetch_trees, read_blobs
from ._check_report import CheckReport, Problem, ProgressFn, Subset
from ._pack import ENTRY_HEADER, FILE_HEADER
from ._repository import Repository
from ._store import Store


def check_store(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: Subset | None = None,
    referenced: Iterable[tuple[BlobId, str]] = (),
    progress: ProgressFn | None = None,
) -> CheckReport:
    """Check a store; see the module docstring for what each pass covers.

    Args:
        repo: an open repository.
        read_data: read and open every blob (or the ``subset``).
        subset: limit ``read_data`` to one slice; implies ``read_data``.
        referenced: (blob id, who references it) pairs that must exist; with
            ``read_data`` it is consumed on a worker thread.
        progress: called after each batch of ``read_data``.

    Returns:
        The report; ``report.ok`` is False if anything is wrong.
    """
    report = CheckReport()
    store = repo.store
    committed = store.committed_packs()
    files = store.pack_files()
    sizes = {no: path.stat().st_size for no, path in files.items()}
    report.packs = len(files)

    for no in sorted(set(committed) - set(files)):
        report.problems.append(Problem("missing_pack", "pack file is missing", pack=no))
    for no in sorted(set(files) - set(committed)):
        report.warnings.append(
            Problem("orphan_pack", "pack file is not in the index (unused)", pack=no)
        )
    for no in sorted(set(files) & set(committed)):
        if sizes[no] < committed[no]:
            report.problems.append(
                Problem(
                    "truncated_pack",
                    f"pack has {sizes[no]} bytes, the index says {committed[no]}",
                    pack=no,
                )
            )

    # The pack scan finds every entry an index record names, so reading each record's
    # entry header here (a cold random read each) would be done twice: the records go
    # into a map instead.
    records = RecordMap()
    in_bounds = _index_to_packs(repo, committed, sizes, report, read_headers=False, keep=records)
    stop = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="sv-check-walk") as walker:
        known = records.records if records.whole else None
        walk = walker.submit(_missing_referenced, store, referenced, known, stop)
        before = len(report.problems)
        try:
            proved = read_blobs(
                repo,
                committed,
                sizes,
                subset,
                report,
                progress,
                records,
                in_bounds,
                bodies=read_data or subset is not None,
            )
        except BaseException:
            stop.set()  # the walk ends at its next blob; its result is moot
            raise
        missing = walk.result()
    report.problems[before:before] = missing  # in the order a sequential check gives

    unproved = {no for no, n in in_bounds.items() if proved.get(no, 0) != n}
    if unproved:
        # Some record names no entry of its pack: read those packs' headers to say which.
        again = CheckReport()
        _index_to_packs(repo, committed, sizes, again, only=unproved)
        report.problems.extend(p for p in again.problems if p.what == "index_mismatch")
    return report


def _missing_referenced(
    store: Store,
    referenced: Iterable[tuple[BlobId, str]],
    known: dict[bytes, bytes] | None,
    stop: threading.Event,
) -> list[Problem]:
    """A problem for each referenced blob the store lacks (until ``stop`` is set).

    ``known`` (blob id -> record of every valid record) answers most lookups without a
    LevelDB get; a blob it lacks is looked up to be sure. Its trees are read ahead.
    """
    if known is not None:
        prefetch_trees(store, known)
    problems = []
    for blob_id, who in referenced:
        if stop.is_set():
            break
        if known is not None and blob_id in known:
            continue
        if not store.has(blob_id):
            problems.append(
                Problem("missing_blob", f"referenced by {who} but not stored", blob=blob_id.hex())
            )
    return problems


def _index_to_packs(
    repo: Repository,
    committed: dict[int, int],
    sizes: dict[int, int],
    report: CheckReport,
    *,
    read_headers: bool = True,
    only: set[int] | None = None,
    keep: RecordMap | None = None,
) -> dict[int, int]:
    """Check every index record; returns per pack how many records lie inside it.

    Without ``read_headers`` the entry header at each record's offset is not read: the
    caller then proves the records right by finding each of them in a pack scan, from
    the records this pass puts in ``keep``. ``only`` limits the pass to the records of
    some packs (and leaves the damaged ones out).
    """
    fds: dict[int, int] = {}
    in_bounds: dict[int, int] = {}
    limits = {no: min(size, committed.get(no, 0)) for no, size in sizes.items()}
    first_entry = FILE_HEADER.size + ENTRY_HEADER.size
    try:
        for key, raw in repo.store.raw_iter(ix.BLOB_PREFIX):
            place = ix.blob_place(raw)
            if only is not None and (place is None or place[0] not in only):
                continue
            report.blobs += 1
            blob_id = key[1:]
            if place is None:
                report.problems.append(
                    Problem("bad_index_record", "index record does not decode", blob=blob_id.hex())
                )
                continue
            pack, offset, stored_len = place
            limit = limits.get(pack)
            if limit is None:
                report.problems.append(
                    Problem("missing_blob", "its pack file is missing", blob_id.hex(), pack)
                )
                continue
            end = offset + stored_len
            if end > limit:
                report.problems.append(
                    Problem(
                        "missing_blob",
                        f"lies past the end of its pack (bytes {offset}..{end})",
                        blob_id.hex(),
                        pack,
                    )
                )
                continue
            in_bounds[pack] = in_bounds.get(pack, 0) + 1
            if keep is not None:
                keep.add(blob_id, raw)
            if not read_headers:
                continue
            if offset < first_entry:
                report.problems.append(
                    Problem(
                        "index_mismatch",
                        f"offset {offset} is inside the pack's headers",
                        blob_id.hex(),
                        pack,
                    )
                )
                continue
            fd = fds.get(pack)
            if fd is None:
                fd = fds[pack] = os.open(repo.store.pack_path(pack), os.O_RDONLY)
            head = os.pread(fd, ENTRY_HEADER.size, offset - ENTRY_HEADER.size)
            if len(head) != ENTRY_HEADER.size:
                report.problems.append(
                    Problem("index_mismatch", "entry header unreadable", blob_id.hex(), pack)
                )
                continue
            stored_id, _, header_len, _, _, _ = ENTRY_HEADER.unpack(head)
            if stored_id != blob_id or header_len != stored_len:
                report.problems.append(
                    Problem(
                        "index_mismatch",
                        f"the pack entry at offset {offset} is not this blob",
                        blob_id.hex(),
                        pack,
                    )
                )
    finally:
        for fd in fds.values():
            os.close(fd)
    return in_bounds
