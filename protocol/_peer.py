"""libp2p peer ids of Ed25519 keys, without libp2p (libp2p peer-id spec, "Inlining keys").

An Ed25519 public key is inlined into its peer id: the raw id is the identity multihash
``0x00 0x24`` of the protobuf ``PublicKey{Type: Ed25519 (1), Data: key}``, 38 bytes in all;
its text form is base58btc (``12D3KooW...``). Because the key is *in* the id, a verifier
derives the public key from the peer id it already trusts (the Noise-authenticated peer, or
an owner named in a peer list) and never from a key that travels beside a signature.
"""

from __future__ import annotations

from ._wire import WireError

PEER_ID_SIZE = 38
"""Bytes in the raw form of an Ed25519 peer id."""

_PREFIX = b"\x00\x24\x08\x01\x12\x20"  # identity multihash, len 36, Type=Ed25519, Data len 32
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def peer_id_from_public(ed25519_public: bytes) -> bytes:
    """The raw (38-byte) peer id of an Ed25519 public key.

    Raises:
        ValueError: the key is not 32 bytes.
    """
    if len(ed25519_public) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _PREFIX + bytes(ed25519_public)


def public_of_peer_id(raw: bytes) -> bytes:
    """The Ed25519 public key inlined in a raw peer id.

    Raises:
        WireError: not the raw peer id of an Ed25519 key.
    """
    if len(raw) != PEER_ID_SIZE or not raw.startswith(_PREFIX):
        raise WireError("not an Ed25519 peer id")
    return bytes(raw[len(_PREFIX) :])


def peer_id_text(raw: bytes) -> str:
    """base58btc text of a raw peer id (``12D3KooW...``)."""
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    pad = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * pad + out


def parse_peer_id(text: str) -> bytes:
    """The raw form of a base58 Ed25519 peer id.

    Raises:
        WireError: not base58, or not the id of an Ed25519 key.
    """
    if not text or len(text) > 128:
        raise WireError("a peer id is 1 to 128 base58 characters")
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise WireError(f"peer id {text!r} is not base58")
        n = n * 58 + digit
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    raw = b"\0" * pad + body
    public_of_peer_id(raw)
    return raw
