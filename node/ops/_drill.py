"""Disaster-recovery drills: restore a snapshot into scratch space, prove it, time it.

A drill answers "could we get this data back, how fast, and how much would we lose?"
with a real restore rather than a check of the index: the snapshot is restored into a
scratch directory, every written file is re-read and hashed (restore's ``verify``), and
the restored tree is compared entry by entry with the snapshot's trees (type, size,
symlink target), so a file the restore silently skipped fails the drill too.

Measured:
    RTO (recovery time): wall time from the start of the restore to the end of the
        verification; data is not recovered until it is known to be right.
    RPO (recovery point): the age of the restored snapshot at the start of the drill,
        i.e. how much work would be lost if the data had to come from it now.

Each drill is kept in the store as a record ``D`` + start time (u64 BE, ns) + 4 random
bytes -> msgpack of ``DrillResult.to_dict()`` (docs/design.md, "Drill records"), so
``drill history`` and the compliance report can show what was proven, and when.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from node.repo import (
    DIR,
    FILE,
    SYMLINK,
    RepoError,
    Repository,
    Snapshot,
    load_tree,
    resolve_snapshot,
    resolve_snapshot_id,
)
from protocol import BlobId

from ._restore import RestoreOptions, RestoreSummary, run_restore

if TYPE_CHECKING:
    # Only for annotations: node.p2p imports libp2p, which every CLI command would
    # otherwise load (about 1 s of start-up and 50 MB of memory) to use none of it.
    from node.p2p import OffsiteCopy

DRILL_PREFIX = b"D"
DRILL_RECORD_VERSION = 1
HISTORY_KEEP = 100
"""Drill records kept by default (config ``drill.keep_reports``); older ones are dropped."""
_KEY_TIME = struct.Struct(">Q")
_MAX_LISTED = 20
"""Problems listed per check in a report (the count is always exact)."""


OffsiteFetch = Callable[[BlobId, Path], "OffsiteCopy"]
"""Fetch a snapshot's blobs from the peers storing for us into a new store at the path
(blocking; ``node.p2p.fetch_offsite_copy`` run on the daemon's mesh)."""


class DrillError(RepoError):
    """The drill could not start (no such snapshot, unusable scratch directory)."""


@dataclass(frozen=True, slots=True)
class DrillOptions:
    """What to drill and the targets to hold it to."""

    snapshot: str = "latest"
    """Snapshot id, 8+ hex digit prefix, or ``latest``."""
    max_rto: float | None = None
    """Recovery-time target in seconds; None: measured, not judged."""
    max_rpo: float | None = None
    """Recovery-point target in seconds (snapshot age); None: measured, not judged."""
    scratch_parent: Path | None = None
    """Where the scratch directory is made (default: the system temp directory). It
    should be on the kind of disk a real recovery would write to."""
    source: str = "local"
    """Where the data is restored from: ``local`` (the node's own store); a drill given
    ``from_peers`` is ``peers``."""


@dataclass(slots=True)
class DrillStep:
    """One step of the drill, in order, with its wall time."""

    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class DrillCheck:
    """One pass/fail judgement, with what to do about a failure."""

    name: str
    ok: bool
    summary: str
    remedy: str = ""
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0


@dataclass(slots=True)
class DrillResult:
    """Everything a drill established; ``to_dict`` is its record and JSON form."""

    id: str
    started_ns: int
    source: str
    snapshot_id: str
    snapshot_time_ns: int
    snapshot_paths: list[str]
    rto_seconds: float
    rpo_seconds: float
    max_rto: float | None
    max_rpo: float | None
    files: int
    bytes_restored: int
    verified: int
    steps: list[DrillStep] = field(default_factory=list)
    checks: list[DrillCheck] = field(default_factory=list)
    peers: list[dict[str, Any]] = field(default_factory=list)
    """Drills from peers: each peer asked, ``{peer_id, name, blobs, bytes, error}``."""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["v"] = DRILL_RECORD_VERSION
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DrillResult:
        """Raises ValueError on a record this version cannot read."""
        if doc.get("v") != DRILL_RECORD_VERSION:
            raise ValueError(f"drill record version {doc.get('v')!r} is not supported")
        try:
            fields = {k: v for k, v in doc.items() if k not in ("ok", "v", "steps", "checks")}
            return cls(
                **fields,
                steps=[DrillStep(**s) for s in doc["steps"]],
                checks=[DrillCheck(**c) for c in doc["checks"]],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"damaged drill record: {exc}") from exc


def _type_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISFIFO(mode):
        return "p"
    if stat.S_ISCHR(mode):
        return "c"
    if stat.S_ISBLK(mode):
        return "b"
    return "?"


def compare_tree(repo: Repository, snap: Snapshot, root: Path) -> tuple[int, list[str]]:
    """Compare a restored tree with the snapshot, entry by entry.

    Content is not re-hashed here (restore's verify pass did that against the
    authenticated blobs); this catches what verify cannot: entries that are missing,
    of the wrong type or size, or symlinks pointing elsewhere. Sockets are skipped, as
    restore never recreates them.

    Returns:
        (entries matched, problems as ``path: what``).
    """
    problems: list[str] = []
    matched = 0
    pending: list[tuple[bytes, BlobId]] = [(b"", snap.tree)]
    base = os.fsencode(root)
    while pending:
        rel, tree_id = pending.pop()
        try:
            nodes = load_tree(repo, tree_id)
        except RepoError as exc:
            problems.append(f"{os.fsdecode(rel) or '/'}: tree unreadable: {exc}")
            continue
        for node in nodes:
            if node.type == "s":
                continue
            child = rel + b"/" + node.name if rel else node.name
            shown = os.fsdecode(child)
            try:
                st = os.lstat(os.path.join(base, child))
            except OSError:
                problems.append(f"{shown}: missing from the restore")
                continue
            kind = _type_of(st.st_mode)
            if kind != node.type:
                problems.append(f"{shown}: restored as type {kind!r}, snapshot has {node.type!r}")
                continue
            if node.type == FILE and st.st_size != node.size:
                problems.append(f"{shown}: {st.st_size} bytes, snapshot has {node.size}")
                continue
            if node.type == SYMLINK and os.readlink(os.path.join(base, child)) != node.target:
                problems.append(f"{shown}: symlink target differs from the snapshot")
                continue
            if node.type == DIR and node.subtree is not None:
                pending.append((child, node.subtree))
            matched += 1
    return matched, problems


def _remove_tree(path: Path) -> None:
    """Remove a restored tree, including read-only directories the snapshot had."""

    def make_writable(func: Callable[..., Any], failed: str, _exc: object) -> None:
        parent = os.path.dirname(failed)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
        with contextlib.suppress(OSError):
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, stat.S_IRWXU)
        func(failed)

    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                with contextlib.suppress(OSError):
                    os.chmod(full, stat.S_IRWXU)
    shutil.rmtree(path, onerror=make_writable)  # onexc is 3.12+


