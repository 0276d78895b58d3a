"""Big files on a thread of their own, beside the walk.

The walk's work is Python (a stat, a node and a dedup look-up per file, a seal per small
chunk) and holds the GIL; a big file's work is C that releases it (reads, FastCDC's cut
loop, BLAKE3, zstd, XChaCha20-Poly1305). Reading, chunking and sealing big files on their
own thread, through a pipeline of their own, keeps the second core busy while the walk
goes on through small files: in the benchmark corpus 56 files hold 83 % of the bytes and
20,000 files the rest, and the two kinds of work used to take turns.

``submit`` returns a future that completes once every chunk id of the file is in its
node (or fails with FileSkipped for a file that cannot be read, or with the store's
error). The two pipelines do not share their in-flight sets, so a chunk that both seal at
the same moment is stored twice: a little space, never a wrong reference.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from node.repo import BlobWriter, Node, Repository

from ._archiver import ChunkPipeline, ChunkStats
from ._reading import FileChunks, FileSkipped, Stopped, read_into

LARGE_FILE = 1024 * 1024
"""Files above this size go to the big-file thread."""


class LargeFiles:
    """A thread that reads, chunks and seals big files, one after the other.

    Ownership: ``submit`` and ``close`` are called by the walking thread; everything else
    runs on the ``sv-large`` thread. ``close`` must be called, even on error.
    """

    def __init__(
        self, repo: Repository, writer: BlobWriter, level: int, pool: ThreadPoolExecutor
    ) -> None:
        self._chunker = repo.new_chunker()
        self._pipeline = ChunkPipeline(repo, writer, level, pool)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sv-large")
        self._lock = threading.Lock()
        self._queued = 0
        """Files submitted and not started: the thread flushes its pipeline at none."""
        self._waiting: set[Future[str | None]] = set()
        """Files read whose chunks are not all sealed yet (sv-large thread only)."""
        self._failed: BaseException | None = None
        self._stop = threading.Event()

    @property
    def stats(self) -> ChunkStats:
        """What this thread's pipeline stored (read after ``close``)."""
        return self._pipeline.stats

    def submit(self, path: bytes, node: Node, st: os.stat_result) -> Future[str | None]:
        """Back up a big file's content into ``node`` (size, xattrs, chunks).

        The future's result is a warning (the file changed while read) or None.
        """
        done: Future[str | None] = Future()
        with self._lock:
            self._queued += 1
        self._thread.submit(self._run, path, node, st, done)
        return done

    def _run(self, path: bytes, node: Node, st: os.stat_result, done: Future[str | None]) -> None:
        with self._lock:
            self._queued -= 1
        if self._failed is not None:
            done.set_exception(self._failed)
            return
        warning: list[str | None] = [None]

        def complete() -> None:
            self._waiting.discard(done)
            done.set_result(warning[0])

        chunks = FileChunks(complete, self._stop)
        self._waiting.add(done)
        try:
            try:
                warning[0] = read_into(path, node, st, self._pipeline, self._chunker, chunks)
            except (FileSkipped, Stopped) as exc:
                # Its chunks sealed so far are garbage for gc; ``complete`` never runs.
                self._waiting.discard(done)
                done.set_exception(exc)
            else:
                chunks.close()
            with self._lock:
                last = self._queued == 0
            if last:
                # Nothing queued behind this file: seal and store what is pending now.
                self._pipeline.flush()
            else:
                # The next file may add nothing new (all dedup hits): its batches must
                # not be what completes this one. Its ``add`` calls drain this batch.
                self._pipeline.push()
        except BaseException as exc:
            # The store failed: this file and every file still waiting for chunks fail.
            self._failed = exc
            for waiting in [done, *self._waiting]:
                if not waiting.done():
                    waiting.set_exception(exc)
            self._waiting.clear()

    def close(self) -> None:
        """Wait for every file submitted, then stop the thread and its pipeline."""
        try:
            self._thread.shutdown(wait=True)
        finally:
            self._pipeline.finish()

    def abort(self) -> None:
        """Stop soon (the backup failed or was cancelled): drop queued files and end the
        one being read at its next chunk. ``close`` still follows."""
        self._stop.set()
        self._thread.shutdown(wait=True, cancel_futures=True)
