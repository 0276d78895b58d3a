"""Browsing snapshots: list, ls, find, dump and diff.

Paths inside a snapshot are absolute, as backed up (``/home/ann/notes.txt``).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from node.repo import DIR, FILE, SYMLINK, Node, RepoError, Repository, Snapshot, load_tree
from protocol import BlobId

_TYPE_NAMES = {
    FILE: "file",
    DIR: "dir",
    SYMLINK: "symlink",
    "c": "chardev",
    "b": "blockdev",
    "p": "fifo",
    "s": "socket",
}


def snapshot_json(snap: Snapshot) -> dict[str, Any]:
    """A snapshot as ``shadowvault snapshots --json`` prints it."""
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(snap.time_ns / 1e9, tz=UTC)
    return {
        "id": str(snap.id),
        "short_id": snap.short_id,
        "time": when.isoformat(),
        "host": snap.host,
        "paths": snap.paths,
        "tags": snap.tags,
        "parent": snap.parent,
        "tree": str(snap.tree),
        "summary": snap.summary,
    }


def filter_snapshots(
    snaps: list[Snapshot], tags: list[str] | None = None, paths: list[str] | None = None
) -> list[Snapshot]:
    """Snapshots having every tag in ``tags`` and every path in ``paths``."""
    out = []
    for snap in snaps:
        if tags and not set(tags) <= set(snap.tags):
            continue
        if paths and not {os.path.abspath(p) for p in paths} <= set(snap.paths):
            continue
        out.append(snap)
    return out


def node_json(path: str, node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": path,
        "name": os.fsdecode(node.name),
        "type": _TYPE_NAMES.get(node.type, node.type),
        "mode": f"{node.mode:04o}",
        "uid": node.uid,
        "gid": node.gid,
        "size": node.size,
        "mtime_ns": node.mtime_ns,
    }
    if node.type == SYMLINK:
        out["target"] = os.fsdecode(node.target)
    return out


def _split(path: str) -> list[bytes]:
    return [os.fsencode(p) for p in path.strip("/").split("/") if p]


def find_node(repo: Repository, snap: Snapshot, path: str) -> tuple[str, Node | None]:
    """The node at an absolute ``path`` in a snapshot (None for the root).

    Raises:
        RepoError: no such path in the snapshot.
    """
    tree: BlobId | None = snap.tree
    node: Node | None = None
    walked = ""
    for name in _split(path):
        if tree is None:
            raise RepoError(f"{walked or '/'} is not a directory in snapshot {snap.short_id}")
        node = next((n for n in load_tree(repo, tree) if n.name == name), None)
        walked += "/" + os.fsdecode(name)
        if node is None:
            raise RepoError(f"no {walked} in snapshot {snap.short_id}")
        tree = node.subtree if node.type == DIR else None
    return walked or "/", node


def list_dir(
    repo: Repository, snap: Snapshot, path: str = "/", recursive: bool = False
) -> Iterator[tuple[str, Node]]:
    """Entries under ``path`` (one level, or all with ``recursive``)."""
    base, node = find_node(repo, snap, path)
    if node is not None and node.type != DIR:
        yield base, node
        return
    tree = snap.tree if node is None else node.subtree
    assert tree is not None
    yield from _walk(repo, tree, "" if base == "/" else base, recursive)


def _walk(
    repo: Repository, tree: BlobId, prefix: str, recursive: bool
) -> Iterator[tuple[str, Node]]:
    for child in load_tree(repo, tree):
        child_path = f"{prefix}/{os.fsdecode(child.name)}"
        yield child_path, child
        if recursive and child.type == DIR and child.subtree is not None:
            yield from _walk(repo, child.subtree, child_path, True)


def find(
    repo: Repository, snaps: list[Snapshot], pattern: str
) -> Iterator[tuple[Snapshot, str, Node]]:
    """Entries whose name (or, if the pattern has a ``/``, whole path) matches a glob."""
    whole = "/" in pattern
    for snap in snaps:
        for path, node in _walk(repo, snap.tree, "", True):
            subject = path if whole else os.fsdecode(node.name)
            if fnmatch.fnmatchcase(subject, pattern):
                yield snap, path, node


def file_node(repo: Repository, snap: Snapshot, path: str) -> Node:
    """The regular file at ``path``.

    Raises:
        RepoError: not found, or not a regular file.
    """
    _, node = find_node(repo, snap, path)
    if node is None or node.type != FILE:
        raise RepoError(f"{path} is not a file in snapshot {snap.short_id}")
    return node


def dump(repo: Repository, snap: Snapshot, path: str, out: BinaryIO) -> int:
    """Write a file's bytes to ``out``; return the byte count.

    Raises:
        RepoError: not found, or not a regular file.
    """
    n = 0
    for data in file_chunks(repo, file_node(repo, snap, path)):
        out.write(data)
        n += len(data)
    return n


def file_chunks(repo: Repository, node: Node) -> Iterator[bytes | memoryview]:
    """A file's contents, chunk by chunk."""
    for chunk in node.chunks:
        yield repo.load(chunk)


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two snapshots."""

    kind: str
    """added, removed, modified (content or type), metadata (mode, owner, mtime, xattrs)"""
    path: str
    type: str


def diff(repo: Repository, a: Snapshot, b: Snapshot) -> Iterator[Change]:
    """Differences from snapshot ``a`` to ``b``, in path order.

    Identical subtrees (same tree id) are skipped without being read.
    """
    yield from _diff_trees(repo, a.tree, b.tree, "")


def _all(repo: Repository, node: Node, path: str, kind: str) -> Iterator[Change]:
    yield Change(kind, path, _TYPE_NAMES.get(node.type, node.type))
    if node.type == DIR and node.subtree is not None:
        for sub_path, sub in _walk(repo, node.subtree, path, True):
            yield Change(kind, sub_path, _TYPE_NAMES.get(sub.type, sub.type))


def _diff_trees(repo: Repository, ta: BlobId, tb: BlobId, prefix: str) -> Iterator[Change]:
    if ta == tb:
        return
    left = {n.name: n for n in load_tree(repo, ta)}
    right = {n.name: n for n in load_tree(repo, tb)}
    for name in sorted(left.keys() | right.keys()):
        path = f"{prefix}/{os.fsdecode(name)}"
        na, nb = left.get(name), right.get(name)
        if na is None:
            assert nb is not None
            yield from _all(repo, nb, path, "added")
        elif nb is None:
            yield from _all(repo, na, path, "removed")
        elif na.type != nb.type:
            yield Change("modified", path, _TYPE_NAMES.get(nb.type, nb.type))
        elif na.type == DIR:
            if not na.same_metadata(nb):
                yield Change("metadata", path, "dir")
            assert na.subtree is not None and nb.subtree is not None
            yield from _diff_trees(repo, na.subtree, nb.subtree, path)
        elif not na.same_content(nb):
            yield Change("modified", path, _TYPE_NAMES.get(nb.type, nb.type))
        elif not na.same_metadata(nb):
            yield Change("metadata", path, _TYPE_NAMES.get(nb.type, nb.type))
