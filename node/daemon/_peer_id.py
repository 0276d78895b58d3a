"""libp2p peer ids for Ed25519 keys (libp2p peer-id spec, "Inlining keys").

An Ed25519 public key is small enough to be inlined: peer id = base58btc of the
identity multihash (0x00, length) of the protobuf ``PublicKey{Type: Ed25519, Data: key}``.
Such ids start with ``12D3KooW``.
"""

from __future__ import annotations

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def peer_id_of(ed25519_public: bytes) -> str:
    """The libp2p peer id of an Ed25519 public key (32 bytes)."""
    if len(ed25519_public) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    proto = b"\x08\x01\x12\x20" + ed25519_public  # Type=1 (Ed25519), Data=<32 bytes>
    return _base58(bytes([0x00, len(proto)]) + proto)
