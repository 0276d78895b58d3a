"""Chunk-level pipeline of a backup: dedup in the main thread, sealing on two threads.

The main thread reads and chunks files, hashes each chunk with the dedup key and looks
it up; only new chunks are copied into a batch. Full batches (2 MiB) are compressed and
encrypted by a 2-thread pool with two batches in flight: zstd and libsodium release the
GIL, and big work units are what made threads pay on this 2-core machine
(packs-field-notes.md section 4). Results are appended to the store in submission
order, so callbacks fire in order too.

A chunk's blob id is only known once it is sealed (it is the hash of the ciphertext), so
callers register a callback per chunk (``on_id``) and finish a directory's tree once
``completed`` has passed the sequence number the directory was queued at.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from node.repo import BlobKind, BlobWriter, Repository, Sealer
from protocol import BlobId, blob_id_of

BATCH_BYTES = 2 * 1024 * 1024
"""Plaintext per sealing task. 4 MiB x 2 in flight measured as fast as 8 MiB with 20 %
less peak memory (packs-field-notes.md section 3, P6 vs P4); with the big-file thread's
pipeline beside the walk's, 2 MiB keeps an incremental backup's peak RSS under restic's
(96 vs 109 MB on the corpus's day 2, in-process)."""
IN_FLIGHT = 2

OnId = Callable[[BlobId], None]


@dataclass
class ChunkStats:
    """Counts of what the pipeline did."""

    chunks: int = 0
    new_chunks: int = 0
    bytes_added: int = 0
    """Plaintext bytes of new blobs."""
    bytes_stored: int = 0
    """Sealed bytes of new blobs."""


_Stored = list[tuple[BlobId, int, int, bytes]]
"""Per chunk of a batch: blob id, plaintext length, sealed length, dedup key."""


def _seal_batch(
    writer: BlobWriter, level: int, key: bytes, items: list[tuple[bytes, memoryview | bytes]]
) -> _Stored:
    """Seal a batch and append it to the store (worker thread).

    Appending here rather than in the walking thread moves the pack writes off the
    critical path; the appender serialises the two workers, and pack order is free.
    """
    sealer = Sealer.for_thread(level)
    out = []
    for dedup, data in items:
        sealed = sealer.seal(data, key)
        blob_id = blob_id_of(sealed)
        writer.put(sealed, BlobKind.DATA, len(data), dedup, blob_id=blob_id)
        out.append((blob_id, len(data), len(sealed), dedup))
    return out


class ChunkPipeline:
    """Deduplicate, seal and store data chunks; report each chunk's blob id by callback.

    Ownership: created and used by one thread; ``finish`` must be called (it waits for
    every batch and closes the pool, unless the pool was given) even on error. Two
    pipelines may share one sealing pool (``pool``): fewer threads wait for the GIL.
    """

    def __init__(
        self,
        repo: Repository,
        writer: BlobWriter,
        level: int,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self._repo = repo
        self._writer = writer
        self._level = level
        self._key = repo.keys.data
        self._own_pool = pool is None
        self._pool = pool or new_seal_pool()
        self._inflight: deque[tuple[Future[_Stored], list[list[OnId]]]] = deque()
        self._batch: list[tuple[bytes, memoryview | bytes]] = []
        self._batch_waiters: list[list[OnId]] = []
        self._batch_bytes = 0
        # dedup key -> callbacks of chunks queued but not yet sealed (in-run duplicates)
        self._queued: dict[bytes, list[OnId]] = {}
        self.submitted = 0
        """Sequence number of the batch being filled (batches are numbered from 1)."""
        self.completed = 0
        """Every batch up to this number has been stored and its callbacks run."""
        self.stats = ChunkStats()

    def add(
        self, data: memoryview | bytes, on_id: OnId, *, copy: bool, dedup: bytes | None = None
    ) -> None:
        """Store one chunk (if new) and call ``on_id`` with its blob id, now or later.

        Args:
            data: the chunk's plaintext.
            on_id: called once with the blob id, in the order chunks were added.
            copy: True if ``data`` is only valid until the next chunk (stream chunking).
            dedup: the chunk's dedup key (``Repository.dedup_key``) if computed already.
        """
        self.stats.chunks += 1
        if self._inflight and self._inflight[0][0].done():
            # Callbacks as soon as their batch is stored, even in a run of dedup hits
            # that submits nothing (a file's tree may be waiting for them).
            self._drain(0, block=False)
        if dedup is None:
            dedup = self._repo.dedup_key(data)
        waiting = self._queued.get(dedup)
        if waiting is not None:
            waiting.append(on_id)
            return
        known = self._writer.lookup_dedup(dedup)  # pins a hit against a concurrent gc
        if known is not None:
            on_id(known)
            return
        waiters = [on_id]
        self._queued[dedup] = waiters
        self._batch.append((dedup, bytes(data) if copy else data))
        self._batch_waiters.append(waiters)
        self._batch_bytes += len(data)
        if self._batch_bytes >= BATCH_BYTES:
            self._submit()

    def pending_seq(self) -> int:
        """The sequence number that must complete before everything added so far is known."""
        return self.submitted + 1 if self._batch else self.submitted

    def push(self) -> None:
        """Send the batch being filled to the sealers now, without waiting for it."""
        self._submit()

    def _submit(self) -> None:
        if not self._batch:
            return
        future = self._pool.submit(_seal_batch, self._writer, self._level, self._key, self._batch)
        self._inflight.append((future, self._batch_waiters))
        self._batch, self._batch_waiters, self._batch_bytes = [], [], 0
        self.submitted += 1
        self._drain(IN_FLIGHT)

    def _drain(self, limit: int, *, block: bool = True) -> None:
        while len(self._inflight) > limit:
            if not block and not self._inflight[0][0].done():
                return
            future, waiters = self._inflight.popleft()
            for (blob_id, plain_len, stored_len, dedup), callbacks in zip(
                future.result(), waiters, strict=True
            ):
                self.stats.new_chunks += 1
                self.stats.bytes_added += plain_len
                self.stats.bytes_stored += stored_len
                del self._queued[dedup]
                for callback in callbacks:
                    callback(blob_id)
            self.completed += 1

    def flush(self) -> None:
        """Seal and store everything added so far."""
        self._submit()
        self._drain(0)

    def finish(self) -> None:
        """Flush (unless failing) and shut the pool down."""
        try:
            self.flush()
        finally:
            if self._own_pool:
                self._pool.shutdown(wait=True, cancel_futures=True)


def new_seal_pool() -> ThreadPoolExecutor:
    """The threads that compress, encrypt and append batches (two: one per core)."""
    return ThreadPoolExecutor(2, thread_name_prefix="sv-seal")


def store_tree(
    repo: Repository, writer: BlobWriter, plaintext: bytes, level: int, stats: ChunkStats
) -> BlobId:
    """Seal and store a tree blob unless an identical tree is already stored."""
    dedup = repo.tree_dedup_key(plaintext)
    known = writer.lookup_dedup(dedup)
    if known is not None:
        return known
    sealed = Sealer.for_thread(level).seal(plaintext, repo.keys.metadata)
    blob_id = writer.put(sealed, BlobKind.TREE, len(plaintext), dedup)
    stats.bytes_added += len(plaintext)
    stats.bytes_stored += len(sealed)
    return blob_id
