"""Helpers for the CLI tests: run the real ``shadowvault`` console script in a subprocess.

Every command runs with a temporary node home (``SHADOWVAULT_HOME``), the cheap Argon2
profile (``SHADOWVAULT_KDF_PROFILE=testing-only-insecure``), no TTY (stdin is
``/dev/null``) and a passphrase passed only by environment or file, never in argv. Every
run also asserts that no passphrase the test knows of shows up in the CLI's output.

A CLI start costs ~0.4 s, so node homes are made once (one ``init`` per session) and
copied for each test; a session-wide populated home with three snapshots serves the
read-only tests (ls, find, dump, diff, restore, check), and is copied for the others.

This directory has no ``__init__.py``: test modules get everything through fixtures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

SHADOWVAULT = Path(sys.executable).parent / "shadowvault"
PASSPHRASE = "sv-cli-test-" + secrets.token_hex(12)
CLI_TIMEOUT = 60
_DEFAULT = object()

# Pack layout (node/repo/_pack.py): 16-byte file header, then 80-byte entry headers.
PACK_FILE_HEADER = 16
PACK_ENTRY_HEADER = struct.Struct("<32s32sIIB3xI")
FIXED_MTIME_NS = 1_600_000_000_123_456_789


def base_env() -> dict[str, str]:
    """The environment of every CLI run: ours, minus any SHADOWVAULT_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWVAULT_")}
    env.update(
        SHADOWVAULT_KDF_PROFILE="testing-only-insecure",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
    )
    return env


