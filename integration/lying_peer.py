"""Run the ShadowVault CLI as a peer that serves blobs as they are on its disk, unchecked.

The node's own server checks every blob it serves against its id (``Store.read``), so a
node whose packs rotted answers "missing" rather than send wrong bytes. A peer running
other code (an old version, a bug, an attacker) may not: this wrapper replaces the
served read with a raw ``pread`` of the blob's bytes, so that integration tests can show
that the fetching side alone keeps bad bytes out. Used as
``ClusterNode.daemon_wrap = (sys.executable, __file__)``; argv after it is the console
script and its arguments.
"""

from __future__ import annotations

import os
import runpy
import sys

from node.p2p import _mesh
from node.repo import RepoError
from protocol import BlobId


def _raw_read(self: _mesh.RepoBlobSource, blob_id: BlobId) -> bytes | None:
    store = self._repo.store
    try:
        loc = store.location(blob_id)
    except RepoError:
        return self._state.manifest(blob_id)
    fd = os.open(store.pack_path(loc.pack), os.O_RDONLY)
    try:
        return os.pread(fd, loc.stored_len, loc.offset)
    finally:
        os.close(fd)


_mesh.RepoBlobSource.read = _raw_read  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
