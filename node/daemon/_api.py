"""The HTTP API (FastAPI), versioned under /api/v1, one router per area.

Every route but /health, /live and /ready needs ``Authorization: Bearer <token>``:
401 without a valid token, 403 when the token's role lacks the right (viewer < operator
< admin). Errors from the store come back as ``{"detail": message, "error": kind}`` with
a status that says what kind of failure it was; the CLI prints ``detail`` as it would
print the local error.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from node.repo import BlobNotFound, HomeError, RepoError, StoreFull, StoreLocked

from . import (
    _routes_jobs,
    _routes_mesh,
    _routes_node,
    _routes_retention,
    _routes_snapshots,
    _routes_tokens,
)
from ._context import NodeContext

ROUTERS = (
    _routes_node,
    _routes_snapshots,
    _routes_jobs,
    _routes_retention,
    _routes_mesh,
    _routes_tokens,
)

_STATUS = {BlobNotFound: 404, StoreFull: 507, StoreLocked: 409, HomeError: 409}


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped.

    File names are bytes; names that are not UTF-8 reach JSON as lone surrogates
    (``os.fsdecode``), which only ``\\uXXXX`` escapes carry losslessly. The CLI's own
    ``--json`` output escapes the same way, so both paths print the same text.
    """

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def create_app(ctx: NodeContext, *, cors_origins: list[str] | None = None) -> FastAPI:
    """Build the API for one running node (CORS only for the configured origins)."""
    app = FastAPI(
        default_response_class=AsciiJSONResponse,
        title="ShadowVault node API",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )

    @app.exception_handler(RepoError)
    async def repo_error(request: Request, exc: RepoError) -> JSONResponse:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        return AsciiJSONResponse({"detail": str(exc), "error": type(exc).__name__}, status)

    for module in ROUTERS:
        app.include_router(module.router(ctx))
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app
