"""Backup: walk file trees, store what changed, and record a signed snapshot.

The walk is depth-first in name order; each directory becomes a tree blob once its
entries' chunk ids are known (``_archiver``). Unchanged files are not read again: a file
whose size, mtime, ctime and inode equal its entry in the parent snapshot keeps that
entry's chunks (the files cache is the parent snapshot itself, as in restic, so it can
never disagree with what is stored).

Paths are recorded as absolute paths, so the root tree holds the chain of directories
leading to each backed-up path (``/home/ann/docs`` -> ``home`` -> ``ann`` -> ``docs``).

Problems with single files (unreadable, vanished, changed while read) are warnings: the
backup goes on and lists them. A missing top-level path is an error before anything is
written.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pathspec

from node.repo import (
    DIR,
    FILE,
    SYMLINK,
    Node,
    RepoError,
    Repository,
    Snapshot,
    encode_tree,
    list_snapshots,
    load_tree,
    resolve_snapshot,
    save_snapshot,
)
from protocol import BlobId

from ._archiver import ChunkPipeline, ChunkStats, new_seal_pool, store_tree
from ._largefiles import LARGE_FILE, LargeFiles
from ._reading import FileChunks, FileSkipped, Prefetcher, read_into, read_xattrs


@dataclass(frozen=True, slots=True)
class BackupOptions:
    """What to back up and how."""

    paths: Sequence[Path]
    tags: Sequence[str] = ()
    excludes: Sequence[str] = ()
    """gitignore-style patterns, matched against paths relative to each backup root."""
    exclude_files: Sequence[Path] = ()
    one_file_system: bool = False
    compression: int | None = None
    """zstd level, 0 for off, None for the store's default."""
    host: str | None = None
    parent: str | None = None
    """Snapshot reference to compare against; None picks the latest with the same paths."""


@dataclass
class BackupSummary:
    """What a backup did; the keys of ``shadowvault backup --json``."""

    snapshot_id: str = ""
    parent: str | None = None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unmodified: int = 0
    bytes_processed: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict[str, object]:
        """The subset kept in the snapshot record."""
        return {
            "files_new": self.files_new,
            "files_changed": self.files_changed,
            "files_unmodified": self.files_unmodified,
            "dirs_new": self.dirs_new,
            "dirs_changed": self.dirs_changed,
            "dirs_unmodified": self.dirs_unmodified,
            "bytes_processed": self.bytes_processed,
            "bytes_added": self.bytes_added,
            "bytes_stored": self.bytes_stored,
            "duration_s": self.duration_s,
            "warnings": len(self.warnings),
        }


class BackupProgress(Protocol):
    """Receives progress; the library never prints."""

    def file_done(self, files: int, bytes_done: int, path: str) -> None: ...


class BackupError(RepoError):
    """The backup could not start (a missing path, a bad pattern file)."""


_PROGRESS_EVERY = 0.25
"""Seconds between progress reports while the walk waits for big files."""

_MAX_PENDING_NODES = 50_000
"""Directory entries the walk may hold while trees wait for chunks (~25 MB of nodes)."""


@dataclass
class _LargeFile:
    """A file handed to the big-file thread, until its chunks are known."""

    path: bytes
    node: Node
    done: Future[str | None]
    is_new: bool


@dataclass
class _DirJob:
    node: Node
    children: list[Node]
    parent_node: Node | None
    ready_at: int
    """Pipeline sequence number after which every small child's chunks are known."""
    large: list[_LargeFile]
    """Children on the big-file thread: the tree waits for each to be done."""

    def ready(self, completed: int) -> bool:
        return self.ready_at <= completed and all(f.done.done() for f in self.large)


def _stat_node(name: bytes, st: os.stat_result) -> Node:
    node = Node(
        name=name,
        type=FILE,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
    )
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        node.link_group = f"{st.st_dev}:{st.st_ino}".encode()
    return node


