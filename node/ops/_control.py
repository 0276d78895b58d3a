"""The node's control surface: every user operation as a call with JSON-ready results.

The CLI calls it directly when no daemon owns the home, and through the daemon's HTTP API
(which calls the very same methods) when one does. Keeping one implementation for both is
what makes a command print the same output and exit with the same code either way.

The requests (``_requests``) are pydantic models so that the API validates bodies with
exact messages (422, field named) and the CLI builds them with the same checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from node.repo import (
    Repository,
    Subset,
    list_audit,
    list_snapshots,
    resolve_snapshot,
    verify_audit,
)

from ._browse import filter_snapshots, node_json, snapshot_json

if TYPE_CHECKING:
    from ._drill import OffsiteFetch
    from ._requests import (
        BackupRequest,
        CheckRequest,
        DrillRequest,
        ForgetRequest,
        GcRequest,
        HoldRequest,
        RestoreRequest,
    )

# Each operation's module is imported by the method that runs it, not here: a CLI command
# runs one operation, and loading them all (backup's walker and pathspec, restore, drills
# and compliance, the mesh's retention state) was a third of every command's start-up.
# Only the light one every listing needs (browse) stays above.


class Cancelled(Exception):
    """Raised from a progress callback to stop an operation; nothing half-done is kept."""


class Progress(Protocol):
    """Receives (files done, bytes done) while an operation runs; may raise ``Cancelled``."""

    def __call__(self, files: int, bytes_done: int) -> None: ...


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
        from ._browse import list_dir

        snap = resolve_snapshot(self.repo, ref)
        return [node_json(p, n) for p, n in list_dir(self.repo, snap, path, recursive)]

    def find(self, pattern: str, ref: str | None = None) -> list[dict[str, Any]]:
        """Entries matching ``pattern`` across snapshots (or in one)."""
        from ._browse import find

        snaps = [resolve_snapshot(self.repo, ref)] if ref else list_snapshots(self.repo)
        return [
            {"snapshot": str(s.id), "short_id": s.short_id, **node_json(p, n)}
            for s, p, n in find(self.repo, snaps, pattern)
        ]

    def diff(self, first: str, second: str) -> list[dict[str, Any]]:
        """Changes from snapshot ``first`` to ``second``."""
        from ._browse import diff

        snaps = list_snapshots(self.repo)
        a = resolve_snapshot(self.repo, first, snaps)
        b = resolve_snapshot(self.repo, second, snaps)
        return [dataclasses.asdict(c) for c in diff(self.repo, a, b)]

    def dump(self, ref: str, path: str, out: BinaryIO) -> int:
        """Write one file's bytes to ``out``."""
        from ._browse import dump

        return dump(self.repo, resolve_snapshot(self.repo, ref), path, out)

    def open_file(self, ref: str, path: str) -> tuple[int, Iterator[bytes | memoryview]]:
        """A regular file's size and its contents chunk by chunk (checked first)."""
        from ._browse import file_chunks, file_node

        node = file_node(self.repo, resolve_snapshot(self.repo, ref), path)
        return node.size, file_chunks(self.repo, node)

    def stats(self) -> dict[str, Any]:
        """Stored sizes and ratios (``stats --json``)."""
        from ._stats import run_stats

        return dict(run_stats(self.repo).as_dict())

    def backup(self, request: BackupRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Make a snapshot; the result is ``backup --json``'s object."""
        from ._backup import run_backup

        summary = run_backup(self.repo, request.options(), _backup_progress(progress))
        return dataclasses.asdict(summary)

    def restore(self, request: RestoreRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Restore a snapshot (or part of it); ``ok`` is false if any file failed."""
        from ._restore import RestoreOptions, run_restore

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
        from ._check import run_check

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
        from ._compliance import compliance_report, gather_evidence
        from ._drill import DrillError, DrillOptions, list_drills, run_drill, save_drill
        from ._drill_report import report_json, report_markdown

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
        from ._drill import list_drills

        return [d.to_dict() for d in list_drills(self.repo, limit)]

    def forget(self, request: ForgetRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Forget by policy or id (held snapshots stay); with ``prune``, gc afterwards."""
        from ._retention import run_forget

        return run_forget(self.repo, request.options(), owner_lease_s=self._owner_lease()).as_dict()

    def gc(self, request: GcRequest, progress: Progress | None = None) -> dict[str, Any]:
        """Collect what no kept snapshot (or running operation) needs."""
        from ._retention import parse_span, run_gc

        return run_gc(
            self.repo,
            dry_run=request.dry_run,
            grace_s=parse_span(request.grace),
            owner_lease_s=self._owner_lease(),
        ).as_dict()

    def hold(self, request: HoldRequest) -> dict[str, Any]:
        """Set (extend) or release a hold."""
        from ._retention import hold_snapshot, parse_until, release_snapshot

        if request.release:
            return release_snapshot(self.repo, request.snapshot).as_dict()
        assert request.until is not None
        until_ns = parse_until(request.until)
        return hold_snapshot(self.repo, request.snapshot, until_ns, request.reason).as_dict()

    def holds(self) -> list[dict[str, Any]]:
        """Every hold, active or expired."""
        from ._retention import snapshot_holds

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
