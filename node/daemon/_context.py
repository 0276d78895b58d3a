"""What the API's routes share: the open repository, the jobs, the token check.

Routes live in one module per area (``_routes_*``); each exposes ``router(ctx)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio
from fastapi import Depends, HTTPException, Request

from node.ops import LocalControl
from node.p2p import DEFAULT_OWNER_LEASE
from node.repo import RefusalAudit, Repository

from ._jobs import Jobs
from ._tokens import TokenInfo, TokenVerifier

T = TypeVar("T")
log = logging.getLogger("shadowvault.daemon")
RANK = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass
class NodeContext:
    """The daemon's shared state, handed to every router."""

    home: Path
    repo: Repository
    verifier: TokenVerifier
    jobs: Jobs
    info: dict[str, Any]
    """Static facts for /status: peer id, version, pid."""
    shutdown: trio.Event
    io_limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(2))
    """Short store reads for requests; jobs have their own limiter, so a long backup
    never makes ``snapshots`` wait."""
    started: float = field(default_factory=time.monotonic)
    config_view: list[tuple[str, Any, str]] = field(default_factory=list)
    """The effective config: (key, value, source), secrets masked."""
    mesh: Any = None
    """The running ``node.p2p.Mesh`` (typed loosely: created inside ``open_mesh``)."""
    scheduler: Any = None
    """The ``Scheduler`` once running (typed loosely: it is built after the context)."""
    components: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    """name -> health probe, for /health."""
    owner_lease_s: float = DEFAULT_OWNER_LEASE
    """The config's ``gc.owner_lease`` (seconds)."""
    refusals: RefusalAudit | None = None
    """Where refused API requests (401/403) are counted for the audit log."""
    key_digest: str = ""
    """BLAKE3 of ``keys/master.key`` as last seen: a passphrase change made while the
    daemon owns the store is logged by the daemon once the file differs."""

    @property
    def control(self) -> LocalControl:
        lease = self.owner_lease_s
        return LocalControl(self.repo, owner_lease=lambda: lease)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a short blocking store call off the event loop."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.io_limiter)

    def role(self, need: str) -> Any:
        """A FastAPI dependency: a valid bearer token whose role ranks at least ``need``."""
        verifier = self.verifier

        def dependency(request: Request) -> TokenInfo:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            info = verifier.check(token.strip()) if scheme.lower() == "bearer" else None
            if info is None:
                self._refused(request, "unauthenticated")
                raise HTTPException(
                    401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
                )
            if RANK[info.role] < RANK[need]:
                self._refused(request, f"forbidden:{info.role}")
                raise HTTPException(403, f"role {info.role!r} cannot do this (needs {need!r})")
            return info

        return Depends(dependency)

    async def push_new_records(self) -> None:
        """Push our new forget/hold/release notices to our holders now (best effort:
        they pull them at their next sync round anyway)."""
        if self.mesh is None:
            return
        try:
            await self.mesh.push_new()
        except Exception:
            log.exception("pushing notices to holders failed")

    def _refused(self, request: Request, reason: str) -> None:
        if self.refusals is not None:
            client = request.client.host if request.client is not None else "unknown"
            self.refusals.note(client, reason)
