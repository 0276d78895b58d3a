"""The node's Ed25519 identity: signs snapshot records (and, on the mesh, requests).

The 32-byte seed is kept in ``keys/identity.key`` with mode 0600, readable without the
passphrase so that a daemon can join the mesh before it is unlocked. It can sign, but
it cannot decrypt anything: data keys come only from the wrapped master secret.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nacl.signing

from ._errors import FormatError
from ._fsutil import atomic_write

IDENTITY_FORMAT = "shadowvault-identity"
IDENTITY_VERSION = 1


def new_identity() -> nacl.signing.SigningKey:
    """A fresh random identity key."""
    return nacl.signing.SigningKey.generate()


def write_identity(path: Path, key: nacl.signing.SigningKey) -> None:
    """Store an identity key atomically with mode 0600."""
    doc = {
        "format": IDENTITY_FORMAT,
        "version": IDENTITY_VERSION,
        "ed25519_seed": base64.b64encode(bytes(key)).decode("ascii"),
    }
    atomic_write(path, json.dumps(doc, indent=2).encode() + b"\n", mode=0o600)


def read_identity(path: Path) -> nacl.signing.SigningKey:
    """Load an identity key.

    Raises:
        FormatError: missing, unreadable or not an identity file.
    """
    try:
        doc = json.loads(path.read_bytes())
        if doc.get("format") != IDENTITY_FORMAT or doc.get("version") != IDENTITY_VERSION:
            raise FormatError(f"{path} is not a ShadowVault identity file of version 1")
        seed = base64.b64decode(doc["ed25519_seed"], validate=True)
        return nacl.signing.SigningKey(seed)
    except FileNotFoundError as exc:
        raise FormatError(f"identity key {path} is missing") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"identity key {path} is damaged") from exc
