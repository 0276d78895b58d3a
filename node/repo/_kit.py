"""The recovery kit: what a new machine needs to become this node again.

A kit holds the master secret, the identity seed, the store's fixed settings (chunker
bounds, compression, repo id) and the peers that keep copies, sealed under the node's
passphrase (Argon2id + XSalsa20-Poly1305, as the key file). With the kit and the
passphrase, ``recover`` builds a home with the same keys and identity, and the peers
hand back the snapshots: a lost machine needs nothing else.

The file is JSON: ``{"format", "version", "kdf": {...}, "sealed": base64}``; the sealed
payload is JSON too (see ``Kit``). Written with mode 0600.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from ._chunker import ChunkerParams
from ._errors import FormatError, HomeError, WrongPassphrase
from ._fsutil import atomic_write
from ._home import HomePaths
from ._identity import write_identity
from ._keys import MASTER_SECRET_SIZE, KdfParams, _stretch, wrap_master_secret, write_key_file
from ._store import Store, StoreMeta

KIT_FORMAT = "shadowvault-recovery-kit"
KIT_VERSION = 1
MAX_KIT_BYTES = 1 << 20


@dataclass(frozen=True)
class Kit:
    """The contents of a recovery kit."""

    master: bytes
    identity_seed: bytes
    repo_id: str
    chunker: ChunkerParams
    compression: int
    peers: list[dict[str, Any]] = field(default_factory=list)
    """Peer records (``peer_id``, ``addrs``, ``name``, roles, ``quota``) at export time."""
    created: float = field(default_factory=time.time)

    def payload(self) -> bytes:
        return json.dumps(
            {
                "master": base64.b64encode(self.master).decode(),
                "identity_seed": base64.b64encode(self.identity_seed).decode(),
                "repo_id": self.repo_id,
                "chunker": [self.chunker.min_size, self.chunker.avg_size, self.chunker.max_size],
                "compression": self.compression,
                "peers": self.peers,
                "created": self.created,
            }
        ).encode()

    @classmethod
    def from_payload(cls, raw: bytes) -> Kit:
        try:
            doc = json.loads(raw)
            lo, avg, hi = doc["chunker"]
            kit = cls(
                master=base64.b64decode(doc["master"], validate=True),
                identity_seed=base64.b64decode(doc["identity_seed"], validate=True),
                repo_id=str(doc["repo_id"]),
                chunker=ChunkerParams(int(lo), int(avg), int(hi)),
                compression=int(doc["compression"]),
                peers=[p for p in doc.get("peers", []) if isinstance(p, dict)],
                created=float(doc.get("created", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"the recovery kit is damaged: {exc}") from None
        if len(kit.master) != MASTER_SECRET_SIZE or len(kit.identity_seed) != 32:
            raise FormatError("the recovery kit holds keys of the wrong size")
        return kit


def seal_kit(kit: Kit, passphrase: str, params: KdfParams) -> bytes:
    """The kit file's bytes, sealed under ``passphrase``."""
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_stretch(passphrase, salt, params))
    doc = {
        "format": KIT_FORMAT,
        "version": KIT_VERSION,
        "kdf": {
            "algorithm": "argon2id",
            "opslimit": params.opslimit,
            "memlimit": params.memlimit,
            "salt": base64.b64encode(salt).decode(),
        },
        "sealed": base64.b64encode(bytes(box.encrypt(kit.payload()))).decode(),
    }
    return json.dumps(doc, indent=2).encode() + b"\n"


def write_kit(path: Path, kit: Kit, passphrase: str, params: KdfParams) -> None:
    """Write a kit file atomically, mode 0600."""
    atomic_write(path, seal_kit(kit, passphrase, params), mode=0o600)


def open_kit(path: Path, passphrase: str) -> Kit:
    """Read and unseal a kit file.

    Raises:
        FormatError: not a kit, a newer version, or damaged.
        WrongPassphrase: the passphrase does not open it.
    """
    try:
        raw = path.read_bytes()[: MAX_KIT_BYTES + 1]
    except OSError as exc:
        raise FormatError(f"cannot read recovery kit {path}: {exc.strerror}") from None
    if len(raw) > MAX_KIT_BYTES:
        raise FormatError(f"{path} is too large to be a recovery kit")
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != KIT_FORMAT:
            raise FormatError(f"{path} is not a ShadowVault recovery kit")
        if doc.get("version") != KIT_VERSION:
            raise FormatError(f"recovery kit version {doc.get('version')} is not supported")
        kdf = doc["kdf"]
        params = KdfParams(int(kdf["opslimit"]), int(kdf["memlimit"]))
        salt = base64.b64decode(kdf["salt"], validate=True)
        sealed = base64.b64decode(doc["sealed"], validate=True)
    except FormatError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise FormatError(f"the recovery kit {path} is damaged: {exc}") from None
    try:
        payload = nacl.secret.SecretBox(_stretch(passphrase, salt, params)).decrypt(sealed)
    except (nacl.exceptions.CryptoError, ValueError):
        raise WrongPassphrase() from None
    return Kit.from_payload(bytes(payload))


def init_home_from_kit(
    home: HomePaths, kit: Kit, passphrase: str, params: KdfParams, config_text: str
) -> None:
    """Create a home with the kit's keys, identity and store settings (an empty store).

    Raises:
        HomeError: the home already holds a node (nothing is touched).
    """
    import nacl.signing

    if home.holds_node():
        raise HomeError(f"{home.root} already holds a node; refusing to overwrite it")
    home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.keys_dir.mkdir(mode=0o700, exist_ok=True)
    write_key_file(home.master_key, wrap_master_secret(kit.master, passphrase, params))
    write_identity(home.identity_key, nacl.signing.SigningKey(kit.identity_seed))
    meta = StoreMeta(kit.repo_id, time.time_ns(), kit.chunker, kit.compression)
    Store.create(home.store, meta).close()
    if not home.config.exists():
        home.config.write_text(config_text)
