"""Prometheus metrics: scraped from a real FastAPI app after real operations on a real store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from prometheus_client.parser import text_string_to_metric_families

from node.daemon import (
    MetricsMiddleware,
    backup_started,
    check_started,
    create_metrics_app,
    error_kind,
    job_finished,
    job_started,
    metrics_router,
    observe_backup,
    observe_check,
    observe_job,
    observe_restore,
    refresh_store_metrics,
    render_metrics,
    restore_started,
    set_build_info,
)
from node.daemon._metrics import STORE_SERIES
from node.ops import BackupOptions, RestoreOptions, run_backup, run_check, run_restore
from node.repo import CorruptBlob, Repository, StoreFull, list_snapshots
from tests.ops.helpers import make_repo

METRIC_TYPES = {
    "shadowvault_build_info": "gauge",  # an Info in the 0.0.4 text format
    "shadowvault_backups_started": "counter",
    "shadowvault_backups_finished": "counter",
    "shadowvault_backup_duration_seconds": "histogram",
    "shadowvault_backup_processed_bytes": "counter",
    "shadowvault_backup_added_bytes": "counter",
    "shadowvault_backup_stored_bytes": "counter",
    "shadowvault_backup_files": "counter",
    "shadowvault_backup_dedup_ratio": "gauge",
    "shadowvault_restores_finished": "counter",
    "shadowvault_restore_duration_seconds": "histogram",
    "shadowvault_restore_written_bytes": "counter",
    "shadowvault_checks_finished": "counter",
    "shadowvault_check_duration_seconds": "histogram",
    "shadowvault_jobs": "gauge",
    "shadowvault_jobs_finished": "counter",
    "shadowvault_job_duration_seconds": "histogram",
    "shadowvault_scheduler_runs": "counter",
    "shadowvault_api_requests": "counter",
    "shadowvault_api_request_duration_seconds": "histogram",
    "shadowvault_errors": "counter",
    "shadowvault_store_blobs": "gauge",
    "shadowvault_store_size_bytes": "gauge",
    "shadowvault_store_packs": "gauge",
    "shadowvault_snapshots": "gauge",
}


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = make_repo(tmp_path / "home")
    yield r
    r.close()


def _app() -> FastAPI:
    def need_token(authorization: str | None = Header(default=None)) -> None:
        if authorization != "Bearer good":
            raise HTTPException(401)

    app = FastAPI()
    app.include_router(metrics_router([Depends(need_token)]))

    @app.get("/api/v1/snapshots/{snapshot_id}")
    async def snapshot(snapshot_id: str) -> dict[str, str]:
        return {"id": snapshot_id}

    app.add_middleware(MetricsMiddleware)
    return app


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


async def _scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics", headers={"Authorization": "Bearer good"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


async def test_metrics_scrape_after_real_operations(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        (src / "sub" / f"f{i}.bin").write_bytes(bytes([i]) * 20_000)
    set_build_info("9.9.9-test")
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        before = await _scrape(client)

        job_started("backup")
        backup_started()
        summary = run_backup(repo, BackupOptions(paths=[src]))
        observe_backup(summary)
        job_finished("backup", "ok", summary.duration_s)

        restore_started()
        t0 = time.monotonic()
        restored = run_restore(
            repo, list_snapshots(repo)[0], RestoreOptions(target=tmp_path / "out")
        )
        observe_restore(restored, time.monotonic() - t0)

        check_started()
        report = run_check(repo, read_data=True)
        observe_check(report, 0.5)
        facts = refresh_store_metrics(repo)

        for snap_id in ("aaaa", "bbbb", "cccc"):
            assert (await client.get(f"/api/v1/snapshots/{snap_id}")).status_code == 200
        assert (await client.get("/no/such/route")).status_code == 404
        assert (await client.get("/metrics")).status_code == 401
        after = await _scrape(client)

    families = _families(after)
    ours = {
        name: f
        for name, f in families.items()
        if name.startswith("shadowvault_") and not name.endswith("_created")
    }
    with_samples = [name for name, f in ours.items() if f.samples]  # type: ignore[attr-defined]
    assert len(with_samples) >= 30, sorted(with_samples)
    for name, kind in METRIC_TYPES.items():
        assert families[name].type == kind, name  # type: ignore[attr-defined]
    for name in STORE_SERIES:
        assert name in families, name

    def delta(name: str, **labels: str) -> float:
        try:
            old = _value(before, name, **labels)
        except AssertionError:  # a labelled series appears with its first use
            old = 0.0
        return _value(after, name, **labels) - old

    assert delta("shadowvault_backups_finished_total", result="ok") == 1
    assert delta("shadowvault_backup_files_total", state="new") == 5
    assert delta("shadowvault_backup_processed_bytes_total") == 100_000
    assert delta("shadowvault_restores_finished_total", result="ok") == 1
    assert delta("shadowvault_restore_written_bytes_total") == 100_000
    assert delta("shadowvault_checks_finished_total", result="ok") == 1
    assert delta("shadowvault_jobs_finished_total", kind="backup", result="ok") == 1
    assert _value(after, "shadowvault_jobs", kind="backup", state="running") == 0
    assert _value(after, "shadowvault_snapshots") == 1
    assert _value(after, "shadowvault_store_blobs", kind="data") == facts.blobs["data"] > 0
    assert _value(after, "shadowvault_store_packs") == facts.packs >= 1
    assert _value(after, "shadowvault_build_info", version="9.9.9-test") == 1
    # Route templates, never raw paths; unmatched paths share one label value.
    template = "/api/v1/snapshots/{snapshot_id}"
    assert delta("shadowvault_api_requests_total", route=template, method="GET", status="200") == 3
    assert "aaaa" not in after
    assert delta("shadowvault_api_requests_total", route="<unmatched>", status="404") == 1
    assert delta("shadowvault_api_requests_total", route="/metrics", status="401") == 1


async def test_metrics_negotiates_openmetrics() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        response = await client.get(
            "/metrics",
            headers={
                "Authorization": "Bearer good",
                "Accept": "application/openmetrics-text; version=1.0.0",
            },
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "shadowvault_backups_started_total" in response.text


async def test_metrics_route_is_not_a_redirect() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        response = await client.get("/metrics", headers={"Authorization": "Bearer good"})
    assert response.status_code == 200  # app.mount() would answer 307 -> /metrics/


async def test_metrics_own_listener_app_serves_only_metrics() -> None:
    transport = httpx.ASGITransport(app=create_metrics_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/api/v1/status")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (StoreFull("full"), "store_full"),
        (CorruptBlob(b"\0" * 32, "bad"), "corrupt_blob"),
        (PermissionError(13, "denied"), "io"),
        (ZeroDivisionError(), "internal"),
    ],
    ids=["store_full", "corrupt_blob", "io", "internal"],
)
def test_metrics_error_kind_is_bounded(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind


async def test_metrics_observe_job_hook_counts_by_kind_and_state() -> None:
    from node.daemon._jobs import Job

    def finished(kind: str, result: str) -> float:
        return _value(
            render_metrics("")[0].decode(),
            "shadowvault_jobs_finished_total",
            kind=kind,
            result=result,
        )

    ok_before, cancelled_before = finished("check", "ok"), finished("check", "cancelled")
    ran = Job(id="a", kind="check", params={}, source="test", state="succeeded")
    ran.started, ran.finished = 100.0, 102.5
    job_started("check")
    observe_job(ran)
    never_ran = Job(id="b", kind="check", params={}, source="test", state="cancelled")
    observe_job(never_ran)
    assert finished("check", "ok") == ok_before + 1
    assert finished("check", "cancelled") == cancelled_before + 1
    running = _value(
        render_metrics("")[0].decode(), "shadowvault_jobs", kind="check", state="running"
    )
    assert running == 0
