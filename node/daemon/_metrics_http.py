"""Serving the metrics: ``GET /metrics``, the request-counting middleware, a listener of its own.

``GET /metrics`` is a route, not ``app.mount(make_asgi_app())`` (that answers 307 to
``/metrics/``), and negotiates the format with ``choose_encoder(accept)`` like prometheus'
own app (``CONTENT_TYPE_LATEST`` is text format 1.0.0 in prometheus_client 0.26, which
scrapers don't expect by default); daemon-field-notes.md section 3.7.

Who may scrape follows the ``metrics`` config section: with ``require_token`` a request
needs ``Authorization: Bearer`` with any API token (every role may read metrics) or the
static ``metrics.token``, both compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from hypercorn.config import Config
from hypercorn.trio import serve
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.config import MetricsConfig

from ._metrics import API_DURATION, API_IN_FLIGHT, API_REQUESTS, UNMATCHED, api_refused

TokenCheck = Callable[[str], bool]
"""True if a presented bearer token is a valid API token (``TokenVerifier.check``)."""


def render_metrics(accept: str) -> tuple[bytes, str]:
    """The default registry in the format ``accept`` asks for: (body, content type)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(REGISTRY), content_type


def metrics_router(dependencies: Sequence[Any] = ()) -> APIRouter:
    """An ``APIRouter`` serving ``GET /metrics``.

    Args:
        dependencies: FastAPI dependencies run first (``[Depends(viewer)]`` when
            ``metrics.require_token``); they refuse with 401/403 as the API does.
    """
    router = APIRouter()

    @router.get(
        "/metrics",
        dependencies=list(dependencies),
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
        summary="Prometheus metrics",
    )
    async def metrics(request: Request) -> Response:
        body, content_type = render_metrics(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    return router


def create_metrics_app(dependencies: Sequence[Any] = ()) -> FastAPI:
    """A FastAPI app with only ``GET /metrics``, for ``metrics.listen`` (its own listener)."""
    app = FastAPI(title="ShadowVault metrics", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(metrics_router(dependencies))
    app.add_middleware(MetricsMiddleware)
    return app


class MetricsMiddleware:
    """ASGI middleware counting HTTP requests by route template, method and status.

    The route template (``/api/v1/snapshots/{snapshot_id}``) comes from the route Starlette
    matched, so ids in paths never become labels; a request that matches no route is
    ``<unmatched>``. Latency runs until the response body ended (streams included).
    Refusals are counted by reason from the status: 401 (``missing_token`` or
    ``bad_token``, by whether an Authorization header came), 403 ``forbidden``, 422
    ``invalid_request``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering
        API_IN_FLIGHT.inc()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            API_IN_FLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope.get("method", "")
            API_REQUESTS.labels(template, method, str(status)).inc()
            API_DURATION.labels(template, method).observe(time.perf_counter() - start)
            reason = _refusal(status, scope)
            if reason:
                api_refused(reason)


def _refusal(status: int, scope: Scope) -> str | None:
    """Why a request was refused before any work, from its status (None: it was not)."""
    if status == 401:
        has_auth = any(name.lower() == b"authorization" for name, _ in scope.get("headers", []))
        return "bad_token" if has_auth else "missing_token"
    return {403: "forbidden", 422: "invalid_request"}.get(status)


def metrics_dependencies(cfg: MetricsConfig, api_token_ok: TokenCheck | None) -> list[Any]:
    """The FastAPI dependencies guarding ``/metrics`` under this config (none if open).

    Args:
        cfg: the ``metrics`` section (``require_token``, ``token``).
        api_token_ok: checks API tokens, e.g. ``lambda t: verifier.check(t) is not None``;
            None accepts only ``metrics.token``.
    """
    if not cfg.require_token:
        return []
    static = cfg.token.get_secret_value().encode() if cfg.token is not None else None

    def scraper(request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        presented = presented.strip()
        if scheme.lower() == "bearer" and presented:
            static_ok = static is not None and hmac.compare_digest(presented.encode(), static)
            if static_ok or (api_token_ok is not None and api_token_ok(presented)):
                return
        raise HTTPException(
            401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )

    return [Depends(scraper)]


def install_metrics(app: FastAPI, cfg: MetricsConfig, api_token_ok: TokenCheck | None) -> None:
    """Count the app's requests and, unless ``metrics.listen`` names a listener of its own
    (or metrics are disabled), serve ``GET /metrics`` on it."""
    app.add_middleware(MetricsMiddleware)
    if cfg.enabled and not cfg.listen:
        app.include_router(metrics_router(metrics_dependencies(cfg, api_token_ok)))


async def serve_metrics(
    cfg: MetricsConfig,
    api_token_ok: TokenCheck | None,
    *,
    shutdown: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` on ``cfg.listen`` until ``shutdown`` is set.

    Calls ``task_status.started`` with the bound addresses (``http://127.0.0.1:PORT``;
    port 0 picks one). Start it only when ``cfg.enabled and cfg.listen``.
    """
    app = create_metrics_app(metrics_dependencies(cfg, api_token_ok))
    hcfg = Config()
    hcfg.bind = [cfg.listen]
    hcfg.graceful_timeout = 2.0
    hcfg.accesslog = None
    hcfg.errorlog = logging.getLogger("hypercorn.error")
    await serve(
        app,  # type: ignore[arg-type]
        hcfg,
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
