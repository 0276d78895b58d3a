"""The mesh: identity, peers, replication status, a sync round."""

from __future__ import annotations

from typing import Any

import trio
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from node.config import Size
from node.p2p import MeshError
from protocol import WireError

from ._context import NodeContext

SYNC_TIMEOUT = 120.0


class PeerRequest(BaseModel):
    """A peer to add (or update): its id, where to reach it, and its roles."""

    model_config = ConfigDict(extra="forbid")
    peer_id: str = Field(min_length=1, max_length=128)
    addrs: list[str] = Field(default=[], max_length=32)
    name: str = Field(default="", max_length=64)
    store_for: bool = False
    store_at: bool = False
    quota: str = Field(default="0B", description="a size, e.g. 50GiB; 0B: no limit")


def router(ctx: NodeContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["mesh"])
    viewer, operator, admin = ctx.role("viewer"), ctx.role("operator"), ctx.role("admin")

    @api.get("/id", dependencies=[viewer])
    async def identity() -> dict[str, Any]:
        """This node's peer id and the addresses it listens on."""
        return {"peer_id": ctx.mesh.peer_id, "addrs": ctx.mesh.addrs}

    @api.get("/peers", dependencies=[viewer])
    async def peers() -> list[dict[str, Any]]:
        """Known peers: roles, connected, last seen, bytes held for each, snapshots at each."""
        return list(await ctx.in_thread(ctx.mesh.list_peers))

    @api.post("/peers", status_code=201, dependencies=[admin])
    async def add_peer(request: PeerRequest) -> dict[str, Any]:
        """Add or update a peer; its roles decide what it may ask of us."""
        try:
            quota = Size.parse(request.quota).bytes
            rec = ctx.mesh.add_peer(
                request.peer_id,
                addrs=request.addrs,
                name=request.name,
                store_for=request.store_for,
                store_at=request.store_at,
                quota=quota,
            )
        except (WireError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        return dict(rec.to_json())

    @api.delete("/peers/{peer_id}", dependencies=[admin])
    async def remove_peer(peer_id: str) -> dict[str, Any]:
        """Forget a peer: its requests are refused from now on."""
        try:
            removed = ctx.mesh.remove_peer(peer_id)
        except WireError as exc:
            raise HTTPException(422, str(exc)) from None
        if not removed:
            raise HTTPException(404, f"no peer {peer_id}")
        return {"peer_id": peer_id, "removed": True}

    @api.get("/replication", dependencies=[viewer])
    async def replication() -> dict[str, Any]:
        """Peers, which peers hold complete copies of each snapshot, the replication queue."""
        return dict(await ctx.in_thread(ctx.mesh.status))

    @api.post("/sync", dependencies=[operator])
    async def sync() -> dict[str, Any]:
        """One round now: dial known peers, pull their announcements, replicate."""
        with trio.move_on_after(SYNC_TIMEOUT) as scope:
            try:
                await ctx.mesh.sync()
            except MeshError as exc:
                raise HTTPException(502, str(exc)) from None
        return {"done": not scope.cancelled_caught}

    return api