def _load_excludes(opts: BackupOptions) -> pathspec.GitIgnoreSpec | None:
    lines = list(opts.excludes)
    for path in opts.exclude_files:
        try:
            lines.extend(path.read_text(encoding="utf-8").splitlines())
        except OSError as exc:
            raise BackupError(f"cannot read exclude file {path}: {exc.strerror}") from exc
    lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError) as exc:
        raise BackupError(f"bad exclude pattern: {exc}") from exc


class _Backup:
    """One run of a backup (the walk's state)."""

    def __init__(
        self,
        repo: Repository,
        opts: BackupOptions,
        pipeline: ChunkPipeline,
        large: LargeFiles,
        write_tree: Callable[[bytes], BlobId],
        progress: BackupProgress | None,
    ) -> None:
        self.repo = repo
        self.opts = opts
        self.pipeline = pipeline
        self.large = large
        self.large_pending: dict[int, _LargeFile] = {}
        """Big files submitted, by id() of their node, until their directory takes them."""
        self.write_tree = write_tree
        self.progress = progress
        self.summary = BackupSummary()
        self.excludes = _load_excludes(opts)
        self.chunker = repo.new_chunker()
        self.pending_dirs: deque[_DirJob] = deque()
        self.pending_nodes = 0
        """Entries in ``pending_dirs``: bounded, so a slow big file cannot hold the walk."""
        self.prefetch = Prefetcher(self.chunker.params.min_size, repo.dedup_key)
        self.files_done = 0
        self.last_path = ""
        self._root_dev = 0
        self._root_path = b""

    def warn(self, path: bytes, message: str) -> None:
        self.summary.warnings.append(f"{os.fsdecode(path)}: {message}")

    # -- trees -------------------------------------------------------------------------

    def children_of(self, parent: Node | None) -> dict[bytes, Node]:
        if parent is None or parent.type != DIR or parent.subtree is None:
            return {}
        try:
            return {n.name: n for n in load_tree(self.repo, parent.subtree)}
        except RepoError:
            return {}  # a damaged parent only costs re-reading; check reports it

    def finish_ready_dirs(self) -> None:
        """Store the tree of every walked directory whose children's chunks are known."""
        while self.pending_dirs:
            head = self.pending_dirs[0]
            if not head.ready(self.pipeline.completed):
                if self.pending_nodes <= _MAX_PENDING_NODES:
                    return
                # Far ahead of a big file: wait for it rather than hold the walk in memory.
                for item in head.large:
                    self.wait_large(item.done)
                if head.ready_at > self.pipeline.completed:
                    self.pipeline.flush()
            self.pending_dirs.popleft()
            self.pending_nodes -= len(head.children)
            self._finish_dir(head)

    def wait_large(self, done: Future[str | None]) -> None:
        """Wait for a big file, reporting progress meanwhile: the progress callback is
        where a cancel is noticed (it raises), and a big file can take minutes."""
        while not done.done():
            if self.progress is not None:
                self.progress.file_done(
                    self.files_done, self.summary.bytes_processed, self.last_path
                )
            try:
                done.exception(timeout=_PROGRESS_EVERY)
            except TimeoutError:
                continue

    def wait_all_large(self) -> None:
        """Wait for every big file handed out (the walk is over)."""
        for job in self.pending_dirs:
            for item in job.large:
                self.wait_large(item.done)

    def large_done(self, item: _LargeFile) -> bool:
        """Take the outcome of a big file (done): False if it was skipped."""
        try:
            warning = item.done.result()
        except FileSkipped as skip:
            self.warn(item.path, str(skip))
            if item.is_new:
                self.summary.files_new -= 1
            else:
                self.summary.files_changed -= 1
            return False
        if warning is not None:
            self.warn(item.path, warning)
        return True

    def _finish_dir(self, job: _DirJob) -> None:
        skipped = {id(f.node) for f in job.large if not self.large_done(f)}
        if skipped:
            job.children = [c for c in job.children if id(c) not in skipped]
        job.node.subtree = self.write_tree(encode_tree(job.children))
        old = job.parent_node
        if old is None or old.type != DIR:
            self.summary.dirs_new += 1
        elif old.subtree == job.node.subtree:
            self.summary.dirs_unmodified += 1
        else:
            self.summary.dirs_changed += 1

    # -- entries -----------------------------------------------------------------------

    def excluded(self, rel: str, is_dir: bool) -> bool:
        if self.excludes is None:
            return False
        return self.excludes.match_file(rel + "/" if is_dir else rel)

    def entry(
        self, path: bytes, name: bytes, st: os.stat_result, old: Node | None, rel: str
    ) -> Node | None:
        """Back up one filesystem object; None if it is skipped."""
        node = _stat_node(name, st)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            self.file(path, node, st, old)  # reads xattrs itself, off this thread if it can
            return node
        node.xattrs = read_xattrs(path)
        if stat.S_ISDIR(mode):
            node.type = DIR
            self.directory(path, node, st, old, rel)
        elif stat.S_ISLNK(mode):
            node.type = SYMLINK
            try:
                node.target = os.readlink(path)
            except OSError as exc:
                self.warn(path, f"cannot read link: {exc.strerror}")
                return None
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            node.type = "c" if stat.S_ISCHR(mode) else "b"
            node.rdev = st.st_rdev
        elif stat.S_ISFIFO(mode):
            node.type = "p"
        elif stat.S_ISSOCK(mode):
            node.type = "s"
        else:
            self.warn(path, "unknown file type, skipped")
            return None
        return node

    def file(self, path: bytes, node: Node, st: os.stat_result, old: Node | None) -> None:
        self.summary.bytes_processed += st.st_size
        node.size = st.st_size
        if _unchanged(old, st):
            assert old is not None
            node.chunks = list(old.chunks)
            # Setting an xattr changes the ctime, so an unchanged ctime means the same
            # xattrs: no listxattr for the thousands of unchanged files.
            node.xattrs = old.xattrs
            self.summary.files_unmodified += 1
        else:
            is_new = old is None or old.type != FILE
            if st.st_size > LARGE_FILE:
                done = self.large.submit(path, node, st)
                self.large_pending[id(node)] = _LargeFile(path, node, done, is_new)
            else:
                chunks = FileChunks()
                ahead = self.prefetch.take(path)
                warning = read_into(path, node, st, self.pipeline, self.chunker, chunks, ahead)
                if warning is not None:
                    self.warn(path, warning)
            if is_new:
                self.summary.files_new += 1
            else:
                self.summary.files_changed += 1
        self.files_done += 1
        self.last_path = os.fsdecode(path)
        if self.progress is not None:
            self.progress.file_done(self.files_done, self.summary.bytes_processed, self.last_path)

    def directory(
        self, path: bytes, node: Node, st: os.stat_result, old: Node | None, rel: str
    ) -> None:
        children: list[Node] = []
        old_children = self.children_of(old)
        descend = not (self.opts.one_file_system and st.st_dev != self._root_dev)
        if descend:
            try:
                with os.scandir(path) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.warn(path, f"cannot list directory: {exc.strerror}")
                entries = []
            listed = []
            for entry in entries:
                child_rel = f"{rel}/{os.fsdecode(entry.name)}" if rel else os.fsdecode(entry.name)
                try:
                    child_st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    self.warn(entry.path, "vanished")
                    continue
                except OSError as exc:
                    self.warn(entry.path, f"cannot stat: {exc.strerror}")
                    continue
                if self.excluded(child_rel, stat.S_ISDIR(child_st.st_mode)):
                    continue
                listed.append((entry, child_st, child_rel))
            # Files first, then subdirectories: the files read ahead below are then
            # consumed before the walk goes deeper.
            listed.sort(key=lambda item: stat.S_ISDIR(item[1].st_mode))
            self.prefetch.schedule(
                (entry.path, child_st.st_size)
                for entry, child_st, _ in listed
                if stat.S_ISREG(child_st.st_mode)
                and child_st.st_size <= LARGE_FILE
                and not _unchanged(old_children.get(entry.name), child_st)
            )
            for entry, child_st, child_rel in listed:
                try:
                    child = self.entry(
                        entry.path, entry.name, child_st, old_children.get(entry.name), child_rel
                    )
                except FileSkipped as skip:
                    self.warn(entry.path, str(skip))
                    continue
                if child is not None:
                    children.append(child)
        large = [self.large_pending.pop(id(c)) for c in children if id(c) in self.large_pending]
        self.pending_dirs.append(_DirJob(node, children, old, self.pipeline.pending_seq(), large))
        self.pending_nodes += len(children)
        self.finish_ready_dirs()

    def top(self, path: Path, old: Node | None) -> Node | None:
        """Back up one of the given paths; None (with a warning) if it cannot be read."""
        raw = os.fsencode(path)
        try:
            st = os.lstat(raw)
        except OSError as exc:
            self.warn(raw, "vanished" if isinstance(exc, FileNotFoundError) else str(exc.strerror))
            return None
        self._root_dev = st.st_dev
        try:
            node = self.entry(raw, os.fsencode(path.name), st, old, "")
        except FileSkipped as skip:
            self.warn(raw, str(skip))
            return None
        item = self.large_pending.pop(id(node), None)
        if item is not None:
            # A big file given by name: its node is only complete once its chunks are.
            self.wait_large(item.done)
            if not self.large_done(item):
                return None
        return node


