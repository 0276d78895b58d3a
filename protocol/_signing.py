"""Ed25519 signatures over domain-separated bytes, checked against a peer id.

Every signed mesh structure names its signer by peer id, and the verifier derives the
public key from that id (``public_of_peer_id``). A signature is never checked against a key
carried beside it, the mistake of the Go ShadowVault (shadowvault-go-review.md 4.2).
"""

from __future__ import annotations

import nacl.exceptions
import nacl.signing

from ._peer import public_of_peer_id
from ._wire import ErrorCode, WireError

SIGNATURE_SIZE = 64


def sign(key: nacl.signing.SigningKey, domain: bytes, message: bytes) -> bytes:
    """Ed25519 signature of ``domain || message`` (64 bytes)."""
    return bytes(key.sign(domain + message).signature)


def verify(peer_id: bytes, domain: bytes, message: bytes, signature: bytes) -> None:
    """Check that ``peer_id``'s key signed ``domain || message``.

    Raises:
        WireError: code bad_signature if it did not (or the id holds no Ed25519 key).
    """
    try:
        public = public_of_peer_id(peer_id)
        nacl.signing.VerifyKey(public).verify(domain + message, signature)
    except (WireError, nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
        raise WireError("signature does not verify", ErrorCode.BAD_SIGNATURE) from exc
