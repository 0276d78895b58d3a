"""Health probes, status and stats."""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from node.repo import RepoError, list_snapshots

from ._context import NodeContext

LOW_SPACE = 1 << 30
"""Below this much free space in the store's file system the store is 'degraded'."""


def _store_health(ctx: NodeContext) -> dict[str, Any]:
    try:
        ctx.repo.store.get_record(b"M")
        st = os.statvfs(ctx.repo.store.root)
    except (RepoError, OSError) as exc:
        return {"status": "unhealthy", "message": str(exc)}
    free = st.f_bavail * st.f_frsize
    if free < LOW_SPACE:
        return {"status": "degraded", "message": "low disk space", "free_bytes": free}
    return {"status": "healthy", "free_bytes": free}


def _metric_totals() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the default registry by (name, sorted labels); labels not asked
    for are summed over by the caller's choice of key."""
    from prometheus_client import REGISTRY

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            out[key] = out.get(key, 0.0) + sample.value
            bare = (sample.name, ())
            if key != bare:
                out[bare] = out.get(bare, 0.0) + sample.value
    return out


def router(ctx: NodeContext) -> APIRouter:
    api = APIRouter()
    viewer = ctx.role("viewer")

    @api.get("/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "alive"}

    @api.get("/ready", tags=["health"])
    async def ready() -> JSONResponse:
        """Ready to serve: the store is open and the daemon is not stopping (else 503)."""
        if ctx.shutdown.is_set():
            return JSONResponse({"status": "not ready", "reason": "stopping"}, 503)
        return JSONResponse({"status": "ready"})

    @api.get("/health", tags=["health"])
    async def health() -> JSONResponse:
        """Each component's status: healthy, degraded or unhealthy (503 if unhealthy)."""
        components: dict[str, Any] = {"store": await ctx.in_thread(_store_health, ctx)}
        for name, probe in ctx.components.items():
            try:
                components[name] = probe()
            except Exception as exc:  # a probe's own failure is the component's status
                components[name] = {"status": "unhealthy", "message": type(exc).__name__}
        states = {c["status"] for c in components.values()}
        overall = next((s for s in ("unhealthy", "degraded") if s in states), "healthy")
        body = {
            "status": overall,
            "timestamp": time.time(),
            "uptime_s": round(time.monotonic() - ctx.started, 3),
            "version": ctx.info.get("version"),
            "components": components,
        }
        return JSONResponse(body, status_code=503 if overall == "unhealthy" else 200)

    @api.get("/api/v1/status", dependencies=[viewer], tags=["node"])
    async def status() -> dict[str, Any]:
        """Who this node is and what it is doing."""
        snaps = await ctx.in_thread(list_snapshots, ctx.repo)
        return {
            **ctx.info,
            "snapshots": len(snaps),
            "repo_id": ctx.repo.store.meta.repo_id,
            "jobs_running": [j.as_dict() for j in ctx.jobs.active()],
            "addrs": ctx.mesh.addrs if ctx.mesh is not None else [],
            "replicas": ctx.mesh.replicas() if ctx.mesh is not None else {},
        }

    @api.post("/api/v1/node/stop", dependencies=[ctx.role("admin")], tags=["node"])
    async def stop() -> dict[str, bool]:
        """Stop the daemon as SIGTERM would (running jobs stop at their next file)."""
        ctx.shutdown.set()
        return {"stopping": True}

    @api.get("/api/v1/store", dependencies=[viewer], tags=["node"])
    async def store() -> dict[str, Any]:
        """The store's fixed settings: repo id, chunker bounds, default compression."""
        meta = ctx.repo.store.meta
        chunker = meta.chunker
        return {
            "repo_id": meta.repo_id,
            "chunker": [chunker.min_size, chunker.avg_size, chunker.max_size],
            "compression": meta.compression,
        }

    @api.get("/api/v1/config", dependencies=[ctx.role("admin")], tags=["node"])
    async def config() -> list[dict[str, Any]]:
        """The effective config the node runs with: each key, its value and where it came
        from (default, file, environment, command line); secrets masked."""
        return [{"key": k, "value": v, "source": src} for k, v, src in ctx.config_view]

    @api.get("/api/v1/metrics/summary", dependencies=[viewer], tags=["node"])
    async def metrics_summary() -> dict[str, Any]:
        """The main counters as JSON (the full set is Prometheus text at /metrics)."""
        totals = _metric_totals()

        def v(name: str, **labels: str) -> float:
            return totals.get((name, tuple(sorted(labels.items()))), 0.0)

        return {
            "backups": {
                "started": v("shadowvault_backups_started_total"),
                "ok": v("shadowvault_backups_finished_total", result="ok"),
                "warnings": v("shadowvault_backups_finished_total", result="warnings"),
                "failed": v("shadowvault_backups_finished_total", result="failed"),
            },
            "restores": {
                "ok": v("shadowvault_restores_finished_total", result="ok"),
                "failed": v("shadowvault_restores_finished_total", result="failed"),
            },
            "data": {
                "bytes_backed_up": v("shadowvault_backup_processed_bytes_total"),
                "bytes_stored": v("shadowvault_backup_stored_bytes_total"),
                "bytes_restored": v("shadowvault_restore_written_bytes_total"),
            },
            "storage": {
                "size_bytes": v("shadowvault_store_size_bytes"),
                "packs": v("shadowvault_store_packs"),
                "snapshots": v("shadowvault_snapshots"),
            },
            "gc": {
                "runs": v("shadowvault_gc_runs_total", result="ok"),
                "blobs_removed": v("shadowvault_gc_blobs_removed_total"),
                "bytes_freed": v("shadowvault_gc_freed_bytes_total"),
            },
            "p2p": {
                "peers_connected": v("shadowvault_p2p_connected_peers"),
                "blob_bytes_sent": v("shadowvault_p2p_blob_bytes_sent_total"),
                "blob_bytes_received": v("shadowvault_p2p_blob_bytes_received_total"),
                "announcements_sent": v("shadowvault_p2p_announcements_total", direction="sent"),
            },
            "errors": {
                "total": sum(
                    val for (n, _), val in totals.items() if n == "shadowvault_errors_total"
                )
            },
        }

    @api.get("/api/v1/stats", dependencies=[viewer], tags=["node"])
    async def stats() -> dict[str, Any]:
        """Stored sizes, dedup and compression ratios (``stats --json``)."""
        return await ctx.in_thread(ctx.control.stats)

    return api