def _unchanged(old: Node | None, st: os.stat_result) -> bool:
    """The files cache: same size, mtime, ctime and inode as in the parent snapshot."""
    return (
        old is not None
        and old.type == FILE
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
        and old.ctime_ns == st.st_ctime_ns
        and old.inode == st.st_ino
    )


@dataclass
class _ChainDir:
    """A directory on the way from / to a backed-up path, recorded but not walked."""

    node: Node
    children: dict[bytes, _ChainDir | Node] = field(default_factory=dict)

    def chain(self, path: Path) -> _ChainDir:
        """The chain directory that will hold ``path`` (created along the way)."""
        here = self
        current = Path("/")
        for part in path.parts[1:-1]:
            name = os.fsencode(part)
            current = current / part
            child = here.children.get(name)
            if not isinstance(child, _ChainDir):
                # stat, not lstat: a symlinked parent (/var/run) is recorded as the
                # directory it leads to, not as a 0777 link.
                node = _stat_node(name, os.stat(current))
                node.type = DIR
                child = here.children[name] = _ChainDir(node)
            here = child
        return here

    def store(self, write_tree: Callable[[bytes], BlobId]) -> BlobId:
        """Store this directory's tree (children first); returns its id."""
        nodes = []
        for child in self.children.values():
            if isinstance(child, _ChainDir):
                child.node.subtree = child.store(write_tree)
                nodes.append(child.node)
            else:
                nodes.append(child)
        return write_tree(encode_tree(nodes))


