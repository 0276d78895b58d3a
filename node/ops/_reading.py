"""Reading one regular file into a chunk pipeline, as backup does it.

A file is opened without following links and without blocking (a FIFO swapped in since
the walk's lstat is refused, not waited on), read whole when small or streamed through
FastCDC when big, then fstat'ed: a file that changed while it was read keeps the bytes
read, with a warning. Small files are read ahead of the walk on two threads
(``Prefetcher``); both the walk and the big-file thread (``_largefiles``) chunk through
``read_into``.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from node.repo import Chunker, Node
from protocol import BlobId

from ._archiver import ChunkPipeline

SMALL_FILE = 8 * 1024 * 1024
"""Files up to this size are read in one call and chunked in memory (no copy)."""


class FileSkipped(Exception):
    """A file that cannot be backed up; the message becomes a warning."""


def read_xattrs(target: bytes | int) -> dict[bytes, bytes]:
    """Extended attributes of a path (not followed) or an open file descriptor."""
    follow = isinstance(target, int)  # an fd is the file itself; a path may be a link
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:
        return {}
    out = {}
    for name in names:
        try:
            out[name.encode()] = os.getxattr(target, name, follow_symlinks=follow)
        except OSError:
            continue
    return out


def open_regular(path: bytes) -> int:
    """Open ``path`` for reading, or raise FileSkipped saying why not."""
    try:
        # O_NONBLOCK: a file replaced by a FIFO since the walk's lstat must not hang the
        # backup in open(); it is refused by the S_ISREG check after the read.
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        reason = "vanished" if isinstance(exc, FileNotFoundError) else str(exc.strerror)
        raise FileSkipped(reason) from exc


Read = tuple[bytes, os.stat_result, dict[bytes, bytes], bytes | None]
"""A small file read whole: its bytes, its fstat after the read, its xattrs, and the
dedup key of its bytes when they are one chunk and the reader was given the hash."""

DedupHash = Callable[[bytes | memoryview], bytes]


def _fstat_regular(fd: int) -> os.stat_result:
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode):
        raise FileSkipped("replaced by another kind of file while backing up")
    return after


def read_small(
    path: bytes, size: int, one_chunk: int = 0, dedup_hash: DedupHash | None = None
) -> Read:
    """Read a small file whole, then fstat it and read its xattrs.

    Few syscalls on purpose: each one hands the GIL back and waits to get it again. A
    file of at most ``one_chunk`` bytes is one chunk: its dedup key is computed here
    too, so that a read-ahead thread, not the walk, waits for the GIL after hashing.
    """
    fd = open_regular(path)
    try:
        data = _read_all(fd, size)
        after = _fstat_regular(fd)
        xattrs = read_xattrs(fd)
    except OSError as exc:
        raise FileSkipped(f"read failed: {exc.strerror}") from exc
    finally:
        os.close(fd)
    dedup = dedup_hash(data) if dedup_hash is not None and 0 < len(data) <= one_chunk else None
    return data, after, xattrs, dedup


def _read_all(fd: int, size: int) -> bytes:
    """Read ``size`` bytes (the size fstat gave), fewer if the file shrank.

    A file that grew meanwhile has a new mtime, which the caller's second fstat notices.
    """
    if size == 0:
        return b""
    data = os.read(fd, size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        block = os.read(fd, size - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


class Stopped(Exception):
    """The backup is being aborted: stop reading this file."""


class FileChunks:
    """The chunk ids of one file, filled in as its pipeline learns them.

    ``on_complete`` (if given) is called once every slot is filled and ``close`` has
    been called, on the thread that runs the pipeline's callbacks. Once ``stop`` is set,
    reserving a slot raises Stopped, which ends the read of the file at its next chunk.
    """

    def __init__(
        self,
        on_complete: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.ids: list[BlobId | None] = []
        self._missing = 0
        self._closed = False
        self._on_complete = on_complete
        self._stop = stop

    def slot(self) -> Callable[[BlobId], None]:
        """Reserve the next chunk's place; the returned function fills it."""
        if self._stop is not None and self._stop.is_set():
            raise Stopped
        index = len(self.ids)
        self.ids.append(None)
        self._missing += 1

        def fill(blob_id: BlobId) -> None:
            self.ids[index] = blob_id
            self._missing -= 1
            if self._closed and not self._missing and self._on_complete is not None:
                self._on_complete()

        return fill

    def close(self) -> None:
        """No more chunks; completes now if every id is known already."""
        self._closed = True
        if not self._missing and self._on_complete is not None:
            self._on_complete()


