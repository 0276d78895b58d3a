"""Forget, gc, holds and the audit log. Destructive or protective: admin only (reading
holds: viewer)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException

from node.ops import ForgetRequest, GcRequest, HoldRequest
from node.repo import HomePaths, append_audit, key_file_digest

from ._context import NodeContext


def router(ctx: NodeContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["retention"])
    viewer, admin = ctx.role("viewer"), ctx.role("admin")

    @api.post("/forget", status_code=202, dependencies=[admin])
    async def forget(request: ForgetRequest) -> dict[str, Any]:
        """Start a forget job (by policy or ids; held snapshots stay; ``prune``: gc after)."""
        job = ctx.jobs.start(
            "forget",
            request.model_dump(),
            lambda progress: ctx.control.forget(request, progress),
            exclusive=True,
        )
        return job.as_dict()

    @api.post("/gc", status_code=202, dependencies=[admin])
    async def gc(request: GcRequest) -> dict[str, Any]:
        """Start a gc job (safe beside running backups and replication)."""
        job = ctx.jobs.start(
            "gc", request.model_dump(), lambda progress: ctx.control.gc(request, progress)
        )
        return job.as_dict()

    @api.post("/holds", dependencies=[admin])
    async def hold(request: HoldRequest) -> dict[str, Any]:
        """Hold a snapshot until a date (extend only), or release its hold."""
        result = await ctx.in_thread(ctx.control.hold, request)
        await ctx.push_new_records()  # holders honour the hold (or release) too
        return result

    @api.get("/holds", dependencies=[viewer])
    async def holds() -> list[dict[str, Any]]:
        """Every hold, active or expired."""
        return await ctx.in_thread(ctx.control.holds)

    @api.get("/audit", dependencies=[admin])
    async def audit(since_ns: int | None = None) -> list[dict[str, Any]]:
        """The signed, hash-chained audit log (from ``since_ns`` on)."""
        return await ctx.in_thread(ctx.control.audit, since_ns)

    @api.post("/audit/key-change", dependencies=[admin])
    async def key_change() -> dict[str, Any]:
        """Log a passphrase change made while the daemon owns the store (the CLI calls
        this after changing it). Only a real change is logged: the key file must differ
        from the one the daemon last saw (409 otherwise)."""
        digest = await ctx.in_thread(key_file_digest, HomePaths(ctx.home))
        if digest == ctx.key_digest:
            raise HTTPException(409, "the key file has not changed; nothing to record")
        ctx.key_digest = digest
        details = {"what": "passphrase", "time_ns": time.time_ns(), "via": "daemon"}
        entry = await ctx.in_thread(append_audit, ctx.repo, "key_change", details)
        return dict(entry.as_dict())

    @api.get("/audit/verify", dependencies=[admin])
    async def audit_verify() -> dict[str, Any]:
        """Check every entry's signature, the chain and the head."""
        return await ctx.in_thread(ctx.control.audit_verify)

    return api
