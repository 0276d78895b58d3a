"""Helpers for operation tests: a real store with cheap keys and small chunks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from node.repo import (
    KDF_PROFILES,
    ChunkerParams,
    HomePaths,
    InitOptions,
    Repository,
    init_home,
    open_repository,
)

SMALL_CHUNKS = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)
"""Small chunks so that test files of a few KiB cross chunk boundaries."""


def make_repo(root: Path, chunker: ChunkerParams = SMALL_CHUNKS) -> Repository:
    home = HomePaths(root)
    init_home(
        home,
        "test passphrase",
        InitOptions(chunker=chunker, kdf=KDF_PROFILES["testing-only-insecure"]),
        "",
    )
    return open_repository(home, "test passphrase")


def tree_state(root: Path) -> dict[bytes, tuple]:
    """Everything restore must reproduce, keyed by path relative to ``root``.

    Hard links are compared as groups: each entry records the sorted list of paths that
    share its inode.
    """
    out: dict[bytes, tuple] = {}
    by_inode: dict[int, list[bytes]] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    content: object = f.read()
                if st.st_nlink > 1:
                    by_inode.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(full)
            else:
                content = None
            mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else None
            mode = stat.S_IMODE(st.st_mode) if not stat.S_ISLNK(st.st_mode) else None
            out[rel] = (stat.S_IFMT(st.st_mode), mode, mtime, content, st.st_ino)
    groups = {ino: sorted(paths) for ino, paths in by_inode.items()}
    return {rel: (*v[:4], tuple(groups.get(v[4], ()))) for rel, v in out.items()}


def dir_mtimes(root: Path) -> dict[bytes, int]:
    base = os.fsencode(root)
    return {
        os.path.relpath(os.path.join(d, n), base): os.lstat(os.path.join(d, n)).st_mtime_ns
        for d, dirs, _ in os.walk(base)
        for n in dirs
    }
