"""Pins: blobs and snapshots that operations in flight still need, so gc spares them.

One process owns the store, so it knows exactly what its running operations use. A
write session (``Store.writer()``) pins every blob it writes and every blob it finds
through the dedup index, until the session ends; an operation that reuses whole
snapshots (a backup's parent, whose unchanged files it keeps without reading them) pins
the snapshot as a root, and gc marks everything reachable from it.

The race this closes: gc decides a blob is garbage while a backup, at the same moment,
finds that blob through the dedup index and puts its id into a new tree. Every pin is
taken under ``PinRegistry.lock``, and gc deletes index records under the same lock after
checking the pins, so a blob is either pinned before gc looks (spared) or deleted before
the backup looks (the backup then finds nothing and stores the chunk again).

Pins released while a gc runs are kept until it ends: a backup that commits its
snapshot after gc listed the snapshots, and then ends its session, must still have its
blobs spared by that gc.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class PinSet:
    """The pins of one operation. Use through ``PinRegistry.session``."""

    def __init__(self, registry: PinRegistry) -> None:
        self._registry = registry
        self.blobs: set[bytes] = set()
        self.roots: set[bytes] = set()

    def add(self, blob_id: bytes) -> None:
        """Pin one blob (the caller holds the registry lock, or the blob is new)."""
        with self._registry.lock:
            self.blobs.add(bytes(blob_id))

    def add_root(self, snapshot_id: bytes, exists: bool) -> bool:
        """Pin a snapshot and everything it reaches; ``exists`` is checked by the caller
        under the registry lock (``Store.pin_snapshot``)."""
        if exists:
            self.roots.add(bytes(snapshot_id))
        return exists


class PinRegistry:
    """Every pin set of an open store, and the gc that may be running."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._sessions: set[PinSet] = set()
        self._gc_active = 0
        self._retired_blobs: set[bytes] = set()
        self._retired_roots: set[bytes] = set()

    @contextlib.contextmanager
    def session(self) -> Iterator[PinSet]:
        """A pin set that lives as long as the ``with`` block."""
        pins = PinSet(self)
        with self.lock:
            self._sessions.add(pins)
        try:
            yield pins
        finally:
            with self.lock:
                self._sessions.discard(pins)
                if self._gc_active:
                    self._retired_blobs |= pins.blobs
                    self._retired_roots |= pins.roots

    @contextlib.contextmanager
    def gc_window(self) -> Iterator[None]:
        """While open, released pins are kept (see the module docstring)."""
        with self.lock:
            self._gc_active += 1
        try:
            yield
        finally:
            with self.lock:
                self._gc_active -= 1
                if not self._gc_active:
                    self._retired_blobs.clear()
                    self._retired_roots.clear()

    def is_pinned(self, blob_id: bytes) -> bool:
        """True if any live or (during gc) retired pin set holds the blob. Hold ``lock``."""
        if blob_id in self._retired_blobs:
            return True
        return any(blob_id in s.blobs for s in self._sessions)

    def roots(self) -> set[bytes]:
        """Every pinned snapshot (live, and retired during gc)."""
        with self.lock:
            out = set(self._retired_roots)
            for s in self._sessions:
                out |= s.roots
            return out

    def pinned_count(self) -> int:
        with self.lock:
            return len(self._retired_blobs) + sum(len(s.blobs) for s in self._sessions)
