"""The master key, its passphrase wrapping, and the subkeys derived from it.

One random 32-byte master secret per node. It is stored only wrapped: the passphrase is
stretched with Argon2id (parameters and salt stored beside the wrapped secret) into a key
for XSalsa20-Poly1305 (``nacl.secret.SecretBox``). Changing the passphrase re-wraps the
same master secret, so no data is re-encrypted.

Subkeys come from BLAKE3's key-derivation mode with a distinct context string each, so a
leak of one (say, the dedup key) tells nothing about another.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from ._errors import FormatError, WrongPassphrase
from ._fsutil import atomic_write

KEY_FILE_FORMAT = "shadowvault-key"
KEY_FILE_VERSION = 1
MASTER_SECRET_SIZE = 32


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost: ``opslimit`` passes over ``memlimit`` bytes."""

    opslimit: int
    memlimit: int


KDF_PROFILES: dict[str, KdfParams] = {
    # The default: 4 passes over 32 MiB, ~0.1 s here. Above OWASP's Argon2id minimums
    # (19 MiB x 2, or 46 MiB x 1) for each guess of a stolen key file, and small enough
    # that unlocking never dominates a command's peak memory (libsodium's MODERATE,
    # 256 MiB, made every command's peak RSS 330 MB, 2.3x restic's).
    "standard": KdfParams(4, 32 * 1024 * 1024),
    "moderate": KdfParams(
        nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE
    ),
    "sensitive": KdfParams(
        nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
    ),
    # Cheapest legal parameters, for test suites only: never offered by the CLI's help.
    "testing-only-insecure": KdfParams(
        nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN
    ),
}
DEFAULT_KDF_PROFILE = "standard"


@dataclass(frozen=True, slots=True)
class Subkeys:
    """Keys derived from the master secret, one per purpose."""

    data: bytes
    """XChaCha20-Poly1305 key for file-content blobs."""
    metadata: bytes
    """XChaCha20-Poly1305 key for trees, snapshot records and manifests."""
    dedup: bytes
    """BLAKE3 key for the plaintext-chunk -> blob id index."""
    chunker_seed: int
    """Seed of the FastCDC gear table, so chunk boundaries do not fingerprint content."""


def derive_subkeys(master: bytes) -> Subkeys:
    """Derive every subkey from a master secret (pure, deterministic)."""

    def kdf(context: str) -> bytes:
        return bytes(blake3.blake3(master, derive_key_context=context).digest())

    seed = int.from_bytes(kdf("shadowvault 2026-11 chunker seed")[:4], "little")
    return Subkeys(
        data=kdf("shadowvault 2026-11 data key"),
        metadata=kdf("shadowvault 2026-11 metadata key"),
        dedup=kdf("shadowvault 2026-11 dedup key"),
        chunker_seed=seed,
    )


def new_master_secret() -> bytes:
    """Return a fresh random master secret."""
    return nacl.utils.random(MASTER_SECRET_SIZE)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _stretch(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    return bytes(
        nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode("utf-8"),
            salt,
            opslimit=params.opslimit,
            memlimit=params.memlimit,
        )
    )


def wrap_master_secret(master: bytes, passphrase: str, params: KdfParams) -> dict[str, Any]:
    """Return the key-file document holding ``master`` wrapped by ``passphrase``."""
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_stretch(passphrase, salt, params))
    wrapped = box.encrypt(master)
    return {
        "format": KEY_FILE_FORMAT,
        "version": KEY_FILE_VERSION,
        "kdf": {
            "algorithm": "argon2id",
            "opslimit": params.opslimit,
            "memlimit": params.memlimit,
            "salt": _b64(salt),
        },
        "wrapped": _b64(bytes(wrapped)),
    }


def unwrap_master_secret(doc: dict[str, Any], passphrase: str) -> bytes:
    """Unwrap the master secret from a key-file document.

    Raises:
        FormatError: the document is not a key file this version can read.
        WrongPassphrase: the passphrase does not authenticate the wrapped secret.
    """
    if doc.get("format") != KEY_FILE_FORMAT:
        raise FormatError("not a ShadowVault key file")
    version = doc.get("version")
    if version != KEY_FILE_VERSION:
        raise FormatError(
            f"key file version {version} is not supported (this build reads {KEY_FILE_VERSION})"
        )
    try:
        kdf = doc["kdf"]
        if kdf["algorithm"] != "argon2id":
            raise FormatError(f"unknown key derivation {kdf['algorithm']!r}")
        params = KdfParams(int(kdf["opslimit"]), int(kdf["memlimit"]))
        salt = base64.b64decode(kdf["salt"], validate=True)
        wrapped = base64.b64decode(doc["wrapped"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"key file is damaged: {exc}") from exc
    box = nacl.secret.SecretBox(_stretch(passphrase, salt, params))
    try:
        master = bytes(box.decrypt(wrapped))
    except nacl.exceptions.CryptoError as exc:
        raise WrongPassphrase() from exc
    if len(master) != MASTER_SECRET_SIZE:
        raise FormatError("key file holds a master secret of the wrong size")
    return master


def read_key_file(path: Path) -> dict[str, Any]:
    """Load a key-file document.

    Raises:
        FormatError: the file is not JSON or not an object.
    """
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"key file {path} is not readable JSON") from exc
    if not isinstance(doc, dict):
        raise FormatError(f"key file {path} is damaged")
    return doc


def write_key_file(path: Path, doc: dict[str, Any]) -> None:
    """Write a key-file document atomically with mode 0600."""
    atomic_write(path, json.dumps(doc, indent=2).encode() + b"\n", mode=0o600)


def kdf_params_from_env() -> KdfParams:
    """The Argon2id profile named by ``SHADOWVAULT_KDF_PROFILE``, default ``standard``.

    Raises:
        ValueError: an unknown profile name.
    """
    name = os.environ.get("SHADOWVAULT_KDF_PROFILE", DEFAULT_KDF_PROFILE)
    try:
        return KDF_PROFILES[name]
    except KeyError:
        raise ValueError(
            f"SHADOWVAULT_KDF_PROFILE={name!r}: expected one of {', '.join(KDF_PROFILES)}"
        ) from None
