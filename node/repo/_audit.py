"""The audit trail: destructive and security-relevant actions in a hash-chained, signed log.

Each entry is a record ``a + seq (u64 BE)`` whose value is msgpack
``{"body": bytes, "sig": 64 bytes}``. ``body`` is msgpack
``[version, seq, time_ns, action, details, prev]`` where ``prev`` is the hash of the
previous entry's body (32 zero bytes for the first). An entry's hash is
``BLAKE3(ENTRY_DOMAIN || body)`` and ``sig`` is Ed25519 by the node identity over
``ENTRY_DOMAIN || hash``. The head record (key ``a`` alone) holds msgpack
``{"seq", "hash", "sig"}``, signed over ``HEAD_DOMAIN || seq (u64 BE) || hash``, so a
removed last entry is detected too. Entry and head are written in one synced batch.

What verification proves: an entry altered, removed or inserted anywhere breaks a
signature, the sequence or the chain. Whoever holds the identity key can rewrite the
whole log; the log protects against everyone else (a thief with the disk, a bug, a
careless hand with LevelDB tools).
"""

from __future__ import annotations

import datetime as dt
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import blake3
import msgpack
import nacl.exceptions
import nacl.signing

from . import _index as ix
from ._errors import RepoError
from ._home import HomePaths
from ._repository import Repository, identity_of
from ._store import Store

ENTRY_DOMAIN = b"shadowvault/audit-entry/v1\x00"
HEAD_DOMAIN = b"shadowvault/audit-head/v1\x00"
AUDIT_VERSION = 1
HEAD_KEY = ix.AUDIT_PREFIX
_SEQ = struct.Struct(">Q")
_ZERO = bytes(32)
_lock = threading.Lock()  # appends are read-modify-write of the head


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One logged action."""

    seq: int
    time_ns: int
    action: str
    details: dict[str, Any]
    hash: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": dt.datetime.fromtimestamp(self.time_ns / 1e9, dt.UTC).isoformat(),
            "action": self.action,
            "details": self.details,
            "hash": self.hash.hex(),
        }


@dataclass
class AuditVerifyReport:
    """What ``verify_audit`` found; ``ok`` when the log is whole and authentic."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "problems": self.problems}


def _entry_key(seq: int) -> bytes:
    return ix.AUDIT_PREFIX + _SEQ.pack(seq)


def _hash(body: bytes) -> bytes:
    return bytes(blake3.blake3(ENTRY_DOMAIN + body).digest())


def _head_message(seq: int, digest: bytes) -> bytes:
    return HEAD_DOMAIN + _SEQ.pack(seq) + digest


def append_audit(repo: Repository, action: str, details: dict[str, Any]) -> AuditEntry:
    """Append one entry, signed with the node identity.

    Args:
        repo: the open repository.
        action: a short verb: forget, gc, hold, release, restore, key_change, ...
        details: msgpack-able facts (ids as hex strings, counts, reasons); no secrets.

    Raises:
        RepoError: the head record is damaged (run ``audit verify``).
    """
    return append_audit_to(repo.store, repo.identity, action, details)


def append_audit_to(
    store: Store, identity: nacl.signing.SigningKey, action: str, details: dict[str, Any]
) -> AuditEntry:
    """``append_audit`` for a store opened without the master key (key changes)."""
    with _lock:
        seq, prev = _head(store)
        now = time.time_ns()
        body = bytes(msgpack.packb([AUDIT_VERSION, seq + 1, now, action, details, prev]))
        digest = _hash(body)
        sig = bytes(identity.sign(ENTRY_DOMAIN + digest).signature)
        head_sig = bytes(identity.sign(_head_message(seq + 1, digest)).signature)
        store.put_records(
            [
                (_entry_key(seq + 1), bytes(msgpack.packb({"body": body, "sig": sig}))),
                (HEAD_KEY, bytes(msgpack.packb({"seq": seq + 1, "hash": digest, "sig": head_sig}))),
            ]
        )
    return AuditEntry(seq + 1, now, action, details, digest)


@contextmanager
def audit_without_unlock(home: HomePaths) -> Iterator[Callable[[str, dict[str, Any]], AuditEntry]]:
    """Append entries for a change made without unlocking the node (API tokens).

    The identity key signs (it needs no passphrase) and the store is opened for its
    index only. Enter it before making the change, so a store that cannot be opened
    (another process owns it) stops the change instead of leaving it unlogged.

    Raises:
        StoreLocked: another process owns the store.
        FormatError, HomeError: no node here.
    """
    identity = identity_of(home)
    store = Store.open(home.store)
    try:
        yield lambda action, details: append_audit_to(store, identity, action, details)
    finally:
        store.close()


