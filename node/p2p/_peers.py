"""The peer list: who this node stores for, who it stores at, and where they are.

Kept in the store's LevelDB through its record API, one record per peer::

    "P" + raw peer id (38)  ->  msgpack {"v": 1, "name", "addrs", "store_for", "store_at",
                                         "quota", "last_seen", "held_for"}

Trust is explicit: a peer in neither role may connect, but every request it makes is
refused with ``not_authorised``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import msgpack

from protocol import PEER_ID_SIZE, parse_peer_id, peer_id_text

PEER_PREFIX = b"P"
PEER_RECORD_VERSION = 1


class RecordStore(Protocol):
    """The part of ``node.repo.Store`` the mesh keeps its records in."""

    def get_record(self, key: bytes) -> bytes | None: ...

    def put_records(
        self, items: list[tuple[bytes, bytes | None]], *, sync: bool = True
    ) -> None: ...

    def iter_records(self, prefix: bytes) -> Any: ...


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """One known peer."""

    peer_id: str
    """base58 peer id (``12D3KooW...``)."""
    name: str = ""
    addrs: tuple[str, ...] = ()
    """Multiaddrs where it listens (without ``/p2p/``), newest knowledge first."""
    store_for: bool = False
    """This node keeps encrypted copies of that peer's snapshots."""
    store_at: bool = False
    """That peer is asked to keep copies of ours."""
    quota: int = 0
    """Bytes this node keeps at most for that peer (0: no limit)."""
    last_seen: int = 0
    """Unix seconds of the last connection (0: never)."""
    held_for: int = 0
    """Bytes of that peer's blobs this node holds."""
    raw_id: bytes = field(default=b"", compare=False)

    @property
    def authorised(self) -> bool:
        return self.store_for or self.store_at

    def to_json(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "addrs": list(self.addrs),
            "store_for": self.store_for,
            "store_at": self.store_at,
            "quota": self.quota,
            "last_seen": self.last_seen,
            "held_for": self.held_for,
        }


def _key(raw_id: bytes) -> bytes:
    return PEER_PREFIX + raw_id


def _encode(rec: PeerRecord) -> bytes:
    return bytes(
        msgpack.packb(
            {
                "v": PEER_RECORD_VERSION,
                "name": rec.name,
                "addrs": list(rec.addrs),
                "store_for": rec.store_for,
                "store_at": rec.store_at,
                "quota": rec.quota,
                "last_seen": rec.last_seen,
                "held_for": rec.held_for,
            }
        )
    )


def _decode(raw_id: bytes, raw: bytes) -> PeerRecord | None:
    try:
        doc = msgpack.unpackb(raw)
        if doc.get("v") != PEER_RECORD_VERSION:
            return None
        return PeerRecord(
            peer_id=peer_id_text(raw_id),
            name=str(doc["name"]),
            addrs=tuple(str(a) for a in doc["addrs"]),
            store_for=bool(doc["store_for"]),
            store_at=bool(doc["store_at"]),
            quota=int(doc["quota"]),
            last_seen=int(doc["last_seen"]),
            held_for=int(doc["held_for"]),
            raw_id=raw_id,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class PeerBook:
    """Peer records in the store. Reads and writes are small and synchronous."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    def get(self, raw_id: bytes) -> PeerRecord | None:
        raw = self._store.get_record(_key(raw_id))
        return None if raw is None else _decode(raw_id, raw)

    def put(self, rec: PeerRecord) -> PeerRecord:
        raw_id = parse_peer_id(rec.peer_id)
        rec = replace(rec, raw_id=raw_id)
        self._store.put_records([(_key(raw_id), _encode(rec))])
        return rec

    def add(
        self,
        local_raw_id: bytes,
        peer_id: str,
        *,
        addrs: Sequence[str] = (),
        name: str = "",
        store_for: bool = False,
        store_at: bool = False,
        quota: int = 0,
    ) -> PeerRecord:
        """Add a peer or update its record (addresses are merged, newest first).

        Raises:
            WireError: ``peer_id`` is not an Ed25519 peer id.
            ValueError: it is our own id (``local_raw_id``), a negative quota, or a bad
                address.
        """
        raw = parse_peer_id(peer_id)
        if raw == local_raw_id:
            raise ValueError("a node cannot be its own peer")
        if quota < 0:
            raise ValueError("a quota is a number of bytes >= 0")
        clean = [strip_p2p(a) for a in addrs]
        old = self.get(raw)
        merged = tuple(dict.fromkeys([*clean, *(old.addrs if old else ())]))
        rec = PeerRecord(
            peer_id=peer_id_text(raw),
            name=name or (old.name if old else ""),
            addrs=merged,
            store_for=store_for,
            store_at=store_at,
            quota=quota,
            last_seen=old.last_seen if old else 0,
            held_for=old.held_for if old else 0,
        )
        return self.put(rec)

    def remove(self, raw_id: bytes) -> bool:
        """Forget a peer; True if it was known. Data held for it is not deleted here."""
        if self.get(raw_id) is None:
            return False
        self._store.put_records([(_key(raw_id), None)])
        return True

    def all(self) -> list[PeerRecord]:
        out = []
        for key, raw in self._store.iter_records(PEER_PREFIX):
            raw_id = bytes(key[len(PEER_PREFIX) :])
            if len(raw_id) != PEER_ID_SIZE:
                continue
            rec = _decode(raw_id, raw)
            if rec is not None:
                out.append(rec)
        return out

    def update(self, raw_id: bytes, **changes: Any) -> PeerRecord | None:
        """Change fields of a known peer; None if unknown."""
        rec = self.get(raw_id)
        if rec is None:
            return None
        rec = replace(rec, **changes)
        self._store.put_records([(_key(raw_id), _encode(rec))], sync=False)
        return rec


def strip_p2p(addr: str) -> str:
    """``/ip4/1.2.3.4/tcp/5/p2p/<id>`` -> ``/ip4/1.2.3.4/tcp/5`` (validates the address)."""
    import multiaddr  # type: ignore[import-untyped]  # 12 ms; retention uses this module without it

    ma = multiaddr.Multiaddr(addr)
    try:
        return str(ma.decapsulate(multiaddr.Multiaddr(f"/p2p/{ma.value_for_protocol('p2p')}")))
    except Exception:
        return str(ma)


def peer_change(
    before: PeerRecord | None, after: PeerRecord | None
) -> tuple[str, dict[str, Any]] | None:
    """The audit entry (action, details) for a change of the peer list, or None when
    only addresses, name or last-seen changed (trust did not).

    Actions: ``peer_add``, ``peer_remove``, ``peer_change`` (roles or quota).
    """
    rec = after or before
    if rec is None:
        return None

    def trust(r: PeerRecord | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"store_for": r.store_for, "store_at": r.store_at, "quota": r.quota}

    if before is None:
        return "peer_add", {"peer": rec.peer_id, "name": rec.name, **(trust(after) or {})}
    if after is None:
        return "peer_remove", {"peer": rec.peer_id, "name": rec.name, **(trust(before) or {})}
    if trust(before) == trust(after):
        return None
    return "peer_change", {"peer": rec.peer_id, "before": trust(before), "after": trust(after)}
