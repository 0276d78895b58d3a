"""Holds: a snapshot under hold cannot be forgotten (nor its data collected) until a date.

The check lives at the lowest level that deletes a snapshot (``delete_snapshot_record``),
so no command or API call can get around it; gc marks from every snapshot record, so a
held snapshot's data stays as long as its record does. Holds are records in the index
(``h`` + snapshot id -> msgpack ``{until_ns, reason, created_ns}``); an expired hold no
longer protects anything and is ignored.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol import BlobId

from . import _index as ix
from ._errors import FormatError, RepoError
from ._store import Store


class SnapshotHeld(RepoError):
    """The snapshot is under a hold; it cannot be forgotten before the hold ends."""

    def __init__(self, hold: Hold) -> None:
        super().__init__(
            f"snapshot {hold.snapshot_id.short} is held until {hold.until_iso}"
            + (f" ({hold.reason})" if hold.reason else "")
            + "; it cannot be forgotten before then (release the hold first)"
        )
        self.hold = hold


@dataclass(frozen=True, slots=True)
class Hold:
    """One hold on one snapshot."""

    snapshot_id: BlobId
    until_ns: int
    reason: str
    created_ns: int

    @property
    def until_iso(self) -> str:
        return dt.datetime.fromtimestamp(self.until_ns / 1e9, dt.UTC).isoformat()

    def active(self, now_ns: int | None = None) -> bool:
        return self.until_ns > (time.time_ns() if now_ns is None else now_ns)

    def encode(self) -> bytes:
        return bytes(
            msgpack.packb(
                {"until_ns": self.until_ns, "reason": self.reason, "created_ns": self.created_ns}
            )
        )

    @classmethod
    def decode(cls, snapshot_id: BlobId, raw: bytes) -> Hold:
        """Raises FormatError for a damaged record."""
        try:
            doc = msgpack.unpackb(raw)
            return cls(
                snapshot_id, int(doc["until_ns"]), str(doc["reason"]), int(doc["created_ns"])
            )
        except Exception as exc:
            raise FormatError(f"hold record of snapshot {snapshot_id.short} is damaged") from exc

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id.hex(),
            "until": self.until_iso,
            "reason": self.reason,
            "created": dt.datetime.fromtimestamp(self.created_ns / 1e9, dt.UTC).isoformat(),
            "active": self.active(),
        }


def get_hold(store: Store, snapshot_id: bytes) -> Hold | None:
    """The hold on a snapshot (active or expired), or None."""
    raw = store.get_record(ix.HOLD_PREFIX + bytes(snapshot_id))
    return None if raw is None else Hold.decode(BlobId(bytes(snapshot_id)), raw)


def check_not_held(store: Store, snapshot_id: bytes) -> None:
    """Raises SnapshotHeld if an active hold protects the snapshot.

    A damaged hold record counts as a hold (it raises FormatError): never delete what
    might be protected.
    """
    hold = get_hold(store, snapshot_id)
    if hold is not None and hold.active():
        raise SnapshotHeld(hold)


def set_hold(store: Store, snapshot_id: BlobId, until_ns: int, reason: str = "") -> Hold:
    """Hold a snapshot until ``until_ns``. An existing active hold is only ever extended.

    Raises:
        RepoError: the date is not in the future, the snapshot does not exist, or it
            would shorten an active hold (release it first).
    """
    now = time.time_ns()
    if until_ns <= now:
        raise RepoError("a hold must end in the future")
    with store.pins.lock:  # one step with respect to delete_snapshot_record
        return _set_hold(store, snapshot_id, until_ns, reason, now)


def _set_hold(store: Store, snapshot_id: BlobId, until_ns: int, reason: str, now: int) -> Hold:
    if store.get_record(ix.SNAPSHOT_PREFIX + bytes(snapshot_id)) is None:
        raise RepoError(f"no snapshot {snapshot_id.short}")
    old = get_hold(store, snapshot_id)
    if old is not None and old.active(now) and old.until_ns > until_ns:
        raise RepoError(
            f"snapshot {snapshot_id.short} is already held until {old.until_iso}; "
            "a hold can be extended, not shortened (release it first)"
        )
    hold = Hold(snapshot_id, until_ns, reason, now)
    store.put_records([(ix.HOLD_PREFIX + bytes(snapshot_id), hold.encode())])
    return hold


def release_hold(store: Store, snapshot_id: BlobId) -> Hold | None:
    """Remove the hold on a snapshot; returns the hold that was there (or None)."""
    old = get_hold(store, snapshot_id)
    if old is not None:
        store.put_records([(ix.HOLD_PREFIX + bytes(snapshot_id), None)])
    return old


def list_holds(store: Store) -> list[Hold]:
    """Every hold record (active and expired), by snapshot id."""
    return [
        Hold.decode(BlobId(key[1:]), raw)
        for key, raw in store.iter_records(ix.HOLD_PREFIX)
        if len(key) == 33
    ]