@dataclass
class Node:
    """A node home and how to run the CLI against it.

    ``passphrase`` goes into ``SHADOWVAULT_PASSWORD`` unless a run says otherwise;
    ``secrets`` are strings that must never appear in any output of the CLI.
    """

    home: Path
    passphrase: str | None = PASSPHRASE
    secrets: list[str] = field(default_factory=lambda: [PASSPHRASE])

    def env(self, passphrase: Any = _DEFAULT, **extra: str | None) -> dict[str, str]:
        env = base_env()
        env["SHADOWVAULT_HOME"] = str(self.home)
        value = self.passphrase if passphrase is _DEFAULT else passphrase
        if value is not None:
            env["SHADOWVAULT_PASSWORD"] = value
        for key, val in extra.items():
            if val is None:
                env.pop(key, None)
            else:
                env[key] = val
        return env

    def run(
        self,
        *args: str | os.PathLike[str],
        expect: int | None = 0,
        passphrase: Any = _DEFAULT,
        env: dict[str, str | None] | None = None,
        binary: bool = False,
        prefix: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``shadowvault *args``; assert the exit code (unless ``expect`` is None)."""
        argv = [*prefix, str(SHADOWVAULT), *(os.fspath(a) for a in args)]
        known = [s for s in [*self.secrets, passphrase] if isinstance(s, str) and s]
        for secret in known:
            assert not any(secret in a for a in argv), "a passphrase must never be in argv"
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=self.env(passphrase, **(env or {})),
            timeout=CLI_TIMEOUT,
            check=False,
        )
        out_bytes, err_bytes = proc.stdout, proc.stderr
        for secret in known:
            assert secret.encode() not in out_bytes, "the CLI printed a passphrase (stdout)"
            assert secret.encode() not in err_bytes, "the CLI printed a passphrase (stderr)"
        stderr = err_bytes.decode("utf-8", "surrogateescape")
        stdout: Any = out_bytes if binary else out_bytes.decode("utf-8", "surrogateescape")
        result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
        if expect is not None:
            shown = "<binary>" if binary else stdout[-3000:]
            assert result.returncode == expect, (
                f"`shadowvault {' '.join(map(os.fspath, args))}` exited {result.returncode}, "
                f"expected {expect}\n--- stdout\n{shown}\n--- stderr\n{stderr[-3000:]}"
            )
        assert "Traceback (most recent call last)" not in stderr, stderr
        return result

    def json(self, *args: str | os.PathLike[str], expect: int | None = 0, **kw: Any) -> Any:
        """Run with ``--json`` and parse standard output."""
        result = self.run(*args, "--json", expect=expect, **kw)
        try:
            return json.loads(result.stdout)
        except ValueError:
            pytest.fail(f"not JSON: {result.stdout[:2000]!r}\nstderr: {result.stderr[:2000]}")

    def snapshots(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self.json("snapshots")
        return value

    def copy(self, dest: Path) -> Node:
        """A copy of this home at ``dest`` (same keys and snapshots, separate store)."""
        shutil.copytree(self.home, dest, symlinks=True)
        return Node(dest, self.passphrase, list(self.secrets))


# -- file-system helpers ---------------------------------------------------------------------


def file_state(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """path -> (mode, size, mtime_ns, sha256) of every file under ``root``: 'untouched' checks."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


@dataclass(frozen=True)
class Entry:
    """What a restore must reproduce of one file-system object."""

    kind: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int
    content: str
    target: bytes


def tree_entries(root: Path) -> tuple[dict[bytes, Entry], set[frozenset[bytes]]]:
    """Every object under ``root`` (itself as b"") and the hard-link groups among them."""
    entries: dict[bytes, Entry] = {}
    inodes: dict[int, set[bytes]] = {}
    base = os.fsencode(root)

    def record(path: bytes) -> None:
        rel = os.path.relpath(path, base)
        rel = b"" if rel == b"." else rel
        st = os.lstat(path)
        kind, content, target = "other", "", b""
        if stat.S_ISREG(st.st_mode):
            kind = "file"
            with open(path, "rb") as f:
                content = hashlib.sha256(f.read()).hexdigest()
            if st.st_nlink > 1:
                inodes.setdefault(st.st_ino, set()).add(rel)
        elif stat.S_ISDIR(st.st_mode):
            kind = "dir"
        elif stat.S_ISLNK(st.st_mode):
            kind, target = "symlink", os.readlink(path)
        elif stat.S_ISFIFO(st.st_mode):
            kind = "fifo"
        mode = 0 if kind == "symlink" else stat.S_IMODE(st.st_mode)
        size = st.st_size if kind in ("file", "symlink") else 0
        entries[rel] = Entry(
            kind, mode, st.st_uid, st.st_gid, st.st_mtime_ns, size, content, target
        )

    record(base)
    for dirpath, dirs, files in os.walk(base):
        for name in dirs + files:
            record(os.path.join(dirpath, name))
    return entries, {frozenset(group) for group in inodes.values()}


def restored_root(target: Path, source: Path) -> Path:
    """Where a restore into ``target`` puts the backed-up path ``source``."""
    return target / str(source.resolve()).lstrip("/")


@dataclass(frozen=True)
class PackEntry:
    pack: int
    blob_id: str
    kind: int
    body_offset: int
    stored_len: int


def pack_entries(home: Path) -> list[PackEntry]:
    """Every entry of every pack of a home, parsed independently of the code under test."""
    out = []
    for path in sorted((home / "store" / "packs").glob("*.pack")):
        data = path.read_bytes()
        pack_no = int(path.name[:8])
        offset = PACK_FILE_HEADER
        while offset + PACK_ENTRY_HEADER.size <= len(data):
            blob_id, _dedup, stored_len, _plain, kind, _crc = PACK_ENTRY_HEADER.unpack_from(
                data, offset
            )
            body = offset + PACK_ENTRY_HEADER.size
            out.append(PackEntry(pack_no, blob_id.hex(), kind, body, stored_len))
            offset = body + stored_len
    return out


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One freshly initialised home per session, made by the CLI; copied, never used."""
    home = tmp_path_factory.mktemp("template") / "home"
    Node(home).run("init")
    return home


@pytest.fixture
def node(template_home: Path, tmp_path: Path) -> Node:
    """A fresh, empty node home (a copy of the session's template) with PASSPHRASE."""
    return Node(template_home).copy(tmp_path / "home")


@pytest.fixture
def new_home(tmp_path: Path) -> Node:
    """A node whose home does not exist yet (for init)."""
    return Node(tmp_path / "newhome")


def write_file(path: Path, data: bytes, mode: int = 0o644, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    """A small source tree: 6 files in 4 directories (a.txt, b.log, cache/, sub/deep/)."""
    src = tmp_path / "src"
    write_file(src / "a.txt", b"alpha\n")
    write_file(src / "b.log", b"log line\n" * 10)
    write_file(src / "cache" / "junk.tmp", b"junk")
    write_file(src / "sub" / "keep.log", b"keep me\n")
    write_file(src / "sub" / "deep" / "c.txt", b"gamma\n")
    write_file(src / "sub" / "deep" / "d.bin", bytes(range(256)))
    return src


@dataclass
class Populated:
    """A home with three snapshots and the source trees they were taken of.

    s1: ``src`` tagged daily. Then notes.txt is appended to, gone.txt deleted, new.txt
    created and perm.txt chmod-ed 0600. s2: ``src`` tagged daily+manual (parent s1).
    s3: ``src2`` tagged weekly. ``src`` is unchanged since s2 (restore compares to it).
    """

    node: Node
    src: Path
    src2: Path
    s1: str
    s2: str
    s3: str
    notes_v1: bytes
    notes_v2: bytes
    big: bytes
    backups: list[dict[str, Any]]

    def copy(self, dest: Path) -> Populated:
        return Populated(
            self.node.copy(dest),
            self.src,
            self.src2,
            self.s1,
            self.s2,
            self.s3,
            self.notes_v1,
            self.notes_v2,
            self.big,
            self.backups,
        )


NON_UTF8_NAME = b"caf\xe9.txt"


def _build_src(src: Path) -> bytes:
    big = os.urandom(8 * 1024 * 1024 + 12345)  # > 8 MiB: the streaming read path
    write_file(src / "notes.txt", b"hello notes\n" * 50)
    write_file(src / "gone.txt", b"to be deleted\n")
    write_file(src / "perm.txt", b"permissions\n", mtime_ns=FIXED_MTIME_NS)
    write_file(src / "empty", b"")
    write_file(src / "exec.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
    write_file(src / "big.bin", big)
    write_file(src / "small.bin", bytes(range(256)) * 64, mtime_ns=FIXED_MTIME_NS + 1)
    (src / "link").symlink_to("notes.txt")
    (src / "dangling").symlink_to("does/not/exist")
    os.utime(src / "link", ns=(FIXED_MTIME_NS, FIXED_MTIME_NS), follow_symlinks=False)
    write_file(src / "hard1", b"linked twice\n")
    write_file(src / "sub" / "data.log", b"log\n")
    os.link(src / "hard1", src / "sub" / "hard2")
    write_file(src / "sub" / "deep" / "file.txt", b"deep file\n")
    write_file(src / "sub" / "deep" / "keep.log", b"keep\n")
    (src / "sub" / "deep").chmod(0o750)
    write_file(src / "cache" / "junk.tmp", b"junk")
    write_file(src / "cache" / "inner" / "x.tmp", b"x")
    write_file(src / "ro" / "inside.txt", b"read-only dir\n")
    (src / "ro").chmod(0o555)
    os.mkfifo(src / "fifo", 0o640)
    with open(os.path.join(os.fsencode(src), NON_UTF8_NAME), "wb") as f:
        f.write(b"latin-1 name\n")
    return big


@pytest.fixture(scope="session")
def populated(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Populated:
    base = tmp_path_factory.mktemp("populated")
    node = Node(template_home).copy(base / "home")
    src, src2 = base / "data" / "src", base / "data" / "src2"
    big = _build_src(src)
    write_file(src2 / "other.txt", b"another tree\n")
    notes_v1 = (src / "notes.txt").read_bytes()
    b1 = node.json("backup", src, "--tag", "daily")
    with open(src / "notes.txt", "ab") as f:
        f.write(b"appended\n")
    (src / "gone.txt").unlink()
    write_file(src / "new.txt", b"brand new\n")
    (src / "perm.txt").chmod(0o600)
    b2 = node.json("backup", src, "--tag", "manual", "--tag", "daily", "--tag", "daily")
    b3 = node.json("backup", src2, "--tag", "weekly")
    return Populated(
        node,
        src,
        src2,
        b1["snapshot_id"],
        b2["snapshot_id"],
        b3["snapshot_id"],
        notes_v1,
        (src / "notes.txt").read_bytes(),
        big,
        [b1, b2, b3],
    )


@pytest.fixture
def populated_copy(populated: Populated, tmp_path: Path) -> Populated:
    """A private copy of the populated home, for tests that change the store."""
    return populated.copy(tmp_path / "home")


@pytest.fixture
def fs() -> Any:
    """File-system helpers for the tests (a namespace; tests import nothing from here)."""

    class Helpers:
        file_state = staticmethod(file_state)
        tree_entries = staticmethod(tree_entries)
        restored_root = staticmethod(restored_root)
        pack_entries = staticmethod(pack_entries)
        write_file = staticmethod(write_file)
        non_utf8_name = NON_UTF8_NAME
        fixed_mtime_ns = FIXED_MTIME_NS

    return Helpers


@pytest.fixture
def store_holder() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """``store_holder(home)``: a python process holding the home's store open.

    Returns once the child has the store; every child still running at teardown is
    killed (by its own pid) and reaped.
    """
    procs: list[subprocess.Popen[str]] = []
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from node.repo import Store\n"
        "store = Store.open(Path(sys.argv[1]))\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )

    def start(home: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(home / "store")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            pytest.fail(f"store holder did not start: {line!r} {proc.communicate()[1]}")
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(Exception):
            proc.communicate(timeout=10)


# -- a running daemon ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """A ``node run`` process for a test's home; its log goes to ``<home>.daemon.log``.

    ``listen``: the libp2p address (loopback, a free port by default). Standard output is
    read until the start-up lines are printed; the log is a file so that a chatty node
    can never block on a full pipe.
    """

    def __init__(self, node: Any, listen: str = "/ip4/127.0.0.1/tcp/0") -> None:
        self.node = node
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log_path = node.home.parent / f"{node.home.name}.daemon.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(SHADOWVAULT), "node", "run", "--api", self.url[7:], "--listen", listen],
            env=node.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if line.startswith("token"):
                break
        assert any(line.startswith("api") for line in lines), (lines, self.log())
        self.addrs = [line.split()[-1] for line in lines if "/p2p/" in line]
        self.token = (node.home / "api.token").read_text().strip()

    def log(self) -> str:
        """The node's log so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-5000:]

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._log.close()


class DaemonPool:
    """Daemons started for a test (or a module); all stopped at teardown."""

    def __init__(self) -> None:
        self.started: list[Daemon] = []

    def start(self, node: Any, **kw: Any) -> Daemon:
        d = Daemon(node, **kw)
        self.started.append(d)
        return d

    def stop_all(self) -> None:
        for d in self.started:
            d.stop()


@pytest.fixture(scope="session")
def daemon_pool_class() -> type[DaemonPool]:
    """``DaemonPool``, for fixtures of other scopes."""
    return DaemonPool


@pytest.fixture
def daemon_for() -> Iterator[Any]:
    """``daemon_for(node)``: start ``node run`` for a node; stopped after the test."""
    pool = DaemonPool()
    yield pool.start
    pool.stop_all()
