"""Errors raised by the repository layer.

The tree says whose fault each one is::

    RepoError                      base of everything raised here
    ├── HomeError                  the node home is missing, incomplete, or already initialised
    ├── PassphraseError            no passphrase could be obtained, or it is wrong
    │   └── WrongPassphrase        the passphrase does not unwrap the master key
    ├── StoreLocked                another process owns the store (carries its pid)
    ├── FormatError                the store or key file is foreign, damaged or too new
    ├── BlobNotFound               no blob with this id in the index
    ├── CorruptBlob                a blob's bytes fail their id, their MAC or decompression
    └── StoreFull                  the disk filled during a write; nothing was committed

Foreign exceptions (plyvel, OSError, nacl, zstd) are translated once, where they are
caught, with ``raise Ours(...) from exc``.
"""

from __future__ import annotations


class RepoError(Exception):
    """Base class of repository errors; ``str()`` is a one-line message for the user."""


class HomeError(RepoError):
    """The node home is missing, incomplete, or (for init) already holds a node."""


class PassphraseError(RepoError):
    """No passphrase was available (no env, no file, no terminal)."""


class WrongPassphrase(PassphraseError):
    """The passphrase does not unwrap the master key."""

    def __init__(self) -> None:
        super().__init__("wrong passphrase")


class StoreLocked(RepoError):
    """Another process holds the store's lock."""

    def __init__(self, pid: int | None, path: str) -> None:
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"store in use by {who} ({path}); stop it or use the CLI through its daemon"
        )


class FormatError(RepoError):
    """The store or key file is not one this version can read."""


class BlobNotFound(RepoError):
    """The index has no entry for a blob id."""

    def __init__(self, blob_id: bytes) -> None:
        self.blob_id = blob_id
        super().__init__(f"blob {blob_id.hex()[:16]} not found in the index")


class CorruptBlob(RepoError):
    """A blob's stored bytes fail verification (hash, authentication, or decompression)."""

    def __init__(self, blob_id: bytes, reason: str, pack: int | None = None) -> None:
        self.blob_id = blob_id
        self.reason = reason
        self.pack = pack
        where = f" in pack {pack:08d}" if pack is not None else ""
        super().__init__(f"blob {blob_id.hex()[:16]}{where} is damaged: {reason}")


class StoreFull(RepoError):
    """No space left while writing; the index was not advanced, so the store stays valid."""
