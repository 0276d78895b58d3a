"""The node's control surface: every user operation as a call with JSON-ready results.

The CLI calls it directly when no daemon owns the home, and through the daemon's HTTP API
(which calls the very same methods) when one does. Keeping one implementation for both is
what makes a command print the same output and exit with the same code either way.

Requests are pydantic models so that the API validates bodies with exact messages (422,
field named) and the CLI builds them with the same checks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from node.repo import (
    Repository,
    Subset,
    list_audit,
    list_snapshots,
    parse_compression,
    resolve_snapshot,
    verify_audit,
)

from ._backup import BackupOptions, run_backup
from ._browse import (
    diff,
    dump,
    file_chunks,
    file_node,
    filter_snapshots,
    find,
    list_dir,
    node_json,
    snapshot_json,
)
from ._check import run_check
from ._compliance import FRAMEWORKS, compliance_report, gather_evidence
from ._drill import DrillError, DrillOptions, OffsiteFetch, list_drills, run_drill, save_drill
from ._drill_report import report_json, report_markdown
from ._policy import Duration as PolicyDuration
from ._policy import Policy, PolicyError, parse_group_by, parse_tag_lists
from ._restore import RestoreOptions, run_restore
from ._retention import (
    ForgetOptions,
    hold_snapshot,
    parse_span,
    parse_until,
    release_snapshot,
    run_forget,
    run_gc,
    snapshot_holds,
)
from ._stats import run_stats


class Cancelled(Exception):
    """Raised from a progress callback to stop an operation; nothing half-done is kept."""


class Progress(Protocol):
    """Receives (files done, bytes done) while an operation runs; may raise ``Cancelled``."""

    def __call__(self, files: int, bytes_done: int) -> None: ...


class _Strict(BaseModel):
    # defer_build: a command uses one request model; building all seven at import was
    # a fifth of the CLI's start-up.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class BackupRequest(_Strict):
    """What to back up. Paths must be absolute: the daemon does not share the CLI's cwd."""

    paths: list[str] = Field(min_length=1)
    tags: list[str] = []
    excludes: list[str] = []
    exclude_files: list[str] = []
    one_file_system: bool = False
    compression: str | None = Field(None, description="zstd level 1-19 or 'off'")
    host: str | None = None
    parent: str | None = None

    @field_validator("paths", "exclude_files")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for p in value:
            if not os.path.isabs(p):
                raise ValueError(f"must be an absolute path, got {p!r}")
        return value

    @field_validator("compression")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is not None:
            parse_compression(value)
        return value

    def options(self) -> BackupOptions:
        return BackupOptions(
            paths=[Path(p) for p in self.paths],
            tags=list(self.tags),
            excludes=list(self.excludes),
            exclude_files=[Path(p) for p in self.exclude_files],
            one_file_system=self.one_file_system,
            compression=None if self.compression is None else parse_compression(self.compression),
            host=self.host,
            parent=self.parent,
        )


class RestoreRequest(_Strict):
    """What to restore, and where (an absolute target directory)."""

    snapshot: str = Field(min_length=1)
    target: str
    includes: list[str] = []
    excludes: list[str] = []
    verify: bool = False
    overwrite: bool = False

    @field_validator("target")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value


class CheckRequest(_Strict):
    """How much to check: structure only, every blob, or slice N of M."""

    read_data: bool = False
    read_data_subset: str | None = Field(None, description="N/M, e.g. 2/7")
    repair: bool = False
    """Fetch corrupt or missing blobs from peers (the daemon's mesh), then check again."""

    @field_validator("read_data_subset")
    @classmethod
    def _subset(cls, value: str | None) -> str | None:
        if value is not None:
            Subset.parse(value)
        return value


