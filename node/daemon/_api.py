"""The HTTP API (FastAPI), versioned under /api/v1.

Every route but /health, /live and /ready needs ``Authorization: Bearer <token>``:
401 without a valid token, 403 when the token's role lacks the right. Store work runs in
threads behind one ``CapacityLimiter`` so that the event loop stays responsive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from fastapi import Depends, FastAPI, HTTPException, Request

from node.ops import filter_snapshots, run_stats, snapshot_json
from node.repo import Repository, list_snapshots

from ._tokens import TokenInfo, TokenVerifier

_RANK = {"viewer": 0, "operator": 1, "admin": 2}


def _auth(verifier: TokenVerifier, need: str) -> Callable[[Request], TokenInfo]:
    def dependency(request: Request) -> TokenInfo:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        info = verifier.check(token.strip()) if scheme.lower() == "bearer" else None
        if info is None:
            raise HTTPException(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        if _RANK[info.role] < _RANK[need]:
            raise HTTPException(403, f"role {info.role!r} cannot do this (needs {need!r})")
        return info

    return dependency


def create_app(repo: Repository, verifier: TokenVerifier, info: dict[str, Any]) -> FastAPI:
    """Build the API for one open repository.

    Args:
        repo: the node's repository, owned by the daemon.
        verifier: accepted tokens.
        info: static facts about the node (peer id, version) for /status.
    """
    app = FastAPI(title="ShadowVault node API", version="1", openapi_url="/api/v1/openapi.json")
    limiter = trio.CapacityLimiter(2)
    viewer = Depends(_auth(verifier, "viewer"))

    async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=limiter)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/api/v1/status", dependencies=[viewer])
    async def status() -> dict[str, Any]:
        snaps = await in_thread(list_snapshots, repo)
        return {**info, "snapshots": len(snaps), "repo_id": repo.store.meta.repo_id}

    @app.get("/api/v1/snapshots", dependencies=[viewer])
    async def snapshots(tag: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        snaps = await in_thread(list_snapshots, repo)
        chosen = filter_snapshots(snaps, [tag] if tag else None, [path] if path else None)
        return [snapshot_json(s) for s in chosen]

    @app.get("/api/v1/stats", dependencies=[viewer])
    async def stats() -> dict[str, Any]:
        result = await in_thread(run_stats, repo)
        return dict(result.as_dict())

    return app