def _listed(problems: list[str]) -> list[str]:
    return problems[:_MAX_LISTED]


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def _peer_name(copy: OffsiteCopy, peer: str) -> str:
    name = copy.names.get(peer, "")
    return f"{name} ({peer})" if name else peer


def _peer_rows(copy: OffsiteCopy) -> list[dict[str, Any]]:
    """Each peer asked, with what it served (and its error, if a request failed)."""
    report = copy.report
    asked = list(dict.fromkeys([*copy.peers, *report.by_peer]))
    return [
        {
            "peer_id": peer,
            "name": copy.names.get(peer, ""),
            "blobs": report.by_peer.get(peer, 0),
            "bytes": report.bytes_by_peer.get(peer, 0),
            "error": report.peer_errors.get(peer, ""),
        }
        for peer in asked
    ]


def _fetch_detail(copy: OffsiteCopy) -> str:
    report = copy.report
    got = report.fetched + report.replaced
    served = "; ".join(
        f"{_peer_name(copy, p)}: {report.by_peer.get(p, 0)} blobs, "
        f"{_size(report.bytes_by_peer.get(p, 0))}"
        for p in dict.fromkeys([*copy.peers, *report.by_peer])
    )
    text = f"{got} blobs, {_size(report.bytes)} from {len(copy.peers)} peers storing for us"
    if served:
        text += f" ({served})"
    if report.unavailable:
        text += f"; {len(report.unavailable)} blobs on no peer"
    return text + "; each checked against its id, none read from the local store"


