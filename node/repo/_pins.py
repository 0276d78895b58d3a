"""Pins: blobs and snapshots that operations in flight still need, so gc spares them.

One process owns the store, so it knows exactly what its running operations use. A
write session (``Store.writer()``) pins every blob it writes and every blob it finds
through the dedup index, until the session ends. What it writes is pinned by a
*watermark*, the append position (pack, offset) when the session began: packs are
append-only and numbered upwards, so everything appended since lies at or above it, and
gc spares every blob there (garbage too, until the session ends). That costs no memory
per blob; only older blobs the session reuses (dedup hits, re-puts of stored ids) are
kept in a set. An operation that reuses whole
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

Position = tuple[int, int]
"""(pack number, offset in the pack): the order in which blobs are appended."""


class PinSet:
    """The pins of one operation. Use through ``PinRegistry.session``."""

    def __init__(self, registry: PinRegistry, watermark: Position) -> None:
        self._registry = registry
        self.watermark = watermark
        self.blobs: set[bytes] = set()
        self.roots: set[bytes] = set()

    def add(self, blob_id: bytes) -> None:
        """Pin one stored blob. Hold the registry lock across the check that it exists."""
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
        self._retired_mark: Position | None = None

    @contextlib.contextmanager
    def session(self, watermark: Position) -> Iterator[PinSet]:
        """A pin set that lives as long as the ``with`` block; see the module docstring."""
        pins = PinSet(self, watermark)
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
                    if self._retired_mark is None or pins.watermark < self._retired_mark:
                        self._retired_mark = pins.watermark

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
                    self._retired_mark = None

    def is_pinned(self, blob_id: bytes, where: Position) -> bool:
        """True if a live or (during gc) retired pin set holds the blob, by id or by its
        position ``where`` (its location now) at or above a watermark. Hold ``lock``."""
        if blob_id in self._retired_blobs:
            return True
        if self._retired_mark is not None and where >= self._retired_mark:
            return True
        return any(blob_id in s.blobs or where >= s.watermark for s in self._sessions)

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
