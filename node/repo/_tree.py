"""Trees: one directory's entries, encoded as a msgpack blob (kind TREE).

A tree is a msgpack map ``{"v": 1, "e": [entry, ...]}`` with entries sorted by name
(bytes, so any file name round-trips, including non-UTF-8 ones). An entry is a map with
short keys to keep trees small:

====  ========================================================================
key   value
====  ========================================================================
n     name (bytes, never empty, never "." or "..", no "/" or NUL)
t     type: "f" file, "d" dir, "l" symlink, "c"/"b" char/block device,
      "p" fifo, "s" socket
m     permission bits and setuid/setgid/sticky (``st_mode & 0o7777``)
u g   uid, gid
s     size in bytes (files)
mt    mtime in ns; "ct" ctime in ns (for the files cache; restore cannot set it)
i     inode number (for the files cache of the next backup)
c     list of data blob ids (files), in order
sub   child tree id (dirs)
l     link target (bytes, symlinks)
hl    hard-link group (bytes) shared by entries that are one inode (nlink > 1)
rd    device number (devices)
x     extended attributes: map name (bytes) -> value (bytes)
====  ========================================================================

Decoding validates every field: a tree is untrusted input to restore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from protocol import ID_SIZE, BlobId

TREE_VERSION = 1
MAX_TREE_ENTRIES = 1_000_000
MAX_NAME = 4096

FILE, DIR, SYMLINK = "f", "d", "l"
CHARDEV, BLOCKDEV, FIFO, SOCKET = "c", "b", "p", "s"
_TYPES = {FILE, DIR, SYMLINK, CHARDEV, BLOCKDEV, FIFO, SOCKET}


class TreeFormatError(ValueError):
    """A tree blob that does not decode to valid entries."""


@dataclass(slots=True)
class Node:
    """One directory entry."""

    name: bytes
    type: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    chunks: list[BlobId] = field(default_factory=list)
    subtree: BlobId | None = None
    target: bytes = b""
    link_group: bytes = b""
    rdev: int = 0
    xattrs: dict[bytes, bytes] = field(default_factory=dict)

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.name,
            "t": self.type,
            "m": self.mode,
            "u": self.uid,
            "g": self.gid,
            "mt": self.mtime_ns,
            "ct": self.ctime_ns,
            "i": self.inode,
        }
        if self.type == FILE:
            out["s"] = self.size
            out["c"] = [bytes(c) for c in self.chunks]
        if self.subtree is not None:
            out["sub"] = bytes(self.subtree)
        if self.type == SYMLINK:
            out["l"] = self.target
        if self.link_group:
            out["hl"] = self.link_group
        if self.rdev:
            out["rd"] = self.rdev
        if self.xattrs:
            out["x"] = self.xattrs
        return out

    def same_content(self, other: Node) -> bool:
        """True when the bytes (or link target, or subtree) are the same."""
        return (
            self.type == other.type
            and self.chunks == other.chunks
            and self.target == other.target
            and self.subtree == other.subtree
            and self.size == other.size
        )

    def same_metadata(self, other: Node) -> bool:
        return (
            self.mode == other.mode
            and self.uid == other.uid
            and self.gid == other.gid
            and self.mtime_ns == other.mtime_ns
            and self.xattrs == other.xattrs
        )


def valid_name(name: bytes) -> bool:
    """A name restore may create: one path component, nothing that climbs or escapes."""
    return (
        0 < len(name) <= MAX_NAME
        and name not in (b".", b"..")
        and b"/" not in name
        and b"\x00" not in name
    )


def encode_tree(nodes: list[Node]) -> bytes:
    """Encode a directory's entries (sorted here by name)."""
    nodes = sorted(nodes, key=lambda n: n.name)
    return bytes(msgpack.packb({"v": TREE_VERSION, "e": [n.encode() for n in nodes]}))


_INT_KEYS = ("m", "u", "g", "s", "mt", "ct", "i", "rd")


def _id(value: Any) -> BlobId:
    if type(value) is not bytes or len(value) != ID_SIZE:
        raise TreeFormatError("a blob id is not 32 bytes")
    return BlobId(value)


def decode_tree(data: bytes | memoryview) -> list[Node]:
    """Decode and validate a tree.

    Raises:
        TreeFormatError: not a tree, a bad field, an unsafe name, or duplicate names.
    """
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise TreeFormatError(f"not msgpack: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != TREE_VERSION:
        raise TreeFormatError("not a version 1 tree")
    raw_entries = doc.get("e")
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_TREE_ENTRIES:
        raise TreeFormatError("tree entries missing or too many")
    nodes: list[Node] = []
    seen: set[bytes] = set()
    for raw in raw_entries:
        if not isinstance(raw, dict):
            raise TreeFormatError("an entry is not a map")
        name = raw.get("n")
        if not isinstance(name, bytes) or not valid_name(name):
            raise TreeFormatError(f"unsafe or invalid entry name {name!r}")
        if name in seen:
            raise TreeFormatError(f"duplicate entry name {name!r}")
        seen.add(name)
        kind = raw.get("t")
        if not isinstance(kind, str) or kind not in _TYPES:
            raise TreeFormatError(f"entry {name!r} has unknown type {kind!r}")
        chunks_raw = raw.get("c", [])
        if not isinstance(chunks_raw, list):
            raise TreeFormatError(f"entry {name!r}: chunk list is not a list")
        target = raw.get("l", b"")
        group = raw.get("hl", b"")
        xattrs = raw.get("x", {})
        if not isinstance(target, bytes) or not isinstance(group, bytes):
            raise TreeFormatError(f"entry {name!r}: link fields are not bytes")
        if not isinstance(xattrs, dict) or not all(
            isinstance(k, bytes) and isinstance(v, bytes) for k, v in xattrs.items()
        ):
            raise TreeFormatError(f"entry {name!r}: bad extended attributes")
        # Hot path (a backup decodes every parent tree): one pass over the integer
        # fields; `type(v) is int` also refuses bools.
        mode, uid, gid, size, mtime, ctime, inode, rdev = ints = [
            raw.get(key, 0) for key in _INT_KEYS
        ]
        if any(type(v) is not int for v in ints):
            raise TreeFormatError(f"entry {name!r}: an integer field is not an integer")
        sub = raw.get("sub")
        node = Node(
            name,
            kind,
            mode & 0o7777,
            uid,
            gid,
            size,
            mtime,
            ctime,
            inode,
            [_id(c) for c in chunks_raw],
            _id(sub) if sub is not None else None,
            target,
            group,
            rdev,
            xattrs,
        )
        if node.type == DIR and node.subtree is None:
            raise TreeFormatError(f"directory {name!r} has no subtree")
        if node.size < 0:
            raise TreeFormatError(f"entry {name!r} has a negative size")
        nodes.append(node)
    return nodes
