"""API tokens: create (shown once), list, revoke. Admin only."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from node.repo import append_audit

from ._context import NodeContext
from ._tokens import TokenInfo, create_token, list_tokens, revoke_token


class TokenRequest(BaseModel):
    """A new token's name and role."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    role: Literal["admin", "operator", "viewer"]


def router(ctx: NodeContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["tokens"])
    admin = ctx.role("admin")

    @api.post("/tokens", status_code=201)
    async def create(request: TokenRequest, who: TokenInfo = admin) -> dict[str, Any]:
        """Create a token; the response is the only time it is shown."""
        try:
            token = await ctx.in_thread(create_token, ctx.home, request.name, request.role)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        details = {"name": request.name, "role": request.role, "by": who.name}
        await ctx.in_thread(append_audit, ctx.repo, "token_create", details)
        return {"name": request.name, "role": request.role, "token": token}

    @api.get("/tokens", dependencies=[admin])
    async def tokens() -> list[dict[str, str]]:
        """Names and roles of the tokens (never the tokens)."""
        return [{"name": t.name, "role": t.role} for t in list_tokens(ctx.home)]

    @api.delete("/tokens/{name}")
    async def revoke(name: str, who: TokenInfo = admin) -> dict[str, Any]:
        """Revoke every token with this name."""
        try:
            removed = await ctx.in_thread(revoke_token, ctx.home, name)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if not removed:
            raise HTTPException(404, f"no token named {name!r}")
        details = {"name": name, "count": removed, "by": who.name}
        await ctx.in_thread(append_audit, ctx.repo, "token_revoke", details)
        return {"name": name, "revoked": removed}

    return api