def read_into(
    path: bytes,
    node: Node,
    st: os.stat_result,
    pipeline: ChunkPipeline,
    chunker: Chunker,
    chunks: FileChunks,
    ahead: Read | None = None,
) -> str | None:
    """Read a regular file into ``pipeline``; set the node's size, xattrs and chunks.

    ``st`` is the walk's lstat, what the node records: a file changed or replaced between
    that and the end of the read shows in the fstat after it. ``ahead`` is the file
    as read ahead, if it was.

    Returns:
        A warning if the file changed while it was read (the node has the bytes read).

    Raises:
        FileSkipped: the file vanished, could not be read, or is no longer a regular file.
    """
    read = ahead
    if read is None and st.st_size <= SMALL_FILE:
        read = read_small(path, st.st_size)
    if read is not None:
        data, after, node.xattrs, dedup = read
        size = len(data)
        if len(data) <= chunker.params.min_size:
            if data:
                pipeline.add(data, chunks.slot(), copy=False, dedup=dedup)
        else:
            # Views into ``data``, kept alive by the batches that hold them.
            for view in chunker.chunks_of_buffer(data):
                pipeline.add(view, chunks.slot(), copy=False)
    else:
        fd = open_regular(path)
        try:
            # Refuse a FIFO or device swapped in since the walk's lstat before streaming
            # it (a live FIFO would never end); then reads may block like a file's.
            _fstat_regular(fd)
            os.set_blocking(fd, True)
            size = 0
            with open(fd, "rb", buffering=0, closefd=False) as stream:
                views = chunker.chunks_of_stream(stream)
                while True:
                    # Only the file's own errors make it a warning: the store's errors
                    # (from ``pipeline.add``) fail the backup.
                    try:
                        view = next(views)
                    except StopIteration:
                        break
                    except OSError as exc:
                        raise FileSkipped(f"read failed: {exc.strerror}") from exc
                    size += len(view)
                    pipeline.add(view, chunks.slot(), copy=True)
            try:
                after = _fstat_regular(fd)
                node.xattrs = read_xattrs(fd)
            except OSError as exc:
                raise FileSkipped(f"read failed: {exc.strerror}") from exc
        finally:
            os.close(fd)
    node.size = size
    node.chunks = chunks.ids  # type: ignore[assignment]  # filled in before the tree is made
    if (
        after.st_mtime_ns != st.st_mtime_ns
        or after.st_size != st.st_size
        or after.st_ino != st.st_ino
        or size != st.st_size
    ):
        node.mtime_ns = after.st_mtime_ns
        return "changed while it was read; the snapshot has the bytes read"
    return None


_Batch = dict[bytes, "Read | FileSkipped"]


def _read_batch(files: list[tuple[bytes, int]], one_chunk: int, dedup_hash: DedupHash) -> _Batch:
    out: _Batch = {}
    for path, size in files:
        try:
            out[path] = read_small(path, size, one_chunk, dedup_hash)
        except FileSkipped as exc:
            out[path] = exc
    return out


class Prefetcher:
    """Reads small files ahead of the walk on two threads.

    ``os.read`` releases the GIL, so reading the next files overlaps with chunking,
    hashing and sealing the current ones. At most ``budget`` bytes are read ahead. Files
    of at most ``one_chunk`` bytes come with their dedup key (``dedup_hash``). Files go
    to the threads in groups (up to ``group_files`` files or ``group_bytes`` bytes): one
    task per file cost the walk a submit, a future and a wake-up per file.
    """

    def __init__(
        self,
        one_chunk: int,
        dedup_hash: DedupHash,
        budget: int = 16 * 1024 * 1024,
        group_files: int = 16,
        group_bytes: int = 1024 * 1024,
    ) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="sv-read")
        self._one_chunk = one_chunk
        self._dedup_hash = dedup_hash
        self._budget = budget
        self._group_files = group_files
        self._group_bytes = group_bytes
        self._queue: deque[tuple[bytes, int]] = deque()
        self._ahead: dict[bytes, tuple[Future[_Batch], int]] = {}
        self._bytes = 0

    def schedule(self, files: Iterable[tuple[bytes, int]]) -> None:
        """Queue (path, size) pairs to read, in the order the walk will take them."""
        self._queue.extend(files)
        self._pump()

    def _pump(self) -> None:
        while self._queue and (self._bytes < self._budget or not self._ahead):
            group: list[tuple[bytes, int]] = []
            group_bytes = 0
            while self._queue and len(group) < self._group_files:
                path, size = self._queue[0]
                if group and group_bytes + size > self._group_bytes:
                    break
                self._queue.popleft()
                group.append((path, size))
                group_bytes += size
            read = self._pool.submit(_read_batch, group, self._one_chunk, self._dedup_hash)
            for path, size in group:
                self._ahead[path] = (read, size)
            self._bytes += group_bytes

    def take(self, path: bytes) -> Read | None:
        """The read of ``path`` if it was scheduled (waits for it); None if it was not.

        Raises:
            FileSkipped: the read-ahead could not read it.
        """
        found = self._ahead.pop(path, None)
        if found is None:
            # Not started yet: drop it from the queue and let the caller read it.
            if self._queue and self._queue[0][0] == path:
                self._queue.popleft()
            return None
        self._bytes -= found[1]
        self._pump()
        result = found[0].result().pop(path)
        if isinstance(result, FileSkipped):
            raise result
        return result

    def close(self) -> None:
        """Stop reading ahead; waits for reads in progress."""
        self._queue.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
