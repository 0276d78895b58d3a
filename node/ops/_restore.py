"""Restore: write a snapshot (or part of it) into a target directory.

Safety first: a snapshot's trees are untrusted input. Names are validated when trees
are decoded (one component, never ``.``/``..``, no ``/`` or NUL), and every file system
call is made relative to a directory file descriptor opened with ``O_NOFOLLOW``, so
neither a hostile name nor a symlink (planted earlier in the same restore, or already
in the target) can make a write land outside the target.

Files are written by two worker threads (decrypting and decompressing release the
GIL); directories are created by the walking thread before their files are queued, and
their modes and times are set last, deepest first, because writing into a directory
changes its mtime. A damaged blob fails only the files that use it; each is named.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import blake3

from node.repo import (
    DIR,
    FILE,
    SYMLINK,
    Node,
    RepoError,
    Repository,
    Snapshot,
    append_audit,
    load_tree,
)
from protocol import BlobId

if TYPE_CHECKING:
    import pathspec

WRITERS = 2
"""Files written at once."""
_GROUP_FILES = 16
_GROUP_BYTES = 1024 * 1024
"""Files go to the writers in groups of up to 16 files or 1 MiB: one task per file cost
the walking thread a submit, a future and a wake-up for each of thousands of small files."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    """What to restore and how."""

    target: Path
    includes: Sequence[str] = ()
    """gitignore-style patterns on snapshot paths (e.g. ``home/ann/*.txt``); empty = all."""
    excludes: Sequence[str] = ()
    overwrite: bool = False
    verify: bool = False


@dataclass
class RestoreSummary:
    """What a restore did."""

    files: int = 0
    dirs: int = 0
    links: int = 0
    bytes_written: int = 0
    skipped_existing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Things restored incompletely but not failed (xattrs the target cannot hold)."""
    verified: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.skipped_existing


class RestoreProgress(Protocol):
    def file_done(self, files: int, bytes_done: int, path: str) -> None: ...


class RestoreError(RepoError):
    """The restore could not start (bad target, bad pattern)."""


@dataclass
class _FileJob:
    dir_fd: int
    node: Node
    path: str
    digest: bytes = b""


def _current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race with threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


class _Exists(Exception):
    """The file exists and ``overwrite`` is off."""


class _DirHandle:
    """A directory fd shared by the jobs writing into it; closed when the last one ends."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 1

    def retain(self) -> None:
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            os.close(self.fd)


def _matcher(patterns: Sequence[str]) -> pathspec.GitIgnoreSpec | None:
    lines = [p for p in patterns if p.strip()]
    if not lines:
        return None
    import pathspec  # 15-20 ms to import: only a restore with --include/--exclude needs it

    return pathspec.GitIgnoreSpec.from_lines(lines)


class _Restorer:
    def __init__(
        self,
        repo: Repository,
        opts: RestoreOptions,
        progress: RestoreProgress | None,
    ) -> None:
        self.repo = repo
        self.opts = opts
        self.progress = progress
        self.summary = RestoreSummary()
        self.include = _matcher(opts.includes)
        self.exclude = _matcher(opts.excludes)
        self.links: dict[bytes, tuple[_DirHandle, bytes, str]] = {}
        self.dir_meta: list[tuple[_DirHandle, bytes, Node]] = []
        # File creation is latency-bound (openat takes 0.1-0.4 ms on these VMs), and
        # decrypting and decompressing release the GIL: more writers than cores pays.
        self.pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="sv-restore")
        self.leaves_taken = 0
        """Non-directory entries selected so far (only ever grows)."""
        self.group: list[tuple[_FileJob, _DirHandle]] = []
        """Files waiting to go to a writer together (``submit_group``)."""
        self.group_bytes = 0
        self.futures: deque[tuple[Future[list[int | Exception]], int, _FileJob, _DirHandle]]
        self.futures = deque()
        """Each file handed to a writer: its group's future and its index in the group."""
        self.is_root = os.geteuid() == 0
        self.ids = (os.geteuid(), os.getegid())
        self.umask = _current_umask()
        self.written: list[_FileJob] = []
        self.verify_handles: list[_DirHandle] = []

    # -- selection ---------------------------------------------------------------------

    def selected(self, rel: str, is_dir: bool, included: bool) -> bool | None:
        """True: take it. False: skip it. None (dirs only): descend to look for matches.

        ``included`` means an ancestor already matched an include pattern; excludes
        still apply below it.
        """
        probe = rel + "/" if is_dir else rel
        if self.exclude is not None and self.exclude.match_file(probe):
            return False
        if included or self.include is None or self.include.match_file(probe):
            return True
        return None if is_dir else False

    # -- walking ------------------------------------------------------------------------

    def restore_tree(self, handle: _DirHandle, tree_id: bytes, rel: str, include_all: bool) -> None:
        nodes = load_tree(self.repo, BlobId(tree_id))
        for node in nodes:
            child_rel = f"{rel}/{os.fsdecode(node.name)}" if rel else os.fsdecode(node.name)
            choice = self.selected(child_rel, node.type == DIR, included=include_all)
            if choice is False:
                continue
            if node.type == DIR:
                self.restore_dir(handle, node, child_rel, include_all=choice is True)
            elif choice:
                self.leaves_taken += 1
                self.restore_leaf(handle, node, child_rel)

    def restore_dir(self, parent: _DirHandle, node: Node, rel: str, include_all: bool) -> None:
        assert node.subtree is not None
        try:
            fd = self.make_dir(parent.fd, node.name)
        except OSError as exc:
            self.error(rel, f"cannot create directory: {exc.strerror}")
            return
        handle = _DirHandle(fd)
        try:
            self.set_xattrs(fd, node, rel)
            before = self.leaves_taken
            try:
                self.restore_tree(handle, bytes(node.subtree), rel, include_all)
            except RepoError as exc:
                self.error(rel, str(exc))
        finally:
            handle.release()  # the walk's own reference; the writers hold theirs
        # Whatever became of them (written, skipped as existing, failed), entries were
        # selected in here: the directory stays and gets its metadata.
        used = include_all or self.leaves_taken > before
        if not used:
            # Only searched for included paths and found none: leave no empty directory.
            with contextlib.suppress(OSError):
                os.rmdir(node.name, dir_fd=parent.fd)
            return
        self.summary.dirs += 1
        parent.retain()
        self.dir_meta.append((parent, node.name, node))

    def make_dir(self, parent_fd: int, name: bytes) -> int:
        """Create (or reuse a real) directory and open it without following symlinks."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OSError(
                    exc.errno, "exists and is not a directory (refusing to follow it)"
                ) from exc
            raise

    def restore_leaf(self, handle: _DirHandle, node: Node, rel: str) -> None:
        if node.link_group and node.link_group in self.links:
            self.wait_for(self.links[node.link_group][2])  # may drop a failed first name
        first_link = node.link_group and node.link_group not in self.links
        if node.type == FILE and (first_link or not node.link_group):
            # Regular files check for an existing entry in the worker, by O_EXCL: one
            # syscall instead of a stat here for each of thousands of small files.
            self.submit_file(handle, node, rel)
            return
        try:
            existing = os.stat(node.name, dir_fd=handle.fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if not self.opts.overwrite:
                self.summary.skipped_existing.append(rel)
                return
            if stat.S_ISDIR(existing.st_mode):
                self.error(rel, "a directory is in the way; not replaced")
                return
        if node.link_group and node.link_group in self.links:
            first_handle, first_name, _ = self.links[node.link_group]
            try:
                if existing is not None:
                    os.unlink(node.name, dir_fd=handle.fd)
                os.link(
                    first_name,
                    node.name,
                    src_dir_fd=first_handle.fd,
                    dst_dir_fd=handle.fd,
                    follow_symlinks=False,
                )
                self.summary.links += 1
            except OSError as exc:
                self.error(rel, f"cannot create hard link: {exc.strerror}")
            return
        if node.type == SYMLINK:
            try:
                if existing is not None:
                    os.unlink(node.name, dir_fd=handle.fd)
                os.symlink(node.target, node.name, dir_fd=handle.fd)
                self.set_meta(handle.fd, node, is_link=True)
                self.summary.files += 1
            except OSError as exc:
                self.error(rel, f"cannot create symlink: {exc.strerror}")
        else:
            self.restore_special(handle, node, rel, existing is not None)

    def submit_file(self, handle: _DirHandle, node: Node, rel: str) -> None:
        job = _FileJob(handle.fd, node, rel)
        handle.retain()
        if self.opts.verify:
            handle.retain()  # kept open for the verify pass
            self.verify_handles.append(handle)
        if node.link_group:
            handle.retain()
            self.links[node.link_group] = (handle, node.name, rel)
        self.group.append((job, handle))
        self.group_bytes += node.size
        if len(self.group) >= _GROUP_FILES or self.group_bytes >= _GROUP_BYTES:
            self.submit_group()

    def submit_group(self) -> None:
        """Hand the files collected so far to a writer, as one task."""
        if not self.group:
            return
        group, self.group, self.group_bytes = self.group, [], 0
        future = self.pool.submit(self.write_files, [job for job, _ in group])
        for index, (job, handle) in enumerate(group):
            self.futures.append((future, index, job, handle))
        self.drain(64)

    def restore_special(self, handle: _DirHandle, node: Node, rel: str, exists: bool) -> None:
        kinds = {"p": stat.S_IFIFO, "c": stat.S_IFCHR, "b": stat.S_IFBLK}
        if node.type == "s":
            return  # a socket is recreated by its server, never by a restore
        if node.type in ("c", "b") and not self.is_root:
            self.error(rel, "device files can only be restored as root")
            return
        try:
            if exists:
                os.unlink(node.name, dir_fd=handle.fd)
            os.mknod(node.name, kinds[node.type] | 0o600, node.rdev, dir_fd=handle.fd)
            self.set_meta(handle.fd, node, is_link=False)
            self.summary.files += 1
        except OSError as exc:
            self.error(rel, f"cannot create special file: {exc.strerror}")

    # -- file contents (worker threads) ------------------------------------------------------

    def write_files(self, jobs: list[_FileJob]) -> list[int | Exception]:
        """Write a group of files (worker thread); per file its size or its error."""
        out: list[int | Exception] = []
        for job in jobs:
            try:
                out.append(self.write_file(job))
            except Exception as exc:  # reported per file by ``drain``
                out.append(exc)
        return out

    def write_file(self, job: _FileJob) -> int:
        """Write one file (worker thread): straight into place if the name is free,
        else, with ``overwrite``, into a temporary name renamed over the old entry (which
        replaces a symlink instead of writing through it)."""
        node = job.node
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        name = node.name
        try:
            fd = os.open(name, flags, node.mode & 0o777, dir_fd=job.dir_fd)
            temp = False
        except FileExistsError:
            if not self.opts.overwrite:
                raise _Exists() from None
            if stat.S_ISDIR(os.stat(name, dir_fd=job.dir_fd, follow_symlinks=False).st_mode):
                raise RepoError("a directory is in the way; not replaced") from None
            name = b".sv-restore-" + os.urandom(6).hex().encode()
            fd = os.open(name, flags, node.mode & 0o777, dir_fd=job.dir_fd)
            temp = True
        hasher = blake3.blake3() if self.opts.verify else None
        written = 0
        try:
            try:
                for chunk_id in node.chunks:
                    data = self.repo.load(chunk_id)
                    if hasher is not None:
                        hasher.update(data)
                    view = memoryview(data)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    written += len(data)
                if written != node.size:
                    raise RepoError(f"has {written} bytes, the snapshot says {node.size}")
                self.set_xattrs(fd, node, job.path)
                self.set_meta(fd, node, is_link=False, fd_based=True)
            finally:
                os.close(fd)
            if temp:
                os.rename(name, node.name, src_dir_fd=job.dir_fd, dst_dir_fd=job.dir_fd)
        except BaseException:
            # Never leave a partial file that looks restored.
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=job.dir_fd)
            raise
        if hasher is not None:
            job.digest = hasher.digest()
        return written

    def set_xattrs(self, fd: int, node: Node, rel: str) -> None:
        """Set a file's or directory's extended attributes through its open fd."""
        for name, value in node.xattrs.items():
            try:
                os.setxattr(fd, name, value)
            except OSError as exc:
                self.summary.warnings.append(
                    f"{rel}: extended attribute {name.decode(errors='replace')} not "
                    f"restored: {exc.strerror}"
                )

    def set_meta(
        self, fd_or_dir: int, node: Node, *, is_link: bool, fd_based: bool = False
    ) -> None:
        if fd_based:
            # Each skipped syscall is ~10 us over tens of thousands of small files.
            chowned = self.is_root and (node.uid, node.gid) != self.ids
            if chowned:
                os.fchown(fd_or_dir, node.uid, node.gid)  # clears setuid/setgid: chmod after
            if chowned or node.mode & ~self.umask != node.mode or node.mode & 0o7000:
                os.fchmod(fd_or_dir, node.mode)
            os.utime(fd_or_dir, ns=(node.mtime_ns, node.mtime_ns))
            return
        if self.is_root:
            os.chown(node.name, node.uid, node.gid, dir_fd=fd_or_dir, follow_symlinks=False)
        if not is_link:
            os.chmod(node.name, node.mode, dir_fd=fd_or_dir)
        os.utime(
            node.name,
            ns=(node.mtime_ns, node.mtime_ns),
            dir_fd=fd_or_dir,
            follow_symlinks=False,
        )

    def drain(self, limit: int) -> None:
        while len(self.futures) > limit:
            future, index, job, handle = self.futures.popleft()
            try:
                n = future.result()[index]
                if isinstance(n, Exception):
                    raise n
                self.summary.files += 1
                self.summary.bytes_written += n
                self.written.append(job)
                if self.progress is not None:
                    self.progress.file_done(
                        self.summary.files, self.summary.bytes_written, job.path
                    )
            except _Exists:
                self.summary.skipped_existing.append(job.path)
                self.forget_link(job)
            except (RepoError, OSError) as exc:
                self.error(job.path, str(exc) if isinstance(exc, RepoError) else exc.strerror)
                self.forget_link(job)
            finally:
                handle.release()

    def forget_link(self, job: _FileJob) -> None:
        """A hard link's first name was not written: later names must not link to it."""
        group = job.node.link_group
        entry = self.links.get(group) if group else None
        if entry is not None and entry[2] == job.path:
            del self.links[group]
            entry[0].release()

    def wait_for(self, rel: str) -> None:
        """Block until the file at ``rel`` (a hard link's first name) is written."""
        self.submit_group()
        while any(job.path == rel for _, _, job, _ in self.futures):
            self.drain(len(self.futures) - 1)

    def error(self, rel: str, message: str | None) -> None:
        self.summary.errors.append(f"{rel}: {message}")

    def abort(self) -> None:
        """Stop after an error or a cancel: drop the writes not started, wait for those
        running, and close every directory fd this restore still holds."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        handles = [h for _, _, _, h in self.futures] + [h for _, h in self.group]
        handles += [h for h, _, _ in self.links.values()] + [p for p, _, _ in self.dir_meta]
        self.futures.clear()
        self.group, self.links, self.dir_meta = [], {}, []
        for handle in handles:
            handle.release()

    def finish(self) -> None:
        self.submit_group()
        self.drain(0)
        self.pool.shutdown(wait=True)
        # Each handle is released once: what is released here leaves the lists, so an
        # ``abort`` after a failure here cannot release it again.
        links, self.links = self.links, {}
        for handle, _, _ in links.values():
            handle.release()
        while self.dir_meta:
            parent, name, node = self.dir_meta.pop()  # deepest first
            try:
                self.set_meta(parent.fd, node, is_link=False)
            except OSError as exc:
                self.error(os.fsdecode(name), f"cannot set directory metadata: {exc.strerror}")
            finally:
                parent.release()

    def verify(self) -> None:
        """Re-read every written file and compare its hash with what was restored."""
        for job in self.written:
            hasher = blake3.blake3()
            try:
                fd = os.open(job.node.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=job.dir_fd)
            except OSError as exc:
                self.error(job.path, f"verify: {exc.strerror}")
                continue
            try:
                while block := os.read(fd, 1 << 20):
                    hasher.update(block)
            finally:
                os.close(fd)
            if hasher.digest() != job.digest:
                self.error(job.path, "verify: the restored bytes differ from the snapshot")
            else:
                self.summary.verified += 1


def run_restore(
    repo: Repository,
    snap: Snapshot,
    opts: RestoreOptions,
    progress: RestoreProgress | None = None,
) -> RestoreSummary:
    """Restore ``snap`` into ``opts.target`` (created if missing).

    Returns:
        The summary; ``summary.errors`` names each file that failed, and
        ``summary.skipped_existing`` each file left alone without ``overwrite``.

    Raises:
        RestoreError: the target is unusable or a pattern is invalid.
    """
    try:
        opts.target.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(opts.target, _DIR_FLAGS)
    except OSError as exc:
        raise RestoreError(f"target {opts.target}: {exc.strerror}") from exc
    restorer = _Restorer(repo, opts, progress)
    root = _DirHandle(root_fd)
    try:
        try:
            restorer.restore_tree(root, bytes(snap.tree), "", include_all=not opts.includes)
        except RepoError as exc:
            restorer.error("/", str(exc))
        restorer.finish()
        if opts.verify:
            restorer.verify()
    except BaseException:
        restorer.abort()
        raise
    finally:
        for handle in restorer.verify_handles:
            handle.release()
        root.release()
        # Restores are security-relevant (data leaves the store): always logged.
        append_audit(
            repo,
            "restore",
            {
                "snapshot": str(snap.id) if snap.id else None,
                "target": str(opts.target),
                "includes": list(opts.includes),
                "errors": len(restorer.summary.errors),
            },
        )
    return restorer.summary
