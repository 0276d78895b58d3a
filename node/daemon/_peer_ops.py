"""Operations that reach the mesh from a job's worker thread: restore with the missing
blobs fetched from peers first, ``check --repair`` healing from peers, and drills from
peers (every blob fetched from the peers storing for us into a scratch store).

The work runs in a thread started by trio; ``trio.from_thread.run`` hands the async mesh
calls back to the event loop and waits for them.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from node.ops import CheckRequest, DrillRequest, Progress, RestoreRequest
from node.p2p import OffsiteCopy, fetch_offsite_copy, fetch_snapshot, heal_problems, missing_blobs
from node.repo import Problem, resolve_snapshot
from protocol import BlobId

from ._context import NodeContext

log = structlog.get_logger("shadowvault.jobs")


def restore_from_anywhere(
    ctx: NodeContext, request: RestoreRequest, progress: Progress | None
) -> dict[str, Any]:
    """Restore; blobs this node lacks (after a recovery, or lost) come from peers first.

    What no peer can supply fails only the files that need it, each named, as a damaged
    blob does.
    """
    repo = ctx.repo
    snap = resolve_snapshot(repo, request.snapshot)
    fetched = 0
    if ctx.mesh is not None and missing_blobs(repo, snap):
        assert snap.id is not None
        report = trio.from_thread.run(
            partial(fetch_snapshot, ctx.mesh, repo, snap.id, verify=False)
        )
        fetched = report.fetched
        by_peer = {p[-8:]: n for p, n in report.by_peer.items()}
        log.info(
            "fetched from peers",
            snapshot=snap.short_id,
            blobs=fetched,
            bytes=report.bytes,
            by_peer=by_peer,
            ok=report.ok,
        )
    result = ctx.control.restore(request, progress)
    result["fetched_from_peers"] = fetched
    return result


def check_and_repair(
    ctx: NodeContext, request: CheckRequest, progress: Progress | None
) -> dict[str, Any]:
    """Check; with ``repair``, fetch every corrupt or missing blob from peers, check again."""
    first = ctx.control.check(request, progress)
    if not request.repair or first["ok"]:
        return first
    if ctx.mesh is None:
        first["repair"] = {"healed": 0, "unavailable": [], "note": "no mesh: nothing to heal from"}
        return first
    problems = [
        Problem(p["what"], p["detail"], p.get("blob"), p.get("pack")) for p in first["problems"]
    ]
    healed = trio.from_thread.run(partial(heal_problems, ctx.mesh, ctx.repo, problems))
    second = ctx.control.check(request, progress)
    second["repair"] = {
        "found": len(first["problems"]),
        "healed": len(healed.healed),
        "unavailable": [m.blob_id.hex() for m in healed.unavailable],
        "skipped": [why for _, why in healed.skipped],
    }
    return second


def drill_anywhere(
    ctx: NodeContext, request: DrillRequest, progress: Progress | None
) -> dict[str, Any]:
    """Run a drill; with ``from_peers``, every blob comes from the peers storing for us.

    Without a mesh (``p2p`` off) a drill from peers fails with the reason, as the CLI
    does without a daemon.
    """
    mesh = ctx.mesh
    if not request.from_peers or mesh is None:
        return ctx.control.drill(request, progress)

    def fetch(snapshot_id: BlobId, root: Path) -> OffsiteCopy:
        copy: OffsiteCopy = trio.from_thread.run(
            partial(fetch_offsite_copy, mesh, ctx.repo, snapshot_id, root)
        )
        log.info(
            "drill fetched from peers",
            snapshot=snapshot_id.short,
            blobs=copy.report.fetched,
            bytes=copy.report.bytes,
            unavailable=len(copy.report.unavailable),
        )
        return copy

    return ctx.control.drill(request, progress, from_peers=fetch)
