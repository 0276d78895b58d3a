"""Forget, holds and gc as operations: policy decisions applied to the store, audited.

The daemon and the CLI call these; each returns a dataclass with ``as_dict()`` for JSON.
Every action that deletes or protects data is appended to the audit log
(``node.repo.append_audit``); a dry run changes nothing and logs nothing.

Peers honour them too: forgetting, holding or releasing a snapshot we announced appends
a signed notice to our stream (``node.p2p.announce_retention``), which our holders pull;
gc keeps other owners' data as their streams and leases say
(``node.p2p.ForeignRetention``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.p2p import DEFAULT_OWNER_LEASE, ForeignRetention, announce_retention
from node.repo import (
    DEFAULT_REWRITE_BELOW,
    GcReport,
    Hold,
    HomePaths,
    RepoError,
    Repository,
    SnapshotHeld,
    append_audit,
    collect_garbage,
    delete_snapshot_record,
    get_hold,
    list_holds,
    list_snapshots,
    open_repository,
    release_hold,
    resolve_snapshot,
    set_hold,
)
from protocol import BlobId

from ._policy import Decision, Group, Policy, SnapshotInfo, TagList, apply_policy

_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN_RE = re.compile(r"(\d+)([smhdw])")


def parse_span(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w2d``: seconds. (For ``--grace`` and relative
    hold dates; here ``m`` is minutes, unlike ``--keep-within``'s months.)

    Raises:
        ValueError: anything else.
    """
    text = text.strip()
    pos = 0
    total = 0
    for m in _SPAN_RE.finditer(text):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _SECONDS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 15m, 2h, 7d, 1w")
    return float(total)


def parse_until(text: str, now: dt.datetime | None = None) -> int:
    """A hold's end: an ISO date (``2027-01-31``, midnight UTC), an ISO date-time (UTC
    unless it names a zone), or a span from now (``30d``). Returns ns since the epoch.

    Raises:
        ValueError: not one of those.
    """
    now = now or dt.datetime.now(dt.UTC)
    try:
        return int((now.timestamp() + parse_span(text)) * 1e9)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"invalid date {text!r}: use 2027-01-31, 2027-01-31T12:00:00Z or a span like 90d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


# -- forget --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForgetOptions:
    """What ``forget`` removes: snapshots named by id, or those a policy does not keep."""

    policy: Policy | None = None
    snapshots: Sequence[str] = ()
    """Snapshot references to forget outright (with no policy)."""
    group_by: Sequence[str] = ("host", "paths")
    only_tags: Sequence[TagList] = ()
    dry_run: bool = False
    prune: bool = False
    """Run gc afterwards."""
    grace_s: float = 0.0


@dataclass
class ForgetResult:
    """What forget decided and did."""

    dry_run: bool
    groups: list[Group] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    """Snapshots the policy would remove that a hold keeps."""
    gc: GcReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "groups": [g.as_dict() for g in self.groups],
            "removed": self.removed,
            "held": self.held,
            "gc": self.gc.as_dict() if self.gc else None,
        }


def run_forget(
    repo: Repository,
    opts: ForgetOptions,
    *,
    extra_roots: Iterable[bytes] = (),
    owner_lease_s: float | None = None,
) -> ForgetResult:
    """Forget snapshots by policy (restic's semantics, ``_policy``) or by id.

    A snapshot under an active hold is never removed: it is kept with the reason
    "held until ...". Removed snapshots that were announced to peers are named in a
    signed forget notice, so their holders may collect them. With ``prune``, gc runs
    afterwards (``extra_roots`` and ``owner_lease_s`` as for ``run_gc``).

    Raises:
        PolicyError: an empty or invalid policy (nothing is removed).
        RepoError: an unknown snapshot reference, or a held snapshot named by id.
    """
    if (opts.policy is None) == (not opts.snapshots):
        raise RepoError("give either snapshot ids or a policy, not both (and not neither)")
    snaps = list_snapshots(repo)
    result = ForgetResult(dry_run=opts.dry_run)
    if opts.policy is not None:
        infos = [
            SnapshotInfo(str(s.id), s.time_ns, s.host, tuple(s.paths), tuple(s.tags)) for s in snaps
        ]
        groups = apply_policy(infos, opts.policy, group_by=opts.group_by, only_tags=opts.only_tags)
        for group in groups:
            for i, d in enumerate(group.decisions):
                if d.keep:
                    continue
                hold = get_hold(repo.store, bytes.fromhex(d.snapshot.id))
                if hold is not None and hold.active():
                    group.decisions[i] = Decision(
                        d.snapshot, True, (f"held until {hold.until_iso}",)
                    )
                    result.held.append(d.snapshot.id)
        result.groups = groups
        doomed = [d.snapshot.id for g in groups for d in g.decisions if not d.keep]
    else:
        doomed = [str(resolve_snapshot(repo, ref, snaps).id) for ref in opts.snapshots]
        for snap_id in doomed:
            hold = get_hold(repo.store, bytes.fromhex(snap_id))
            if hold is not None and hold.active():
                raise SnapshotHeld(hold)
    if opts.dry_run:
        result.removed = doomed
        return result
    by_id = {str(s.id): s for s in snaps}
    for snap_id in doomed:
        snap = by_id[snap_id]
        assert snap.id is not None
        try:
            delete_snapshot_record(repo, snap.id)
        except SnapshotHeld:
            result.held.append(snap_id)  # held between the decision and now
            continue
        result.removed.append(snap_id)
    if result.removed:
        _announce(repo, "forget", [bytes.fromhex(i) for i in result.removed])
    if result.removed or result.held:
        append_audit(
            repo,
            "forget",
            {
                "removed": result.removed,
                "held": result.held,
                "policy": opts.policy.as_dict() if opts.policy else None,
            },
        )
    if opts.prune:
        result.gc = run_gc(
            repo, grace_s=opts.grace_s, extra_roots=extra_roots, owner_lease_s=owner_lease_s
        )
    return result


