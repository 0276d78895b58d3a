"""Health probes, status and stats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from node.repo import list_snapshots

from ._context import NodeContext


def router(ctx: NodeContext) -> APIRouter:
    api = APIRouter()
    viewer = ctx.role("viewer")

    @api.get("/live", tags=["health"])
    async def live() -> dict[str, bool]:
        """The process is up and its event loop answers."""
        return {"live": True}

    @api.get("/ready", tags=["health"])
    async def ready() -> dict[str, bool]:
        """The store is open and the API serves."""
        return {"ready": True}

    @api.get("/health", tags=["health"])
    async def health() -> JSONResponse:
        """Each component's status; 503 when one is failing."""
        components: dict[str, Any] = {"store": {"status": "ok"}, "api": {"status": "ok"}}
        for name, probe in ctx.components.items():
            try:
                components[name] = probe()
            except Exception as exc:  # a probe's own failure is the component's status
                components[name] = {"status": "failing", "detail": type(exc).__name__}
        failing = any(c.get("status") == "failing" for c in components.values())
        body = {"status": "failing" if failing else "ok", "components": components}
        return JSONResponse(body, status_code=503 if failing else 200)

    @api.get("/api/v1/status", dependencies=[viewer], tags=["node"])
    async def status() -> dict[str, Any]:
        """Who this node is and what it is doing."""
        snaps = await ctx.in_thread(list_snapshots, ctx.repo)
        return {
            **ctx.info,
            "snapshots": len(snaps),
            "repo_id": ctx.repo.store.meta.repo_id,
            "jobs_running": [j.as_dict() for j in ctx.jobs.active()],
        }

    @api.post("/api/v1/node/stop", dependencies=[ctx.role("admin")], tags=["node"])
    async def stop() -> dict[str, bool]:
        """Stop the daemon as SIGTERM would (running jobs stop at their next file)."""
        ctx.shutdown.set()
        return {"stopping": True}

    @api.get("/api/v1/stats", dependencies=[viewer], tags=["node"])
    async def stats() -> dict[str, Any]:
        """Stored sizes, dedup and compression ratios (``stats --json``)."""
        return await ctx.in_thread(ctx.control.stats)

    return api
