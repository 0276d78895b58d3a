"""Deleting a pack safely: an intent record first, finished on the next open after a crash.

A pack gc deletes holds no live blob: its live blobs were copied to another pack and
the index moved to them first. The danger is the gap between removing the pack's length
record and unlinking the file: a pack on disk without a length record looks, to
recovery, like a crash leftover whose entries must all be indexed again, so every blob
gc swept from it would come back. So the order is:

1. ``gD + pack`` (the intent) is written, synced;
2. the file is unlinked and the directory synced;
3. the pack's length record and the intent are removed in one synced batch.

``Store.open`` (and ``repair index``) run ``finish_pack_drops`` before anything else
looks at the packs: a crash anywhere in 1-3 ends with the pack gone and no record of it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import plyvel

from . import _index as ix
from ._fsutil import fsync_dir
from ._pack import pack_name


def finish_pack_drops(packs_dir: Path, db: plyvel.DB) -> list[int]:
    """Complete every interrupted pack deletion; returns the pack numbers."""
    done = []
    for key, _ in db.iterator(prefix=ix.GC_DROP_PREFIX):
        pack_no = ix.pack_no_of_drop_key(key)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(packs_dir / pack_name(pack_no))
        done.append(pack_no)
    if done:
        fsync_dir(packs_dir)
        with db.write_batch(sync=True) as batch:
            for pack_no in done:
                batch.delete(ix.pack_key(pack_no))
                batch.delete(ix.drop_key(pack_no))
    return done


def drop_pack(packs_dir: Path, db: plyvel.DB, pack_no: int) -> int:
    """Delete a pack that holds no live blob (see the module docstring); returns its size."""
    path = packs_dir / pack_name(pack_no)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    db.put(ix.drop_key(pack_no), b"", sync=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fsync_dir(packs_dir)
    with db.write_batch(sync=True) as batch:
        batch.delete(ix.pack_key(pack_no))
        batch.delete(ix.drop_key(pack_no))
    return size
