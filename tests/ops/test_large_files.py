"""Big files go through their own thread and pipeline (``node.ops._largefiles``).

Each test mixes big files with small ones in nested directories, so that trees wait for
chunks from both pipelines, and checks what a user sees: the restored bytes, the summary's
counts, the warnings, and a store that checks clean even after a full disk.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from node.ops import BackupOptions, BackupSummary, RestoreOptions, run_backup, run_restore
from node.ops._largefiles import LARGE_FILE
from node.repo import (
    ChunkerParams,
    HomePaths,
    StoreFull,
    check_store,
    list_snapshots,
    open_repository,
    resolve_snapshot,
)
from tests.ops.helpers import make_repo, tree_state
from tests.repo.conftest import tmpfs as tmpfs


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def noise(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def make_tree(src: Path) -> None:
    """Small and big files side by side, a duplicate big file, big files deep down."""
    write(src / "a-small.txt", b"small " * 100)
    write(src / "b-big.bin", noise(1, LARGE_FILE + 1))
    write(src / "c-text.log", b"a log line that compresses well\n" * 120_000)  # ~3.8 MB
    write(src / "d" / "e" / "huge.bin", noise(2, 9 * 1024 * 1024))  # streamed, not read whole
    write(src / "d" / "copy-of-b.bin", noise(1, LARGE_FILE + 1))
    for i in range(40):
        write(src / "d" / "many" / f"f{i:02}.txt", f"file {i}\n".encode() * (i + 1))
    write(src / "z-empty", b"")


def restore_latest(repo, target: Path) -> None:
    result = run_restore(repo, resolve_snapshot(repo, "latest"), RestoreOptions(target=target))
    assert result.errors == [] and result.warnings == []


def test_big_and_small_files_round_trip_and_back_up_incrementally(tmp_path: Path, repo) -> None:
    src = tmp_path / "src"
    make_tree(src)
    first = run_backup(repo, BackupOptions(paths=[src]))
    assert first.warnings == []
    assert first.files_new == 46
    # Small files' dedup keys are computed by the read-ahead threads: the index must
    # know each one's content under the key a later backup computes for it.
    for small in (src / "d" / "many").iterdir():
        assert repo.store.lookup_dedup(repo.dedup_key(small.read_bytes())) is not None
    restore_latest(repo, tmp_path / "r1")
    assert tree_state(tmp_path / "r1" / str(src).lstrip("/")) == tree_state(src)

    # Change one big file deep down and one small file: only those are read again.
    write(src / "d" / "e" / "huge.bin", noise(3, 9 * 1024 * 1024))
    write(src / "d" / "many" / "f07.txt", b"changed")
    second = run_backup(repo, BackupOptions(paths=[src]))
    assert (second.files_changed, second.files_new, second.files_unmodified) == (2, 0, 44)
    restore_latest(repo, tmp_path / "r2")
    assert tree_state(tmp_path / "r2" / str(src).lstrip("/")) == tree_state(src)
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]


def test_big_file_given_by_name(tmp_path: Path, repo) -> None:
    big = tmp_path / "src" / "only.bin"
    write(big, noise(4, 2 * LARGE_FILE))
    summary = run_backup(repo, BackupOptions(paths=[big]))
    assert summary.files_new == 1 and summary.warnings == []
    restore_latest(repo, tmp_path / "r")
    assert (tmp_path / "r" / str(big).lstrip("/")).read_bytes() == big.read_bytes()


def test_big_file_that_vanishes_is_a_warning_and_left_out(tmp_path: Path, repo) -> None:
    src = tmp_path / "src"
    make_tree(src)

    class DeleteBig:
        """Deletes the big file after the walk listed it, before the big-file thread reads it."""

        def file_done(self, files: int, bytes_done: int, path: str) -> None:
            if path.endswith("a-small.txt"):
                (src / "b-big.bin").unlink()

    summary = run_backup(repo, BackupOptions(paths=[src]), DeleteBig())
    assert [w.rsplit("/", 1)[-1] for w in summary.warnings] == ["b-big.bin: vanished"]
    assert summary.files_new == 45
    restore_latest(repo, tmp_path / "r")
    assert tree_state(tmp_path / "r" / str(src).lstrip("/")) == tree_state(src)


def test_full_disk_during_big_files_fails_the_backup_and_keeps_the_store(
    tmp_path: Path,
    tmpfs,
) -> None:
    root = tmpfs("12m")
    ballast = root / "ballast"  # what the user deletes to free space
    ballast.write_bytes(b"\x5a" * 2 * 1024 * 1024)
    repo = make_repo(root / "home")
    src = tmp_path / "src"
    for i in range(4):  # 16 MiB that does not compress, on a 12 MiB file system
        write(src / f"big{i}.bin", noise(10 + i, 4 * 1024 * 1024))
        write(src / f"small{i}.txt", b"s" * 100)

    outcome: list[BaseException | BackupSummary] = []

    def backup() -> None:
        try:
            outcome.append(run_backup(repo, BackupOptions(paths=[src])))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=backup, daemon=True)  # a hang fails, not blocks, the suite
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "backup hung after the disk filled up"
    assert isinstance(outcome[0], StoreFull), repr(outcome[0])
    repo.close()

    ballast.unlink()
    reopened = open_repository(HomePaths(root / "home"), "test passphrase")
    try:
        report = check_store(reopened, read_data=True)
        assert report.ok, [str(p) for p in report.problems]
        assert list_snapshots(reopened) == []  # no snapshot names blobs that are not there
    finally:
        reopened.close()


def test_walk_waits_for_big_files_when_far_ahead(tmp_path: Path, repo, monkeypatch) -> None:
    from node.ops import _backup

    monkeypatch.setattr(_backup, "_MAX_PENDING_NODES", 3)  # every directory hits the bound
    src = tmp_path / "src"
    make_tree(src)
    for d in range(6):
        write(src / f"more{d}" / "big.bin", noise(20 + d, LARGE_FILE + 10))
        write(src / f"more{d}" / "x" / "small.txt", b"x" * d)
    summary = run_backup(repo, BackupOptions(paths=[src]))
    assert summary.warnings == [] and summary.files_new == 58
    restore_latest(repo, tmp_path / "r")
    assert tree_state(tmp_path / "r" / str(src).lstrip("/")) == tree_state(src)


def test_cancelled_backup_does_not_read_the_big_files_queued(tmp_path: Path) -> None:
    from node.ops import Cancelled

    repo = make_repo(tmp_path / "home", ChunkerParams())  # 1 MiB chunks: a few per file
    src = tmp_path / "src"
    bigs = [src / f"big{i}.bin" for i in range(6)]
    for i, big in enumerate(bigs):
        write(big, noise(40 + i, 16 * 1024 * 1024))

    class CancelAtLast:
        """Cancels when the walk hands over the last big file: five are queued then."""

        def file_done(self, files: int, bytes_done: int, path: str) -> None:
            if path.endswith("big5.bin"):
                raise Cancelled

    with pytest.raises(Cancelled):
        run_backup(repo, BackupOptions(paths=[src]), CancelAtLast())
    assert list_snapshots(repo) == []
    # The thread was on the first file or two (each takes it tens of ms; the walk queued
    # all six in microseconds): the last ones were dropped, not read.
    chunker = repo.new_chunker()
    for big in bigs[-2:]:
        data = big.read_bytes()
        keys = [repo.dedup_key(c) for c in chunker.chunks_of_buffer(data)]
        assert [k for k in keys if repo.store.lookup_dedup(k) is not None] == []
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    repo.close()


def test_a_store_error_on_a_big_file_fails_the_backup_not_the_file(
    tmp_path: Path, repo, monkeypatch
) -> None:
    # An I/O error of the store while sealing a streamed big file is the store's fault:
    # the backup must fail, not list the file as unreadable and save a snapshot.
    from node.ops import _archiver

    real = _archiver._seal_batch
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        return real(*args, **kwargs)

    monkeypatch.setattr(_archiver, "_seal_batch", failing)
    src = tmp_path / "src"
    write(src / "huge.bin", noise(60, 20 * 1024 * 1024))  # streamed: over 8 MiB
    with pytest.raises(OSError, match="Input/output error"):
        run_backup(repo, BackupOptions(paths=[src]))
    assert list_snapshots(repo) == []


def test_a_big_file_replaced_by_a_fifo_with_a_writer_is_skipped(tmp_path: Path, repo) -> None:
    import os

    src = tmp_path / "src"
    write(src / "a-small.txt", b"small")
    write(src / "b-huge.bin", noise(61, 9 * 1024 * 1024))
    write(src / "c-big.bin", noise(62, 2 * 1024 * 1024))
    stop = threading.Event()

    def endless_writer(fd: int) -> None:
        """Keeps the FIFO full (it holds it open read-write, so a reader never sees EOF)."""
        try:
            while not stop.is_set():
                try:
                    os.write(fd, b"\x00" * 65536)
                except BlockingIOError:
                    stop.wait(0.001)
        finally:
            os.close(fd)

    class ReplaceWithLiveFifo:
        def file_done(self, files: int, bytes_done: int, path: str) -> None:
            if path.endswith("a-small.txt"):
                fifo = src / "b-huge.bin"
                fifo.unlink()
                os.mkfifo(fifo)
                fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
                os.write(fd, b"\x00" * 4096)  # data waiting before the backup opens it
                threading.Thread(target=endless_writer, args=(fd,), daemon=True).start()

    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(
            run_backup(repo, BackupOptions(paths=[src]), ReplaceWithLiveFifo())
        ),
        daemon=True,  # a regression streams the FIFO for ever: fail, don't hang
    )
    worker.start()
    worker.join(120)
    stop.set()
    assert not worker.is_alive(), "backup kept reading a FIFO"
    summary = result[0]
    assert [w.rsplit("/", 1)[-1] for w in summary.warnings] == [
        "b-huge.bin: replaced by another kind of file while backing up"
    ]
    assert summary.files_new == 2  # the small file and c-big.bin, whose backup went on


def test_a_cancel_is_noticed_while_the_walk_waits_for_big_files(tmp_path: Path) -> None:
    from node.ops import Cancelled

    repo = make_repo(tmp_path / "home", ChunkerParams())
    src = tmp_path / "src"
    for i in range(6):
        write(src / f"big{i}.bin", noise(70 + i, 16 * 1024 * 1024))

    class CancelOnceAllHandedOut:
        """Cancels at the first report after the walk handed out the last file: the
        walk is then only waiting for the big-file thread (five files behind)."""

        def __init__(self) -> None:
            self.handed_out = False

        def file_done(self, files: int, bytes_done: int, path: str) -> None:
            if self.handed_out:
                raise Cancelled
            if files == 6:
                self.handed_out = True

    with pytest.raises(Cancelled):
        run_backup(repo, BackupOptions(paths=[src]), CancelOnceAllHandedOut())
    assert list_snapshots(repo) == []
    repo.close()
