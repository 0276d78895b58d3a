"""Walking snapshots: every blob a set of snapshots references.

Used by check (referenced blobs must exist), stats (what is shared, what is garbage)
and gc (the mark phase). Subtrees shared between snapshots are walked once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from protocol import BlobId

from ._errors import RepoError
from ._repository import Repository
from ._snapshot import Snapshot
from ._tree import DIR, FILE, Node, TreeFormatError, decode_tree


@dataclass(frozen=True, slots=True)
class Reference:
    """A blob and where it is referenced from (for messages)."""

    blob_id: BlobId
    snapshot: str
    path: bytes
    is_tree: bool


def load_tree(repo: Repository, tree_id: BlobId) -> list[Node]:
    """Open and decode one tree.

    Raises:
        BlobNotFound, CorruptBlob, RepoError (not a valid tree)
    """
    try:
        return decode_tree(repo.load(tree_id))
    except TreeFormatError as exc:
        raise RepoError(f"tree {tree_id.short} is invalid: {exc}") from exc


def walk_references(
    repo: Repository, snapshots: list[Snapshot], *, skip_missing: bool = True
) -> Iterator[Reference]:
    """Yield every blob referenced by ``snapshots``: the record, trees and data chunks.

    A tree that cannot be loaded is yielded (so check reports it) and, with
    ``skip_missing``, not descended into.
    """
    seen_trees: set[bytes] = set()
    for snap in snapshots:
        assert snap.id is not None
        yield Reference(snap.id, snap.short_id, b"", False)
        stack: list[tuple[BlobId, bytes]] = [(snap.tree, b"/")]
        while stack:
            tree_id, path = stack.pop()
            if tree_id in seen_trees:
                continue
            seen_trees.add(tree_id)
            yield Reference(tree_id, snap.short_id, path, True)
            try:
                nodes = load_tree(repo, tree_id)
            except RepoError:
                if skip_missing:
                    continue
                raise
            for node in nodes:
                child = path.rstrip(b"/") + b"/" + node.name
                if node.type == FILE:
                    for chunk in node.chunks:
                        yield Reference(chunk, snap.short_id, child, False)
                elif node.type == DIR and node.subtree is not None:
                    stack.append((node.subtree, child))