class DrillRequest(_Strict):
    """A disaster-recovery drill: what to restore, the targets, the report wanted."""

    snapshot: str = "latest"
    max_rto: float | None = Field(None, ge=0, description="seconds")
    max_rpo: float | None = Field(None, ge=0, description="seconds")
    framework: str | None = None
    format: Literal["md", "json"] = "md"
    scratch: str | None = None
    keep: int = Field(100, ge=1, le=100_000)
    from_peers: bool = False
    """Restore from the peers storing for this node only (needs the daemon's mesh)."""

    @field_validator("framework")
    @classmethod
    def _framework(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in FRAMEWORKS:
            raise ValueError(f"must be one of {', '.join(FRAMEWORKS)}, got {value!r}")
        return value

    @field_validator("scratch")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value


class ForgetRequest(_Strict):
    """Snapshots to forget by id, or a policy (restic's rules); counts: -1 is unlimited."""

    snapshots: list[str] = []
    keep_last: int = Field(0, ge=-1)
    keep_hourly: int = Field(0, ge=-1)
    keep_daily: int = Field(0, ge=-1)
    keep_weekly: int = Field(0, ge=-1)
    keep_monthly: int = Field(0, ge=-1)
    keep_yearly: int = Field(0, ge=-1)
    keep_within: str | None = None
    """Keep everything within this of the newest, e.g. 1y2m3d4h."""
    keep_tags: list[str] = []
    """Keep snapshots with these tags; each entry ``a,b`` means all of a and b."""
    only_tags: list[str] = []
    """Only consider snapshots with these tags (``a,b`` as above)."""
    group_by: str = "host,paths"
    dry_run: bool = False
    prune: bool = False
    grace: str = "0s"

    @model_validator(mode="after")
    def _one_way(self) -> ForgetRequest:
        self.options()  # raises PolicyError (a ValueError) with the flag named
        return self

    def options(self) -> ForgetOptions:
        counts = (
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        )
        policy = None
        if any(counts) or self.keep_within or self.keep_tags:
            if self.snapshots:
                raise PolicyError("give snapshot ids or a policy, not both")
            policy = Policy(
                last=self.keep_last,
                hourly=self.keep_hourly,
                daily=self.keep_daily,
                weekly=self.keep_weekly,
                monthly=self.keep_monthly,
                yearly=self.keep_yearly,
                within=PolicyDuration.parse(self.keep_within)
                if self.keep_within
                else PolicyDuration(),
                keep_tags=tuple(parse_tag_lists(self.keep_tags)),
            )
            policy.validate()
        elif not self.snapshots:
            raise PolicyError(
                "no policy given: refusing to forget every snapshot; give snapshot ids or at "
                "least one --keep-* option"
            )
        return ForgetOptions(
            policy=policy,
            snapshots=tuple(self.snapshots),
            group_by=parse_group_by(self.group_by) if policy is not None else (),
            only_tags=parse_tag_lists(self.only_tags),
            dry_run=self.dry_run,
            prune=self.prune and not self.dry_run,
            grace_s=parse_span(self.grace),
        )


class GcRequest(_Strict):
    """A garbage collection; ``grace`` spares blobs written more recently (e.g. 2h)."""

    dry_run: bool = False
    grace: str = "0s"

    @field_validator("grace")
    @classmethod
    def _span(cls, value: str) -> str:
        parse_span(value)
        return value


class HoldRequest(_Strict):
    """Hold a snapshot until a date (2027-01-31, or a span like 90d), or release it."""

    snapshot: str = Field(min_length=1)
    until: str | None = None
    reason: str = Field("", max_length=500)
    release: bool = False

    @model_validator(mode="after")
    def _either(self) -> HoldRequest:
        if self.release == (self.until is not None):
            raise ValueError("give either an until date or release")
        if self.until is not None:
            parse_until(self.until)
        return self


class _FileProgress:
    """Adapts a ``Progress`` to the ``file_done`` protocol of backup and restore."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def file_done(self, files: int, bytes_done: int, path: str) -> None:
        self._progress(files, bytes_done)


def _backup_progress(progress: Progress | None) -> _FileProgress | None:
    return None if progress is None else _FileProgress(progress)


class LocalControl:
    """The operations, run on a repository this process has open.

    Args:
        repo: the open repository.
        owner_lease: the config's ``gc.owner_lease`` in seconds, asked for only by
            forget and gc (so other commands do not load the config); None: its default.
    """

    def __init__(
        self, repo: Repository, *, owner_lease: Callable[[], float | None] = lambda: None
    ) -> None:
        self.repo = repo
        self._owner_lease = owner_lease

    def snapshots(
        self, tags: list[str] | None = None, paths: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Snapshots, oldest first, as ``snapshots --json`` prints them."""
        return [snapshot_json(s) for s in filter_snapshots(list_snapshots(self.repo), tags, paths)]

    def snapshot(self, ref: str) -> dict[str, Any]:
        """One snapshot by id, unique prefix or ``latest``."""
        return snapshot_json(resolve_snapshot(self.repo, ref))

    def ls(self, ref: str, path: str = "/", recursive: bool = False) -> list[dict[str, Any]]:
        """Entries under ``path`` in a snapshot."""
        snap = resolve_snapshot(self.repo, ref)
        return [node_json(p, n) for p, n in list_dir(self.repo, snap, path, recursive)]

    def find(self, pattern: str, ref: str | None = None) -> list[dict[str, Any]]:
        """Entries matching ``pattern`` across snapshots (or in one)."""
        snaps = [resolve_snapshot(self.repo, ref)] if ref else list_snapshots(self.repo)
        return [
            {"snapshot": str(s.id), "short_id": s.short_id, **node_json(p, n)}
            for s, p, n in find(self.repo, snaps, pattern)
        ]

    def diff(self, first: str, second: str) -> list[dict[str, Any]]:
        """Changes from snapshot ``first`` to ``second``."""
        snaps = list_snapshots(self.repo)
        a = resolve_snapshot(self.repo, first, snaps)
        b = resolve_snapshot(self.repo, second, snaps)
        return [dataclasses.asdict(c) for c in diff(self.repo, a, b)]

    def dump(self, ref: str, path: str, out: BinaryIO) -> int:
        """Write one file's bytes to ``out``."""
        return dump(self.repo, resolve_snapshot(self.repo, ref), path, out)

    def open_file(self, ref: str, path: str) -> tuple[int, Iterator[bytes | memoryview]]:
        """A regular file's size and its contents chunk by chunk (checked first)."""
        node = file_node(self.repo, resolve_snapshot(self.repo, ref), path)
        return node.size, file_chunks(self.repo, node)

    def stats(self) -> dict[str, Any]:
        """Stored sizes and ratios (``stats --json``)."""
        return dict(run_stats(self.repo).as_dict())

    def backup(self, request: BackupRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Make a snapshot; the result is ``backup --json``'s object."""
        summary = run_backup(self.repo, request.options(), _backup_progress(progress))
        return dataclasses.asdict(summary)

    def restore(self, request: RestoreRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Restore a snapshot (or part of it); ``ok`` is false if any file failed."""
        snap = resolve_snapshot(self.repo, request.snapshot)
        opts = RestoreOptions(
            target=Path(request.target),
            includes=list(request.includes),
            excludes=list(request.excludes),
            overwrite=request.overwrite,
            verify=request.verify,
        )
        summary = run_restore(self.repo, snap, opts, _backup_progress(progress))
        return {
            "snapshot_id": str(snap.id),
            "short_id": snap.short_id,
            "target": request.target,
            "ok": summary.ok,
            **dataclasses.asdict(summary),
        }

    def restore_size(self, ref: str) -> int:
        """Bytes the snapshot holds (for a progress bar's total)."""
        return int(resolve_snapshot(self.repo, ref).summary.get("bytes_processed", 0))

    def check(self, request: CheckRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Check the store; ``ok`` is false when problems were found (each listed)."""
        subset = Subset.parse(request.read_data_subset) if request.read_data_subset else None
        recovery = self.repo.store.recovery
        callback: Callable[[int, int], None] | None = None
        if progress is not None:
            report_progress = progress
            callback = lambda bytes_done, blobs: report_progress(blobs, bytes_done)  # noqa: E731
        report = run_check(self.repo, read_data=request.read_data, subset=subset, progress=callback)
        return {
            "ok": report.ok,
            "packs": report.packs,
            "blobs": report.blobs,
            "blobs_read": report.blobs_read,
            "bytes_read": report.bytes_read,
            "problems": [{**dataclasses.asdict(p), "message": str(p)} for p in report.problems],
            "warnings": [{**dataclasses.asdict(p), "message": str(p)} for p in report.warnings],
            "recovered": {"reindexed": recovery.reindexed, "truncated": recovery.truncated},
        }

    def drill(
        self,
        request: DrillRequest,
        progress: Progress | None = None,
        *,
        from_peers: OffsiteFetch | None = None,
    ) -> dict[str, Any]:
        """Run a drill, keep its record, and render its report (``ok`` false: a check failed).

        Args:
            from_peers: for ``request.from_peers``: fetches the blobs from the mesh (the
                daemon passes it; see ``node.daemon._peer_ops``).

        Raises:
            DrillError: ``request.from_peers`` without ``from_peers`` (no mesh here), or
                the drill could not start.
        """
        if request.from_peers and from_peers is None:
            raise DrillError(
                "a drill from peers needs the mesh of a running node: start it with "
                "`shadowvault node run`, then run the drill again (it goes through the "
                "node); without --from-peers the drill proves the node's own copy"
            )
        opts = DrillOptions(
            snapshot=request.snapshot,
            max_rto=request.max_rto,
            max_rpo=request.max_rpo,
            scratch_parent=Path(request.scratch) if request.scratch else None,
        )
        result = run_drill(self.repo, opts, from_peers=from_peers if request.from_peers else None)
        save_drill(self.repo, result, keep=request.keep)
        compliance = None
        if request.framework is not None:
            evidence = gather_evidence(self.repo, list_drills(self.repo))
            compliance = compliance_report(request.framework, evidence)
        render = report_json if request.format == "json" else report_markdown
        return {"ok": result.ok, "drill": result.to_dict(), "report": render(result, compliance)}

    def drills(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Past drills, newest first."""
        return [d.to_dict() for d in list_drills(self.repo, limit)]

    def forget(self, request: ForgetRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Forget by policy or id (held snapshots stay); with ``prune``, gc afterwards."""
        return run_forget(self.repo, request.options(), owner_lease_s=self._owner_lease()).as_dict()

    def gc(self, request: GcRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Collect what no kept snapshot (or running operation) needs."""
        return run_gc(
            self.repo,
            dry_run=request.dry_run,
            grace_s=parse_span(request.grace),
            owner_lease_s=self._owner_lease(),
        ).as_dict()

    def hold(self, request: HoldRequest) -> dict[str, Any]:
        """Set (extend) or release a hold."""
        if request.release:
            return release_snapshot(self.repo, request.snapshot).as_dict()
        assert request.until is not None
        until_ns = parse_until(request.until)
        return hold_snapshot(self.repo, request.snapshot, until_ns, request.reason).as_dict()

    def holds(self) -> list[dict[str, Any]]:
        """Every hold, active or expired."""
        return [h.as_dict() for h in snapshot_holds(self.repo)]

    def audit(self, since_ns: int | None = None) -> list[dict[str, Any]]:
        """The audit log (from ``since_ns`` on)."""
        return [e.as_dict() for e in list_audit(self.repo, since_ns)]

    def audit_verify(self) -> dict[str, Any]:
        """Check the audit log's signatures, chain and head; ``ok`` false if tampered."""
        return dict(verify_audit(self.repo).as_dict())

    def check_size(self, request: CheckRequest) -> int | None:
        """Bytes a check will read (None when it reads no data)."""
        if not (request.read_data or request.read_data_subset):
            return None
        return sum(self.repo.store.committed_packs().values())
