"""Browsing snapshots: list, one, ls, find, diff, and a file's bytes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ._context import NodeContext


def router(ctx: NodeContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["snapshots"])
    viewer, operator = ctx.role("viewer"), ctx.role("operator")

    @api.get("/snapshots", dependencies=[viewer])
    async def snapshots(
        tag: Annotated[list[str] | None, Query()] = None,
        path: Annotated[list[str] | None, Query()] = None,
    ) -> list[dict[str, Any]]:
        """Snapshots, oldest first (``snapshots --json``)."""
        return await ctx.in_thread(ctx.control.snapshots, tag, path)

    @api.get("/snapshots/{ref}", dependencies=[viewer])
    async def snapshot(ref: str) -> dict[str, Any]:
        """One snapshot by id, 8+ hex digit prefix, or ``latest``."""
        return await ctx.in_thread(ctx.control.snapshot, ref)

    @api.get("/snapshots/{ref}/ls", dependencies=[viewer])
    async def ls(ref: str, path: str = "/", recursive: bool = False) -> list[dict[str, Any]]:
        """Entries under a directory of a snapshot."""
        return await ctx.in_thread(ctx.control.ls, ref, path, recursive)

    @api.get("/find", dependencies=[viewer])
    async def find(pattern: str, snapshot: str | None = None) -> list[dict[str, Any]]:
        """Entries matching a glob across snapshots, or in one."""
        return await ctx.in_thread(ctx.control.find, pattern, snapshot)

    @api.get("/diff", dependencies=[viewer])
    async def diff(first: str, second: str) -> list[dict[str, Any]]:
        """What changed from ``first`` to ``second``."""
        return await ctx.in_thread(ctx.control.diff, first, second)

    @api.get(
        "/snapshots/{ref}/dump",
        dependencies=[operator],
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def dump(ref: str, path: str) -> StreamingResponse:
        """A file's bytes (operator: this reads backed-up contents)."""
        size, chunks = await ctx.in_thread(ctx.control.open_file, ref, path)
        # A sync iterator: Starlette pulls each chunk in a worker thread.
        return StreamingResponse(
            chunks, media_type="application/octet-stream", headers={"Content-Length": str(size)}
        )

    return api
