"""gc's mark set: the blob ids reached from the roots, in memory up to a bound, then on disk.

Most stores' live sets are small enough to hold as a Python set: then marking is a set
insert per id and the sweep a set look-up per index record, with no I/O. Writing every
mark into a LevelDB (the earlier design) cost a third of gc's time on the 1 GiB corpus.
Past ``MEMORY_LIMIT`` ids (65 536) the set moves into a temporary LevelDB (``gc-mark/`` beside
the store, removed when gc ends and on the next open) and starts again empty, so memory
stays bounded whatever the number of blobs (the index stays on disk, as before); the
sweep then merges the index with the LevelDB's sorted keys, both in blob-id order, with
no random look-ups. A tree already marked (in memory or spilled) is not walked again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import plyvel

MEMORY_LIMIT = 65_536
"""Ids held in memory before they move to disk: about 8 MB of Python objects (a 32-byte
bytes object is 72 bytes, its set slot 30-50). The flat-memory bound of gc."""

Probe = Callable[[bytes], bool]


class MarkSet:
    """Blob ids marked live. Use as a context manager: the disk part is removed on exit.

    Ownership: the mark set owns ``path`` (a directory) while it is open; whatever was
    there is removed first.
    """

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self._path = path
        self._limit = limit or MEMORY_LIMIT
        self._mem: set[bytes] = set()
        self._db: Any = None
        self.spills = 0
        """How many times the in-memory part moved to disk (tests, reports)."""

    def __enter__(self) -> MarkSet:
        shutil.rmtree(self._path, ignore_errors=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the marks and remove the disk part (idempotent)."""
        self._mem.clear()
        if self._db is not None:
            self._db.close()
            self._db = None
        shutil.rmtree(self._path, ignore_errors=True)

    def add(self, blob_id: bytes) -> None:
        """Mark one id."""
        self._mem.add(bytes(blob_id))
        if len(self._mem) >= self._limit:
            self._spill()

    def update(self, blob_ids: Iterable[bytes]) -> None:
        """Mark many ids (plain ``bytes``, as a tree decodes them)."""
        self._mem.update(blob_ids)
        if len(self._mem) >= self._limit:
            self._spill()

    def seen(self, blob_id: bytes) -> bool:
        """True if the id is marked."""
        if blob_id in self._mem:
            return True
        return self._db is not None and self._db.get(bytes(blob_id)) is not None

    def sorted_probe(self) -> Probe:
        """A membership test that must be asked in ascending id order (the sweep's).

        Marking is over once this is called. In memory it is a set look-up; on disk, a
        merge with the LevelDB's sorted keys (one pass, no random reads).
        """
        if self._db is None:
            return self._mem.__contains__
        self._spill()
        keys = self._db.iterator(include_value=False)
        cur: bytes | None = next(keys, None)

        def probe(blob_id: bytes) -> bool:
            nonlocal cur
            while cur is not None and cur < blob_id:
                cur = next(keys, None)
            return cur == blob_id

        return probe

    def _spill(self) -> None:
        if self._db is None:
            self._db = plyvel.DB(
                str(self._path),
                create_if_missing=True,
                compression=None,
                write_buffer_size=4 << 20,
                bloom_filter_bits=10,  # `seen` on a tree not marked yet: most miss
            )
        with self._db.write_batch() as batch:  # scratch data: no sync
            for blob_id in self._mem:
                batch.put(blob_id, b"")
        self._mem.clear()
        self.spills += 1
