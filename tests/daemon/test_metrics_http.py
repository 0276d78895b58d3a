"""Who may scrape /metrics, on the API listener or on one of its own (real hypercorn)."""

from __future__ import annotations

import httpx
import pytest
import trio
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY

from node.config import MetricsConfig, load_config_text
from node.daemon import install_metrics, serve_metrics

API_TOKEN = "api-token-0123456789"
STATIC = "static-scrape-token-42"


def _api_token_ok(token: str) -> bool:
    return token == API_TOKEN


def _metrics_cfg(**env: str) -> MetricsConfig:
    names = {f"SHADOWVAULT_METRICS__{k.upper()}": v for k, v in env.items()}
    return load_config_text(None, env=names).config.metrics


def _app(cfg: MetricsConfig) -> FastAPI:
    app = FastAPI()

    @app.get("/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    install_metrics(app, cfg, _api_token_ok)
    return app


async def _get(app: FastAPI, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        return (await client.get(path, headers=headers)).status_code


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("wrong-token-value", 401), (API_TOKEN, 200), (STATIC, 200)],
    ids=["none", "wrong", "api-token", "static-token"],
)
async def test_metrics_require_token(token: str | None, status: int) -> None:
    app = _app(_metrics_cfg(token=STATIC))
    assert await _get(app, "/metrics", token) == status


async def test_metrics_without_static_token_accepts_only_api_tokens() -> None:
    app = _app(_metrics_cfg())
    assert await _get(app, "/metrics", STATIC) == 401
    assert await _get(app, "/metrics", API_TOKEN) == 200


async def test_metrics_open_when_token_not_required() -> None:
    app = _app(_metrics_cfg(require_token="false"))
    assert await _get(app, "/metrics") == 200


async def test_metrics_not_on_api_when_own_listener_or_disabled() -> None:
    assert await _get(_app(_metrics_cfg(listen="127.0.0.1:0")), "/metrics", API_TOKEN) == 404
    assert await _get(_app(_metrics_cfg(enabled="false")), "/metrics", API_TOKEN) == 404
    assert await _get(_app(_metrics_cfg(enabled="false")), "/live") == 200


async def test_metrics_own_listener_serves_and_stops(nursery: trio.Nursery) -> None:
    cfg = _metrics_cfg(listen="127.0.0.1:0", token=STATIC)
    shutdown = trio.Event()
    binds = await nursery.start(
        lambda task_status: serve_metrics(cfg, None, shutdown=shutdown, task_status=task_status)
    )
    url = binds[0]
    async with httpx.AsyncClient(base_url=url) as client:
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {STATIC}"})
        assert ok.status_code == 200
        assert "shadowvault_api_requests_total" in ok.text
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/api/v1/status")).status_code == 404
    shutdown.set()
    with trio.fail_after(10):
        while True:
            try:
                async with httpx.AsyncClient(base_url=url) as client:
                    await client.get("/metrics")
            except httpx.ConnectError:
                break
            await trio.sleep(0.05)


async def test_metrics_refusals_counted_by_reason() -> None:
    def refused(reason: str) -> float:
        value = REGISTRY.get_sample_value("shadowvault_api_refused_total", {"reason": reason})
        return value or 0.0

    app = _app(_metrics_cfg())

    @app.get("/api/v1/admin-only")
    async def admin_only() -> None:
        raise HTTPException(403, "role 'viewer' cannot do this")

    @app.get("/api/v1/items/{n}")
    async def item(n: int) -> dict[str, int]:
        return {"n": n}

    before = {r: refused(r) for r in ("missing_token", "bad_token", "forbidden", "invalid_request")}
    assert await _get(app, "/metrics") == 401
    assert await _get(app, "/metrics", "wrong-token-value") == 401
    assert await _get(app, "/metrics", "another-wrong-one") == 401
    assert await _get(app, "/api/v1/admin-only", API_TOKEN) == 403
    assert await _get(app, "/api/v1/items/not-a-number") == 422
    assert await _get(app, "/api/v1/items/7") == 200
    after = {r: refused(r) for r in before}
    assert {r: after[r] - before[r] for r in before} == {
        "missing_token": 1,
        "bad_token": 2,
        "forbidden": 1,
        "invalid_request": 1,
    }