def _offsite_check(copy: OffsiteCopy) -> DrillCheck:
    """Did the peers storing for us hold every blob the snapshot needs?"""
    report = copy.report
    got = report.fetched + report.replaced
    if not copy.peers:
        return DrillCheck(
            "peers",
            False,
            "no peer stores this node's snapshots, so there is no offsite copy to restore from",
            "Add a peer that stores for this node: `shadowvault peers add PEER_ID --addr ADDR "
            "--store-at` here and `--store-for` on that peer, wait for `shadowvault status "
            "--wait-replicated 1`, then drill again.",
        )
    if report.ok:
        return DrillCheck(
            "peers",
            True,
            f"all {got} blobs ({_size(report.bytes)}) came from {len(report.by_peer)} of "
            f"{len(copy.peers)} peers storing for this node, each checked against its id",
        )
    problems: list[str] = []
    lost = len(report.unavailable)
    for peer in copy.peers:
        error = report.peer_errors.get(peer)
        if error:
            problems.append(f"peer {_peer_name(copy, peer)}: request failed: {error}")
        else:
            problems.append(f"peer {_peer_name(copy, peer)} lacks {lost} blobs of this snapshot")
    kinds: dict[str, int] = {}
    for missing in report.unavailable:
        kinds[missing.kind.name.lower()] = kinds.get(missing.kind.name.lower(), 0) + 1
    affected = report.affected
    problems += [f"{path}: needs a blob no peer has" for path in affected]
    return DrillCheck(
        "peers",
        False,
        f"{lost} blobs ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}) are on "
        f"none of the {len(copy.peers)} peers storing for this node; {got} were fetched; "
        f"{len(affected)} files or directories affected",
        "The offsite copies of this snapshot are incomplete. Check replication with "
        "`shadowvault status` (the snapshot's holders) and `shadowvault peers list` (each "
        "peer connected?); start or reconnect the peers named (replication then resumes by "
        "itself), wait for `shadowvault status --wait-replicated 1`, then drill again.",
        _listed(problems),
        len(problems),
    )


