"""The repository: a node's store opened with its keys.

``init_home`` creates everything a node needs; ``open_repository`` unlocks it. A
``Repository`` seals and opens blobs with the right subkey for their kind and gives the
keyed dedup hash; layers above never touch packs or keys directly.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import nacl.signing

from protocol import BlobId

from ._chunker import Chunker, ChunkerParams
from ._errors import FormatError, HomeError
from ._home import HomePaths
from ._identity import new_identity, read_identity, write_identity
from ._index import BlobLocation
from ._keys import (
    DEFAULT_KDF_PROFILE,
    KDF_PROFILES,
    KdfParams,
    Subkeys,
    derive_subkeys,
    new_master_secret,
    read_key_file,
    unwrap_master_secret,
    wrap_master_secret,
    write_key_file,
)
from ._pack import BlobKind
from ._seal import Sealer
from ._store import Store, StoreMeta


@dataclass(frozen=True, slots=True)
class InitOptions:
    """Choices fixed when a node home is created."""

    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    compression: int = 3
    kdf: KdfParams | None = None
    """Argon2id cost; None means the default profile."""


class Repository:
    """A node's store plus the keys that open it.

    Ownership: the repository owns its ``Store``; ``close`` releases it.
    """

    def __init__(
        self, home: HomePaths, store: Store, keys: Subkeys, identity: nacl.signing.SigningKey
    ) -> None:
        self.home = home
        self.store = store
        self.keys = keys
        self.identity = identity
        # Trees get their own dedup key: a file chunk whose bytes equal a tree's must
        # never be taken for that tree (it is sealed with the data key, not metadata).
        self._tree_dedup = bytes(
            blake3.blake3(keys.dedup, derive_key_context="shadowvault 2026-11 tree dedup").digest()
        )

    @property
    def chunker_params(self) -> ChunkerParams:
        return self.store.meta.chunker

    @property
    def default_compression(self) -> int:
        return self.store.meta.compression

    def new_chunker(self) -> Chunker:
        """A chunker with this store's parameters and secret seed (one per thread)."""
        return Chunker(self.chunker_params, self.keys.chunker_seed)

    def dedup_key(self, plaintext: bytes | memoryview) -> bytes:
        """The keyed hash of a plaintext chunk that the dedup index is keyed by."""
        return bytes(blake3.blake3(plaintext, key=self.keys.dedup).digest())

    def tree_dedup_key(self, plaintext: bytes) -> bytes:
        """The dedup-index key of a tree's plaintext (domain-separated from chunks)."""
        return bytes(blake3.blake3(plaintext, key=self._tree_dedup).digest())

    def key_for(self, kind: BlobKind) -> bytes:
        """The subkey that seals blobs of ``kind``.

        Raises:
            ValueError: foreign blobs are sealed by their owner, not by this node.
        """
        if kind is BlobKind.DATA:
            return self.keys.data
        if kind is BlobKind.FOREIGN:
            raise ValueError("foreign blobs cannot be opened here")
        return self.keys.metadata

    def load(self, blob_id: BlobId | bytes, loc: BlobLocation | None = None) -> bytes | memoryview:
        """Read, verify and open a blob; return its plaintext (bytes-like, read-only).

        Args:
            loc: its location, if the caller looked it up already (else looked up here).

        Raises:
            BlobNotFound, CorruptBlob
        """
        if loc is None:
            loc = self.store.location(blob_id)
        sealed = self.store.read_at(blob_id, loc)
        return Sealer.for_thread(0).open(blob_id, sealed, self.key_for(loc.kind))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def init_home(home: HomePaths, passphrase: str, options: InitOptions, config_text: str) -> str:
    """Create a node home: keys, identity, store and config. Returns the store's repo id.

    Raises:
        HomeError: the home already holds a node (nothing is touched).
    """
    if home.holds_node():
        raise HomeError(f"{home.root} already holds a node; refusing to overwrite it")
    options.chunker.validate()
    created_root = not home.root.exists()
    home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        home.keys_dir.mkdir(mode=0o700, exist_ok=True)
        master = new_master_secret()
        kdf = options.kdf or KDF_PROFILES[DEFAULT_KDF_PROFILE]
        write_key_file(home.master_key, wrap_master_secret(master, passphrase, kdf))
        write_identity(home.identity_key, new_identity())
        meta = StoreMeta.new(options.chunker, options.compression)
        Store.create(home.store, meta).close()
        if not home.config.exists():
            home.config.write_text(config_text)
    except BaseException:
        # Leave nothing half-made behind: a second init must start from scratch.
        if created_root:
            shutil.rmtree(home.root, ignore_errors=True)
        else:
            for path in (home.master_key, home.identity_key):
                path.unlink(missing_ok=True)
            shutil.rmtree(home.store, ignore_errors=True)
        raise
    return meta.repo_id


def unlock_master(home: HomePaths, passphrase: str) -> bytes:
    """Unwrap the master secret of a home.

    Raises:
        HomeError: no node here.
        FormatError, WrongPassphrase
    """
    if not home.master_key.exists():
        raise HomeError(f"no node at {home.root}; run `shadowvault init` first")
    return unwrap_master_secret(read_key_file(home.master_key), passphrase)


def open_repository(home: HomePaths, passphrase: str) -> Repository:
    """Unlock the keys (before touching the store) and open the store.

    Raises:
        HomeError, WrongPassphrase, FormatError, StoreLocked
    """
    master = unlock_master(home, passphrase)
    identity = read_identity(home.identity_key)
    if not home.store.exists():
        raise FormatError(f"the store of {home.root} is missing")
    store = Store.open(home.store)
    return Repository(home, store, derive_subkeys(master), identity)


def open_scratch_repository(repo: Repository, root: Path) -> Repository:
    """A new, empty store at ``root`` opened with ``repo``'s keys and identity.

    For work that must prove something without the node's own store: a drill from peers
    fetches a snapshot's blobs into it and restores from it, so not one blob is read
    from the node's store. Same chunker and compression settings; a different repo id.
    Not durable (``Store.create(durable=False)``): nothing in it outlives the work, so
    commits neither sync nor drop the pages the restore reads next.

    Ownership: the caller closes the returned repository and removes ``root``.

    Raises:
        FormatError: ``root`` already holds a store.
    """
    meta = StoreMeta.new(repo.store.meta.chunker, repo.store.meta.compression)
    store = Store.create(root, meta, durable=False)
    return Repository(repo.home, store, repo.keys, repo.identity)


def change_passphrase(home: HomePaths, old: str, new: str, kdf: KdfParams | None = None) -> None:
    """Re-wrap the master secret under a new passphrase; no data is re-encrypted.

    Raises:
        HomeError, FormatError, WrongPassphrase (for ``old``)
    """
    if not home.master_key.exists():
        raise HomeError(f"no node at {home.root}; run `shadowvault init` first")
    doc = read_key_file(home.master_key)
    master = unwrap_master_secret(doc, old)
    if kdf is None:  # keep the cost the user chose at init
        kdf = KdfParams(int(doc["kdf"]["opslimit"]), int(doc["kdf"]["memlimit"]))
    write_key_file(home.master_key, wrap_master_secret(master, new, kdf))


def identity_of(home: HomePaths) -> nacl.signing.SigningKey:
    """The node's identity key (no passphrase needed)."""
    return read_identity(home.identity_key)
