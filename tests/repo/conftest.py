"""Helpers for the store tests: cheap homes, random blobs, a small tmpfs, child processes.

Every helper is a fixture (this directory has no ``__init__.py``, so test modules do not
import from here). The real LevelDB store is used throughout; nothing of ours is mocked.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.repo import (
    KDF_PROFILES,
    BlobKind,
    HomePaths,
    InitOptions,
    Repository,
    Sealer,
    init_home,
    open_repository,
)
from protocol import BlobId

PASSPHRASE = "correct horse battery staple"
CHEAP_KDF = KDF_PROFILES["testing-only-insecure"]
CHILD_SCRIPT = Path(__file__).with_name("store_child.py")


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A blob a test wrote, with the plaintext it must read back as."""

    blob_id: BlobId
    plaintext: bytes
    dedup_key: bytes


@pytest.fixture
def passphrase() -> str:
    return PASSPHRASE


@pytest.fixture
def make_home() -> Callable[..., HomePaths]:
    """``make_home(root, passphrase=..., compression=3)``: a fresh node home with a cheap KDF."""

    def make(root: Path, passphrase: str = PASSPHRASE, compression: int = 3) -> HomePaths:
        home = HomePaths(Path(root))
        init_home(home, passphrase, InitOptions(compression=compression, kdf=CHEAP_KDF), "# test\n")
        return home

    return make


@pytest.fixture
def home(tmp_path: Path, make_home: Callable[..., HomePaths]) -> HomePaths:
    return make_home(tmp_path / "home")


@pytest.fixture
def open_repo() -> Iterator[Callable[[HomePaths], Repository]]:
    """``open_repo(home)``: open with the test passphrase; every repo is closed at teardown."""
    opened: list[Repository] = []

    def open_(home: HomePaths, passphrase: str = PASSPHRASE) -> Repository:
        repo = open_repository(home, passphrase)
        opened.append(repo)
        return repo

    yield open_
    for repo in opened:
        with contextlib.suppress(Exception):
            repo.close()


@pytest.fixture
def repo(home: HomePaths, open_repo: Callable[[HomePaths], Repository]) -> Repository:
    return open_repo(home)


def random_plaintext(rng: random.Random, size: int) -> bytes:
    """Incompressible bytes from ``rng`` (so the sealed size is predictable)."""
    return rng.randbytes(size)


@pytest.fixture
def write_blobs() -> Callable[..., list[StoredBlob]]:
    """``write_blobs(repo, n, size=2000, seed=0)``: seal and store n random DATA blobs, flushed."""

    def write(repo: Repository, n: int, *, size: int = 2000, seed: int = 0) -> list[StoredBlob]:
        rng = random.Random(seed)
        sealer = Sealer(3)
        out = []
        with repo.store.writer() as writer:
            for _ in range(n):
                plain = random_plaintext(rng, size)
                dedup = repo.dedup_key(plain)
                sealed = sealer.seal(plain, repo.keys.data)
                blob_id = writer.put(sealed, BlobKind.DATA, len(plain), dedup)
                out.append(StoredBlob(blob_id, plain, dedup))
            writer.flush()
        return out

    return write


@pytest.fixture
def tmpfs() -> Iterator[Callable[[str], Path]]:
    """``tmpfs("8m")``: mount a tmpfs of that size on a fresh directory; unmounted at teardown.

    Skips the test when not root or when the mount fails (e.g. in an unprivileged container).
    """
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("a full-disk test needs root to mount a small tmpfs")
        where = Path(tempfile.mkdtemp(prefix="sv-tmpfs-"))
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            where.rmdir()
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        result = subprocess.run(["umount", str(where)], capture_output=True, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill_disk(where: Path, *, leave_bytes: int = 0) -> Path:
    """Fill the file system of ``where`` with a ballast file; return its path.

    Writes page-sized blocks until ENOSPC, then gives back ``leave_bytes`` (rounded down
    to whole pages) by truncating the ballast, so exactly that much space is free.
    """
    ballast = where / "ballast"
    block = b"\xa5" * 4096
    with open(ballast, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(block)
        size = f.tell()
        f.truncate(max(0, size - (leave_bytes // 4096) * 4096))
    return ballast


@pytest.fixture
def fill() -> Callable[..., Path]:
    """``fill(where, leave_bytes=0)``: see ``fill_disk``."""
    return fill_disk


@pytest.fixture
def child() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``child(mode, home, *args)``: run ``store_child.py`` with the venv's python.

    Every child still running at teardown is SIGKILLed (by its own pid) and reaped.
    """
    procs: list[subprocess.Popen[bytes]] = []

    def start(mode: str, home: HomePaths, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, SV_TEST_PASSPHRASE=PASSPHRASE)
        proc = subprocess.Popen(
            [sys.executable, str(CHILD_SCRIPT), mode, str(home.root), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            bufsize=0,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(Exception):
            proc.communicate(timeout=10)


def read_child_line(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bytes:
    """Read one line from a child's unbuffered stdout; fail the test (with its stderr)
    if none comes within ``timeout`` seconds."""
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([proc.stdout], [], [], left)
        chunk = os.read(proc.stdout.fileno(), 1) if ready else b""
        if not chunk:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"child gave no line within {timeout}s (rc {proc.returncode}): {err!r}")
        line += chunk
    return line


@pytest.fixture
def read_line() -> Callable[..., bytes]:
    """``read_line(proc, timeout=20.0)``: see ``read_child_line``."""
    return read_child_line
