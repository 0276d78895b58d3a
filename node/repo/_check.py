"""Checking a store: the index and the packs agree, and (optionally) every blob reads back.

Three passes, each with memory independent of the number of blobs:

1. index -> packs: every index record decodes, names a pack that exists, lies inside
   its committed length, and the entry header at that offset carries the same id;
2. packs -> index: every pack's entries parse up to its committed length; entries the
   index does not name are counted (``unindexed_entries``: garbage gc swept and has not
   rewritten away; a crash's leftovers past the committed length are indexed on open);
3. with ``read_data``: every blob (or the N-th of M slices, by blob id) is read, hashed
   against its id, authenticated, decrypted and decompressed. Sealing and hashing release
   the GIL, so this pass runs on two threads in 8 MiB batches.

Referenced-but-missing blobs (a snapshot naming a blob the store lacks) are found by the
caller, which knows the snapshots, and passed in through ``referenced``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from protocol import BlobId, blob_id_of

from ._errors import CorruptBlob, RepoError
from ._pack import (
    ENTRY_HEADER,
    FILE_HEADER,
    BlobKind,
    ScanStop,
    read_file_header,
    scan_pack,
    scan_pack_bodies,
)
from ._repository import Repository
from ._seal import Sealer

_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the store, precise enough to act on."""

    what: str
    """A stable code: missing_pack, truncated_pack, damaged_pack, bad_index_record,
    index_mismatch, orphan_pack, corrupt_blob, missing_blob."""
    detail: str
    blob: str | None = None
    pack: int | None = None

    def __str__(self) -> str:
        where = []
        if self.blob:
            where.append(f"blob {self.blob[:16]}")
        if self.pack is not None:
            where.append(f"pack {self.pack:08d}")
        return f"{', '.join(where) or 'store'}: {self.detail}"