def _pick_parent(
    repo: Repository, opts: BackupOptions, host: str, paths: list[str]
) -> Snapshot | None:
    snaps = list_snapshots(repo)
    if opts.parent:
        return resolve_snapshot(repo, opts.parent, snaps)
    same = [s for s in snaps if s.host == host and sorted(s.paths) == paths]
    return same[-1] if same else None


def _descend(repo: Repository, tree: BlobId | None, names: list[bytes]) -> list[Node | None]:
    """Nodes along ``names`` in a parent snapshot (None where absent)."""
    out: list[Node | None] = []
    for name in names:
        node = None
        if tree is not None:
            try:
                node = next((n for n in load_tree(repo, tree) if n.name == name), None)
            except RepoError:
                node = None
        out.append(node)
        tree = node.subtree if node is not None and node.type == DIR else None
    return out


def run_backup(
    repo: Repository, opts: BackupOptions, progress: BackupProgress | None = None
) -> BackupSummary:
    """Back up ``opts.paths`` into a new snapshot.

    Returns:
        The summary; ``summary.warnings`` lists files that could not be backed up.

    Raises:
        BackupError: a path is missing or an exclude file unreadable (nothing written).
        StoreFull, RepoError: the store failed; no snapshot was recorded.
    """
    started = time.monotonic()
    if not opts.paths:
        raise BackupError("nothing to back up: give at least one path")
    abs_paths = []
    for p in opts.paths:
        ap = Path(os.path.abspath(p))
        try:
            os.lstat(ap)
        except FileNotFoundError:
            raise BackupError(f"{p}: no such file or directory; nothing was backed up") from None
        except OSError as exc:
            raise BackupError(f"{p}: {exc.strerror}; nothing was backed up") from None
        abs_paths.append(ap)
    # A path inside another given path is already part of that one's tree.
    abs_paths = sorted(set(abs_paths))
    abs_paths = [p for p in abs_paths if not any(q in p.parents for q in abs_paths)]
    host = opts.host or socket.gethostname()
    path_strs = [str(p) for p in abs_paths]
    level = repo.default_compression if opts.compression is None else opts.compression
    stats = ChunkStats()

    with repo.store.writer() as writer:
        parent = _pick_parent(repo, opts, host, sorted(path_strs))
        # Unchanged files keep the parent's chunk lists without a dedup look-up: pin the
        # parent so that a gc running now keeps everything it reaches. If a forget took
        # it already, back up without one.
        if parent is not None and parent.id is not None and not writer.pin_snapshot(parent.id):
            parent = None
        seal_pool = new_seal_pool()  # shared by the walk's pipeline and the big files'
        pipeline = ChunkPipeline(repo, writer, level, seal_pool)
        large = LargeFiles(repo, writer, level, seal_pool)
        run = _Backup(
            repo,
            opts,
            pipeline,
            large,
            lambda pt: store_tree(repo, writer, pt, level, stats),
            progress,
        )
        root = _ChainDir(Node(name=b"", type=DIR))
        try:
            for ap in abs_paths:
                parts = [os.fsencode(x) for x in ap.parts[1:]]
                if not parts:
                    raise BackupError("backing up / itself is not supported; name its directories")
                olds = _descend(repo, parent.tree if parent else None, parts)
                holder = root.chain(ap)
                top_node = run.top(ap, olds[-1])
                if top_node is not None:
                    holder.children[parts[-1]] = top_node
            pipeline.flush()
            run.wait_all_large()
            large.close()
            run.finish_ready_dirs()
            if run.pending_dirs:  # every chunk is known by now: a bug if not
                raise RepoError("backup: directories left without their trees; nothing saved")
        except BaseException:
            large.abort()  # a cancel or Ctrl-C must not wait for every big file queued
            raise
        finally:
            run.prefetch.close()
            try:
                large.close()
            finally:
                try:
                    pipeline.finish()
                finally:
                    seal_pool.shutdown(wait=True, cancel_futures=True)

        root_tree = root.store(lambda plain: store_tree(repo, writer, plain, level, stats))
        summary = run.summary
        summary.bytes_added = (
            pipeline.stats.bytes_added + large.stats.bytes_added + stats.bytes_added
        )
        summary.bytes_stored = (
            pipeline.stats.bytes_stored + large.stats.bytes_stored + stats.bytes_stored
        )
        # Every blob the snapshot names is durable before the record is written.
        writer.flush()
        summary.duration_s = round(time.monotonic() - started, 3)
        summary.parent = str(parent.id) if parent and parent.id else None
        snap = Snapshot(
            time_ns=time.time_ns(),
            host=host,
            paths=path_strs,
            tree=root_tree,
            tags=sorted(set(opts.tags)),
            parent=summary.parent,
            summary=summary.record(),
        )
        summary.snapshot_id = str(save_snapshot(repo, writer, snap))
    return summary
