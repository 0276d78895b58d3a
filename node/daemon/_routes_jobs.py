"""Long operations as jobs: start a backup, restore or check; watch, list, cancel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from node.ops import BackupRequest, CheckRequest, DrillRequest, RestoreRequest

from ._context import NodeContext
from ._jobs import Job
from ._peer_ops import check_and_repair, drill_anywhere, restore_from_anywhere


def router(ctx: NodeContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["jobs"])
    viewer, operator = ctx.role("viewer"), ctx.role("operator")

    @api.post("/backups", status_code=202, dependencies=[operator])
    async def start_backup(request: BackupRequest) -> dict[str, Any]:
        """Start a backup job; returns the job (poll it or stream its events)."""
        job = ctx.jobs.start(
            "backup",
            request.model_dump(),
            lambda progress: ctx.control.backup(request, progress),
            exclusive=True,
        )
        return job.as_dict()

    @api.post("/restores", status_code=202, dependencies=[operator])
    async def start_restore(request: RestoreRequest) -> dict[str, Any]:
        """Start a restore job into an absolute target directory on the node's machine."""
        total = await ctx.in_thread(ctx.control.restore_size, request.snapshot)
        job = ctx.jobs.start(
            "restore",
            request.model_dump(),
            lambda progress: restore_from_anywhere(ctx, request, progress),
            total_bytes=total or None,
        )
        return job.as_dict()

    @api.post("/checks", status_code=202, dependencies=[operator])
    async def start_check(request: CheckRequest) -> dict[str, Any]:
        """Start a check job (``read_data`` / ``read_data_subset`` as the CLI flags)."""
        total = await ctx.in_thread(ctx.control.check_size, request)
        job = ctx.jobs.start(
            "check",
            request.model_dump(),
            lambda progress: check_and_repair(ctx, request, progress),
            total_bytes=total,
        )
        return job.as_dict()

    @api.post("/drills", status_code=202, dependencies=[operator])
    async def start_drill(request: DrillRequest) -> dict[str, Any]:
        """Start a disaster-recovery drill (restore into scratch, verify, time, report)."""
        job = ctx.jobs.start(
            "drill",
            request.model_dump(),
            lambda progress: drill_anywhere(ctx, request, progress),
        )
        return job.as_dict()

    @api.get("/drills", dependencies=[viewer])
    async def drills(limit: int = 50) -> list[dict[str, Any]]:
        """Past drills, newest first."""
        return await ctx.in_thread(ctx.control.drills, max(1, min(limit, 10_000)))

    @api.get("/jobs", dependencies=[viewer])
    async def jobs(limit: int = 50) -> dict[str, Any]:
        """Running jobs, the newest finished ones, and the schedules with their next runs."""
        history = await ctx.in_thread(ctx.jobs.history, max(0, min(limit, 500)))
        schedules = ctx.scheduler.describe() if ctx.scheduler is not None else []
        return {
            "active": [j.as_dict() for j in ctx.jobs.active()],
            "history": history,
            "schedules": schedules,
        }

    def _job(job_id: str) -> Job | dict[str, Any]:
        found = ctx.jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return found

    @api.get("/jobs/{job_id}", dependencies=[viewer])
    async def job(job_id: str) -> dict[str, Any]:
        """One job: state, progress, and its result or error once finished."""
        found = await ctx.in_thread(_job, job_id)
        return found.as_dict() if isinstance(found, Job) else found

    @api.get(
        "/jobs/{job_id}/events",
        dependencies=[viewer],
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-ndjson": {}}}},
    )
    async def events(job_id: str) -> StreamingResponse:
        """Progress as NDJSON lines until the job ends; the last line has the outcome."""
        found = await ctx.in_thread(_job, job_id)

        async def lines() -> AsyncIterator[bytes]:
            if not isinstance(found, Job):  # finished before a restart: just the outcome
                yield json.dumps({"event": "end", "job": found}).encode() + b"\n"
                return
            async for event in ctx.jobs.events(found):
                yield json.dumps(event).encode() + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @api.delete("/jobs/{job_id}", dependencies=[operator])
    async def cancel(job_id: str) -> dict[str, Any]:
        """Ask a running job to stop at its next file."""
        if not ctx.jobs.cancel(job_id):
            await ctx.in_thread(_job, job_id)  # 404 if unknown
            raise HTTPException(409, f"job {job_id} is not running")
        return {"id": job_id, "cancel_requested": True}

    return api