@dataclass
class CheckReport:
    """What a check looked at and what it found."""

    packs: int = 0
    blobs: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    unindexed_entries: int = 0
    """Pack entries no index record names: garbage gc swept but has not rewritten yet."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Subset:
    """The ``n``-th (1-based) of ``m`` slices of all blobs, chosen by blob id."""

    n: int
    m: int

    @classmethod
    def parse(cls, text: str) -> Subset:
        """Parse ``N/M``.

        Raises:
            ValueError: not of that form, or not 1 <= N <= M.
        """
        try:
            n_text, m_text = text.split("/")
            n, m = int(n_text), int(m_text)
        except ValueError:
            raise ValueError(f"expected N/M (e.g. 2/7), got {text!r}") from None
        if not 1 <= n <= m:
            raise ValueError(f"need 1 <= N <= M in N/M, got {text!r}")
        return cls(n, m)

    def contains(self, blob_id: bytes) -> bool:
        return int.from_bytes(blob_id[:8], "big") % self.m == self.n - 1


ProgressFn = Callable[[int, int], None]
"""Called with (bytes read so far, blobs read so far)."""


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
        referenced: (blob id, who references it) pairs that must exist.
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

    reading = read_data or subset is not None
    # When reading data, the pack scan below finds every entry an index record names, so
    # reading each record's entry header here would be done twice.
    in_bounds = _index_to_packs(repo, committed, sizes, report, read_headers=not reading)
    if not reading:
        _packs_to_index(repo, committed, sizes, report)

    for blob_id, who in referenced:
        if not store.has(blob_id):
            report.problems.append(
                Problem("missing_blob", f"referenced by {who} but not stored", blob=blob_id.hex())
            )

    if reading:
        matched = _read_data(repo, committed, sizes, subset, report, progress)
        if matched != in_bounds:
            # Some record names no entry of its pack: read the headers to say which.
            again = CheckReport()
            _index_to_packs(repo, committed, sizes, again, read_headers=True)
            report.problems.extend(p for p in again.problems if p.what == "index_mismatch")
    return report


def _index_to_packs(
    repo: Repository,
    committed: dict[int, int],
    sizes: dict[int, int],
    report: CheckReport,
    *,
    read_headers: bool = True,
) -> int:
    """Check every index record; returns how many lie inside their packs.

    Without ``read_headers`` the entry header at each record's offset is not read: the
    caller then proves the records right by finding each of them in a pack scan.
    """
    fds: dict[int, int] = {}
    in_bounds = 0
    try:
        for blob_id, loc in repo.store.iter_blobs():
            report.blobs += 1
            if loc is None:
                report.problems.append(
                    Problem("bad_index_record", "index record does not decode", blob=blob_id.hex())
                )
                continue
            if loc.pack not in sizes:
                report.problems.append(
                    Problem("missing_blob", "its pack file is missing", blob_id.hex(), loc.pack)
                )
                continue
            end = loc.offset + loc.stored_len
            if end > min(sizes[loc.pack], committed.get(loc.pack, 0)):
                report.problems.append(
                    Problem(
                        "missing_blob",
                        f"lies past the end of its pack (bytes {loc.offset}..{end})",
                        blob_id.hex(),
                        loc.pack,
                    )
                )
                continue
            in_bounds += 1
            if not read_headers:
                continue
            fd = fds.get(loc.pack)
            if fd is None:
                fd = fds[loc.pack] = os.open(repo.store.pack_path(loc.pack), os.O_RDONLY)
            head = os.pread(fd, ENTRY_HEADER.size, loc.offset - ENTRY_HEADER.size)
            if len(head) != ENTRY_HEADER.size:
                report.problems.append(
                    Problem("index_mismatch", "entry header unreadable", blob_id.hex(), loc.pack)
                )
                continue
            stored_id, _, stored_len, _, _, _ = ENTRY_HEADER.unpack(head)
            if stored_id != blob_id or stored_len != loc.stored_len:
                report.problems.append(
                    Problem(
                        "index_mismatch",
                        f"the pack entry at offset {loc.offset} is not this blob",
                        blob_id.hex(),
                        loc.pack,
                    )
                )
    finally:
        for fd in fds.values():
            os.close(fd)
    return in_bounds


def _packs_to_index(
    repo: Repository, committed: dict[int, int], sizes: dict[int, int], report: CheckReport
) -> None:
    store = repo.store
    for no in sorted(set(committed) & set(sizes)):
        end = min(committed[no], sizes[no])
        with _open_ro(store.pack_path(no)) as fd:
            if read_file_header(fd) != no:
                report.problems.append(
                    Problem("damaged_pack", "pack file header is damaged", pack=no)
                )
                continue
            for item in scan_pack(fd, FILE_HEADER.size, end, verify=False):
                if isinstance(item, ScanStop):
                    report.problems.append(
                        Problem(
                            "damaged_pack",
                            f"unreadable from offset {item.offset}: {item.reason}",
                            pack=no,
                        )
                    )
                    break
                try:
                    loc = store.location(item.blob_id)
                except RepoError:  # absent or damaged both mean "unindexed"
                    loc = None
                if loc is None:
                    # Inside the committed length: a blob gc swept (recovery indexes
                    # every whole entry a crash leaves past it). Counted, not a warning.
                    report.unindexed_entries += 1


class _open_ro:
    def __init__(self, path: os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        # Read front to back: a larger kernel read-ahead window keeps a cold disk busy.
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


_Item = tuple[BlobId, BlobKind, int, memoryview]


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


def _read_data(
    repo: Repository,
    committed: dict[int, int],
    sizes: dict[int, int],
    subset: Subset | None,
    report: CheckReport,
    progress: ProgressFn | None,
) -> int:
    """Read (and verify) the blobs; returns how many pack entries matched their record."""
    store = repo.store
    matched = 0
    inflight: deque[Future[list[Problem]]] = deque()
    batch: list[_Item] = []
    batch_bytes = 0

    with ThreadPoolExecutor(2, thread_name_prefix="sv-check") as pool:

        def drain(limit: int) -> None:
            while len(inflight) > limit:
                report.problems.extend(inflight.popleft().result())
                if progress:
                    progress(report.bytes_read, report.blobs_read)

        for no in sorted(set(committed) & set(sizes)):
            end = min(committed[no], sizes[no])
            with _open_ro(store.pack_path(no)) as fd:
                if read_file_header(fd) != no:
                    report.problems.append(
                        Problem("damaged_pack", "pack file header is damaged", pack=no)
                    )
                    continue
                stopped_at = None
                # 4 MiB reads: each batch in flight pins the blocks its views point into,
                # so smaller blocks keep peak memory under restic's at the same speed.
                for item in scan_pack_bodies(fd, FILE_HEADER.size, end, block=4 * 1024 * 1024):
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
                    entry, body = item
                    try:
                        loc = store.location(entry.blob_id)
                    except RepoError:  # absent or damaged: swept by gc (see above)
                        report.unindexed_entries += 1
                        continue
                    if loc.pack != no or loc.offset != entry.offset:
                        continue  # a stale duplicate; the indexed copy is checked in its pack
                    matched += 1
                    if subset is not None and not subset.contains(entry.blob_id):
                        continue
                    batch.append((entry.blob_id, loc.kind, no, body))
                    batch_bytes += len(body)
                    report.blobs_read += 1
                    report.bytes_read += len(body)
                    if batch_bytes >= _BATCH_BYTES:
                        inflight.append(pool.submit(_verify_batch, repo, batch))
                        batch, batch_bytes = [], 0
                        drain(2)
                if stopped_at is not None:
                    # A damaged entry header hides the rest of the pack from a scan: read
                    # the blobs the index places after it directly (rare: one index pass).
                    for blob_id, found in store.iter_blobs():
                        if found is None or found.pack != no or found.offset <= stopped_at:
                            continue
                        if found.offset + found.stored_len > end:
                            continue  # past the end: reported as missing by the index pass
                        if subset is not None and not subset.contains(blob_id):
                            continue
                        sealed = os.pread(fd, found.stored_len, found.offset)
                        batch.append((blob_id, found.kind, no, memoryview(sealed)))
                        batch_bytes += len(sealed)
                        report.blobs_read += 1
                        report.bytes_read += len(sealed)
        if batch:
            inflight.append(pool.submit(_verify_batch, repo, batch))
        drain(0)
    return matched