def key_file_digest(home: HomePaths) -> str:
    """BLAKE3 (hex) of the wrapped master key file: it changes with every passphrase
    change, so a daemon can tell a real change from a request to log one."""
    return str(blake3.blake3(home.master_key.read_bytes()).hexdigest())


def _head(store: Store) -> tuple[int, bytes]:
    raw = store.get_record(HEAD_KEY)
    if raw is None:
        return 0, _ZERO
    try:
        doc = msgpack.unpackb(raw)
        return int(doc["seq"]), bytes(doc["hash"])
    except Exception as exc:
        raise RepoError("the audit log's head record is damaged; run `audit verify`") from exc


def _decode(key: bytes, raw: bytes) -> tuple[AuditEntry, bytes, bytes]:
    """(entry, body, sig); raises ValueError for anything malformed."""
    try:
        doc = msgpack.unpackb(raw)
        body, sig = bytes(doc["body"]), bytes(doc["sig"])
        version, seq, t, action, details, prev = msgpack.unpackb(body)
    except Exception as exc:
        raise ValueError(f"entry {key[1:].hex()} does not decode") from exc
    if version != AUDIT_VERSION or not isinstance(details, dict):
        raise ValueError(f"entry {key[1:].hex()} has an unknown format")
    return AuditEntry(int(seq), int(t), str(action), details, _hash(body)), bytes(prev), sig


def list_audit(repo: Repository, since_ns: int | None = None) -> list[AuditEntry]:
    """Entries in order (from ``since_ns`` on); damaged ones are skipped (``verify`` says)."""
    out = []
    for key, raw in repo.store.iter_records(ix.AUDIT_PREFIX):
        if len(key) != 1 + _SEQ.size:
            continue
        try:
            entry, _, _ = _decode(key, raw)
        except ValueError:
            continue
        if since_ns is None or entry.time_ns >= since_ns:
            out.append(entry)
    return out


def verify_audit(repo: Repository) -> AuditVerifyReport:
    """Check every signature, the sequence, the hash chain and the head."""
    report = AuditVerifyReport()
    pub = repo.identity.verify_key
    expected_seq = 1
    prev = _ZERO
    for key, raw in repo.store.iter_records(ix.AUDIT_PREFIX):
        if len(key) != 1 + _SEQ.size:
            continue
        report.entries += 1
        key_seq = _SEQ.unpack(key[1:])[0]
        try:
            entry, entry_prev, sig = _decode(key, raw)
        except ValueError as exc:
            report.problems.append(str(exc))
            expected_seq, prev = key_seq + 1, _ZERO
            continue
        if key_seq != entry.seq:
            report.problems.append(f"entry {key_seq}: its body says seq {entry.seq} (moved)")
        if entry.seq != expected_seq:
            report.problems.append(
                f"entry {entry.seq}: expected seq {expected_seq} (entries removed before it)"
            )
        if entry_prev != prev:
            report.problems.append(
                f"entry {entry.seq}: does not chain to the entry before it "
                "(an earlier entry was altered or removed)"
            )
        try:
            pub.verify(ENTRY_DOMAIN + entry.hash, sig)
        except nacl.exceptions.BadSignatureError:
            report.problems.append(f"entry {entry.seq}: bad signature (altered)")
        expected_seq, prev = entry.seq + 1, entry.hash
    raw_head = repo.store.get_record(HEAD_KEY)
    if raw_head is None:
        if report.entries:
            report.problems.append("the head record is missing")
        return report
    try:
        head = msgpack.unpackb(raw_head)
        seq, digest, sig = int(head["seq"]), bytes(head["hash"]), bytes(head["sig"])
        pub.verify(_head_message(seq, digest), sig)
    except nacl.exceptions.BadSignatureError:
        report.problems.append("the head record has a bad signature")
        return report
    except Exception:
        report.problems.append("the head record does not decode")
        return report
    if seq != expected_seq - 1 or digest != prev:
        report.problems.append(
            f"the head names entry {seq}, the log ends at {expected_seq - 1} "
            "(entries removed at the end)"
        )
    return report