def run_drill(
    repo: Repository,
    opts: DrillOptions,
    *,
    now_ns: int | None = None,
    from_peers: OffsiteFetch | None = None,
) -> DrillResult:
    """Restore a snapshot into scratch space, verify it, time it, clean up, judge it.

    The result is returned, not saved: call ``save_drill`` to keep it (the CLI and the
    scheduler do). A failing drill is a result with failed checks, never an exception.

    With ``from_peers``, the drill proves the offsite copies: the snapshot is chosen from
    the snapshot index (no blob is read here), every blob the restore needs is fetched
    from the peers storing for us into a scratch store, and the restore reads that store
    only. The fetch counts towards the RTO (a real recovery has to do it too).

    Args:
        repo: the open repository to restore from.
        opts: snapshot, targets and where to make the scratch directory.
        now_ns: the drill's start time (Unix ns) for the RPO; default: now.
        from_peers: fetches a snapshot's blobs from peers into a new store at the given
            path (blocking); the daemon passes one bound to its mesh.

    Raises:
        DrillError: the snapshot does not exist or the scratch directory cannot be made.
    """
    started_ns = now_ns if now_ns is not None else time.time_ns()
    steps: list[DrillStep] = []
    checks: list[DrillCheck] = []
    source = "peers" if from_peers is not None else opts.source

    t0 = time.monotonic()
    snap: Snapshot | None = None
    try:
        if from_peers is None:
            snap = resolve_snapshot(repo, opts.snapshot)
            assert snap.id is not None
            snap_id, snap_time = snap.id, snap.time_ns
            chosen = f"{snap.short_id} {snap.paths}"
        else:
            snap_id, snap_time = resolve_snapshot_id(repo, opts.snapshot)
            chosen = f"{snap_id.short} (from the snapshot index; its record comes from peers)"
    except RepoError as exc:
        raise DrillError(f"drill: {exc}") from exc
    steps.append(DrillStep("select snapshot", time.monotonic() - t0, True, chosen))
    try:
        scratch = Path(tempfile.mkdtemp(prefix="sv-drill-", dir=opts.scratch_parent))
    except OSError as exc:
        raise DrillError(f"drill: cannot make a scratch directory: {exc.strerror}") from exc

    copy: OffsiteCopy | None = None
    restore_repo = repo
    summary = RestoreSummary()
    matched = 0
    mismatches: list[str] = []
    peers: list[dict[str, Any]] = []
    try:
        t_restore = time.monotonic()
        target = scratch
        if from_peers is not None:
            target = scratch / "files"
            target.mkdir()
            try:
                copy = from_peers(snap_id, scratch / "blobs")
            except RepoError as exc:
                raise DrillError(f"drill: {exc}") from exc
            peers = _peer_rows(copy)
            steps.append(
                DrillStep(
                    "fetch from peers",
                    time.monotonic() - t_restore,
                    copy.report.ok,
                    _fetch_detail(copy),
                )
            )
            checks.append(_offsite_check(copy))
            snap, restore_repo = copy.snapshot, copy.repo
        if snap is not None:
            restore_started = time.monotonic()
            summary = run_restore(restore_repo, snap, RestoreOptions(target=target, verify=True))
            restored_at = time.monotonic()
            steps.append(
                DrillStep(
                    "restore",
                    restored_at - restore_started,
                    not summary.errors,
                    f"{summary.files} files, {summary.dirs} dirs, {summary.bytes_written} bytes "
                    f"into {target} (each file re-read and hashed)",
                )
            )
            matched, mismatches = compare_tree(restore_repo, snap, target)
            steps.append(
                DrillStep(
                    "verify against snapshot",
                    time.monotonic() - restored_at,
                    not mismatches,
                    f"{matched} entries match the snapshot's trees",
                )
            )
        else:
            summary.errors.append(f"snapshot {snap_id.short}: its record is on no peer")
            mismatches.append("/: nothing restored (no snapshot record to restore from)")
        rto = time.monotonic() - t_restore
    finally:
        t_clean = time.monotonic()
        try:
            if copy is not None:
                copy.discard()
            _remove_tree(scratch)
            cleaned, clean_error = True, ""
        except OSError as exc:
            cleaned, clean_error = False, f"{exc.strerror}: {exc.filename}"
        steps.append(
            DrillStep(
                "clean up",
                time.monotonic() - t_clean,
                cleaned,
                f"removed {scratch}" if cleaned else clean_error,
            )
        )

    rpo = max(0.0, (started_ns - snap_time) / 1e9)
    checks.append(
        DrillCheck(
            "restore",
            not summary.errors,
            f"{summary.files} files restored, {len(summary.errors)} failed",
            ""
            if not summary.errors
            else (
                "The peers' copies are incomplete: see the `peers` check."
                if from_peers is not None
                else (
                    "Run `shadowvault check --read-data` to find the damaged blobs, then "
                    "`shadowvault repair index`; restore the named files from a peer copy or "
                    "an older snapshot, and make a fresh backup."
                )
            ),
            _listed(summary.errors),
            len(summary.errors),
        )
    )
    checks.append(
        DrillCheck(
            "verify",
            not mismatches and not any(": verify: " in e for e in summary.errors),
            f"{summary.verified} files re-read and matched; {len(mismatches)} entries differ "
            "from the snapshot",
            ""
            if not mismatches
            else (
                "The restore is incomplete or wrong: check free space and permissions of the "
                "scratch disk (--scratch), then run `shadowvault check --read-data`."
            ),
            _listed(mismatches),
            len(mismatches),
        )
    )
    if opts.max_rto is not None:
        ok = rto <= opts.max_rto
        checks.append(
            DrillCheck(
                "rto",
                ok,
                f"recovery took {_age(rto)}; target {_age(opts.max_rto)}",
                ""
                if ok
                else (
                    "Recovery is slower than the target: restore onto faster storage, split "
                    "the data into smaller snapshots restored in parallel, or revise the "
                    "target with the data's owners."
                ),
            )
        )
    if opts.max_rpo is not None:
        ok = rpo <= opts.max_rpo
        checks.append(
            DrillCheck(
                "rpo",
                ok,
                f"snapshot age {_age(rpo)}; target {_age(opts.max_rpo)}",
                ""
                if ok
                else (
                    "The newest recoverable data is older than the target: back up more "
                    "often (schedule backups at least every target interval) and find out "
                    "why recent backups are missing or failed."
                ),
            )
        )
    checks.append(
        DrillCheck(
            "cleanup",
            cleaned,
            "scratch directory removed" if cleaned else "scratch directory left behind",
            "" if cleaned else f"Remove {scratch} by hand ({clean_error}).",
        )
    )
    return DrillResult(
        id=f"{started_ns:x}",
        started_ns=started_ns,
        source=source,
        snapshot_id=str(snap_id),
        snapshot_time_ns=snap_time,
        snapshot_paths=list(snap.paths) if snap is not None else [],
        rto_seconds=rto,
        rpo_seconds=rpo,
        max_rto=opts.max_rto,
        max_rpo=opts.max_rpo,
        files=summary.files,
        bytes_restored=summary.bytes_written,
        verified=summary.verified,
        steps=steps,
        checks=checks,
        peers=peers,
    )


def save_drill(repo: Repository, result: DrillResult, *, keep: int = HISTORY_KEEP) -> None:
    """Keep a drill result in the store; only the newest ``keep`` records are kept."""
    key = DRILL_PREFIX + _KEY_TIME.pack(result.started_ns) + os.urandom(4)
    repo.store.put_records([(key, msgpack.packb(result.to_dict()))])
    keys = [k for k, _ in repo.store.iter_records(DRILL_PREFIX)]
    if len(keys) > keep:
        repo.store.put_records([(k, None) for k in keys[: len(keys) - max(1, keep)]])


def list_drills(repo: Repository, limit: int | None = None) -> list[DrillResult]:
    """Kept drill results, newest first; unreadable records are skipped."""
    out: list[DrillResult] = []
    for _, raw in repo.store.iter_records(DRILL_PREFIX):
        try:
            out.append(DrillResult.from_dict(msgpack.unpackb(raw)))
        except (ValueError, TypeError, AttributeError):
            continue
    out.reverse()
    return out if limit is None else out[:limit]