# -- gc -------------------------------------------------------------------------------------


@dataclass
class GcResult(GcReport):
    """gc's report, and what retention decided for other owners' data (``foreign``)."""

    foreign: dict[str, Any] = field(default_factory=dict)


def run_gc(
    repo: Repository,
    *,
    dry_run: bool = False,
    grace_s: float = 0.0,
    extra_roots: Iterable[bytes] = (),
    rewrite_below: float = DEFAULT_REWRITE_BELOW,
    owner_lease_s: float | None = None,
) -> GcResult:
    """Collect garbage (``node.repo.collect_garbage``) and log it.

    Other owners' data (FOREIGN blobs) goes only as its owner's signed stream says (a
    forget notice, no hold) or when the owner has been silent for ``owner_lease_s``
    (``node.p2p.ForeignRetention``); the report's ``foreign`` says what was decided.

    Args:
        extra_roots: blob ids kept besides own snapshots' and what other owners keep.
        owner_lease_s: seconds without a signed word from an owner before its unheld
            data may go (config ``gc.owner_lease``; 0: never; None: its default, 90 days).

    Raises:
        GcError: another gc is running, or a kept snapshot cannot be read.
    """
    lease = DEFAULT_OWNER_LEASE if owner_lease_s is None else owner_lease_s
    keep = ForeignRetention(repo, owner_lease_s=lease)
    report = collect_garbage(
        repo,
        extra_roots=itertools.chain(extra_roots, keep.roots()),
        grace_s=grace_s,
        dry_run=dry_run,
        rewrite_below=rewrite_below,
    )
    if not dry_run:
        keep.settle()
        append_audit(
            repo,
            "gc",
            {
                "blobs_removed": report.blobs_removed,
                "bytes_freed": report.bytes_freed,
                "packs_deleted": report.packs_deleted,
                "packs_rewritten": report.packs_rewritten,
                "grace_s": grace_s,
                "owners_lapsed": keep.report.lapsed,
                "foreign_collectable": keep.report.collectable,
            },
        )
    fields = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    return GcResult(**fields, foreign=keep.report.as_dict())


# -- holds ------------------------------------------------------------------------------------


@dataclass
class HoldResult:
    """A hold set or released."""

    action: str
    snapshot: str
    hold: Hold | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "snapshot": self.snapshot,
            "hold": self.hold.as_dict() if self.hold else None,
        }


def hold_snapshot(repo: Repository, ref: str, until_ns: int, reason: str = "") -> HoldResult:
    """Hold a snapshot until ``until_ns`` (extend only); logged.

    Raises:
        RepoError: unknown snapshot, a date not in the future, or a shorter hold.
    """
    snap = resolve_snapshot(repo, ref)
    assert snap.id is not None
    hold = set_hold(repo.store, snap.id, until_ns, reason)
    _announce(repo, "hold", [bytes(snap.id)], until=-(-until_ns // 1_000_000_000))
    append_audit(
        repo, "hold", {"snapshot": str(snap.id), "until": hold.until_iso, "reason": reason}
    )
    return HoldResult("hold", str(snap.id), hold)


def release_snapshot(repo: Repository, ref: str) -> HoldResult:
    """Release the hold on a snapshot (no error if there is none); logged.

    ``ref`` may name a snapshot already forgotten after its hold expired: holds are
    keyed by id, so a full id releases a stale hold record too.
    """
    try:
        snap_id = str(resolve_snapshot(repo, ref).id)
    except RepoError:
        if len(ref) != 64:
            raise
        snap_id = ref.lower()
    old = release_hold(repo.store, _blob_id(snap_id))
    if old is not None:
        _announce(repo, "release", [bytes.fromhex(snap_id)])
        append_audit(
            repo,
            "release",
            {"snapshot": snap_id, "until": old.until_iso, "was_active": old.active()},
        )
    return HoldResult("release", snap_id, old)


def _announce(repo: Repository, kind: str, snapshot_ids: list[bytes], until: int = 0) -> None:
    """A signed notice to our holders (``node.p2p.announce_retention``)."""
    announce_retention(repo, kind, snapshot_ids, until=until)


def _blob_id(hex_id: str) -> BlobId:
    try:
        return BlobId(bytes.fromhex(hex_id))
    except ValueError as exc:
        raise RepoError(f"not a snapshot id: {hex_id!r}") from exc


def snapshot_holds(repo: Repository) -> list[Hold]:
    """Every hold record, active and expired."""
    return list_holds(repo.store)


def record_key_change(home: HomePaths, passphrase: str) -> bool:
    """Log a passphrase change (after it happened); False if the store is busy.

    The key file is outside the store, so the change itself never needs the store; the
    log entry does. When a daemon owns the store it logs key changes made through it.
    """
    try:
        repo = open_repository(home, passphrase)
    except RepoError:
        return False
    try:
        append_audit(repo, "key_change", {"what": "passphrase", "time_ns": time.time_ns()})
    finally:
        repo.close()
    return True
