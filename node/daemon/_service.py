"""The node daemon: one trio process owning the store, the jobs and the API.

Shutdown order (SIGTERM or SIGINT, or ``POST /api/v1/node/stop``):

1. every running job is asked to stop; its thread sees that at its next file and
   unwinds, so the store keeps only whole, synced batches (a snapshot record is written
   last, so no half snapshot can appear);
2. the API stops accepting and finishes requests in flight (graceful timeout);
3. the jobs nursery is cancelled once its threads have returned;
4. the store is flushed and closed, releasing its lock, and ``daemon.json`` is removed.

A second signal exits at once: even then nothing is half-written, because the store
only commits whole batches and recovers a torn pack tail on the next open.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from node.config import NodeConfig
from node.p2p import Mesh, open_mesh, settings_from_config
from node.repo import HomePaths, RefusalAudit, append_audit, key_file_digest, open_repository
from node.repo._fsutil import atomic_write
from protocol import BlobId, peer_id_from_public, peer_id_text

from ._api import create_app
from ._config_schedules import observe_fire, scheduler_options, schedules_from_config
from ._context import NodeContext
from ._jobs import Job, Jobs
from ._logging import add_secret, adopt_library_loggers, configure_logging
from ._metrics import refresh_store_metrics, set_build_info
from ._metrics_http import install_metrics, serve_metrics
from ._observe import STORE_CHANGING, job_finished, job_started
from ._scheduled import start_scheduled
from ._scheduler import Scheduler
from ._tokens import TokenVerifier, ensure_owner_token

VERSION = "0.1.0"
log = structlog.get_logger("shadowvault.node")
DAEMON_FILE = "daemon.json"
"""Written in the home while a daemon runs: its pid and API URL, for the CLI."""


async def _watch_signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if shutdown.is_set():
                os._exit(128 + signum)
            shutdown.set()


def _client_url(bound: str) -> str:
    """The URL a local client should use for a bound address (0.0.0.0 -> loopback)."""
    return bound.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")


def _write_daemon_file(home: Path, url: str) -> None:
    facts = {"pid": os.getpid(), "api": url, "started": time.time()}
    atomic_write(home / DAEMON_FILE, json.dumps(facts).encode(), mode=0o600)


def _remove_daemon_file(home: Path) -> None:
    path = home / DAEMON_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _refresh_store_gauges_after(ctx: NodeContext, nursery: trio.Nursery) -> None:
    """Re-measure the store (in a thread, off the hook) after jobs that change it."""

    def hook(job: Job) -> None:
        if job.kind in STORE_CHANGING and job.state == "succeeded":
            nursery.start_soon(
                partial(
                    trio.to_thread.run_sync, refresh_store_metrics, ctx.repo, limiter=ctx.io_limiter
                )
            )

    ctx.jobs.on_finish.append(hook)


def _announce_after_backups(ctx: NodeContext, nursery: trio.Nursery) -> None:
    """Announce each new snapshot to the mesh (peers that store for us fetch it)."""

    async def announce(snapshot_id: str) -> None:
        try:
            await ctx.mesh.announce(BlobId(bytes.fromhex(snapshot_id)))
        except Exception:  # an announcement that fails is retried by the pull on connect
            log.exception("announcement failed", snapshot=snapshot_id[:8])

    def hook(job: Job) -> None:
        if job.kind == "backup" and job.state == "succeeded" and job.result:
            nursery.start_soon(announce, job.result["snapshot_id"])

    ctx.jobs.on_finish.append(hook)


def _push_after_forgets(ctx: NodeContext, nursery: trio.Nursery) -> None:
    """Push the forget notices a forget job made to our holders at once (they would
    also pull them at their next sync round)."""

    def hook(job: Job) -> None:
        if job.kind == "forget" and job.state == "succeeded":
            nursery.start_soon(ctx.push_new_records)

    ctx.jobs.on_finish.append(hook)


async def _flush_refusals(ctx: NodeContext) -> None:
    """Write refused API requests (aggregated per minute) to the audit log; the current
    minute's at shutdown."""
    assert ctx.refusals is not None
    try:
        while True:
            await trio.sleep(15)
            await ctx.in_thread(ctx.refusals.flush)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(partial(ctx.refusals.flush, force=True))


def _p2p_health(mesh: Mesh) -> dict[str, Any]:
    """The mesh's part of /health: listening, and how many trusted peers answer."""
    peers = mesh.list_peers()
    trusted = [p for p in peers if p.get("store_for") or p.get("store_at")]
    connected = sum(1 for p in trusted if p["connected"])
    status = "healthy" if connected or not trusted else "degraded"
    return {
        "status": status,
        "addrs": mesh.addrs,
        "peers_known": len(trusted),
        "peers_connected": connected,
        **({"message": "no trusted peer reachable"} if status == "degraded" else {}),
    }


async def run_daemon(
    home: HomePaths,
    passphrase: str,
    cfg: NodeConfig,
    *,
    config_view: list[tuple[str, Any, str]] | None = None,
    shutdown: trio.Event,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until ``shutdown`` is set (or a signal arrives).

    ``cfg`` is the validated config (flags > env > file > defaults); ``config_view`` its
    leaves with their sources, secrets masked, for ``GET /api/v1/config``. Calls
    ``task_status.started`` with ``{"peer_id", "api", "addrs", "metrics"}`` once serving.

    Raises:
        RepoError: the store cannot be opened (wrong passphrase, in use, damaged).
    """
    configure_logging(cfg.logging)
    add_secret(passphrase)
    if cfg.metrics.token is not None:
        add_secret(cfg.metrics.token.get_secret_value())
    repo = await trio.to_thread.run_sync(open_repository, home, passphrase)
    try:
        add_secret(ensure_owner_token(home.root))
        peer_id = peer_id_text(peer_id_from_public(bytes(repo.identity.verify_key)))
        set_build_info(VERSION)
        jobs = Jobs(repo.store, trio.CapacityLimiter(max(2, os.cpu_count() or 2)))
        ctx = NodeContext(
            home=home.root,
            repo=repo,
            verifier=TokenVerifier(home.root),
            jobs=jobs,
            info={"peer_id": peer_id, "version": VERSION, "pid": os.getpid()},
            shutdown=shutdown,
            config_view=config_view or [],
            owner_lease_s=cfg.gc.owner_lease.seconds,
            key_digest=key_file_digest(home),
            refusals=RefusalAudit(
                lambda action, details: append_audit(repo, action, details), via="api"
            ),
        )
        jobs.on_start.append(job_started)
        jobs.on_finish.append(job_finished)
        schedules = schedules_from_config(cfg) if cfg.scheduler.enabled else []
        scheduler = Scheduler(
            schedules,
            partial(start_scheduled, ctx),
            repo.store,
            **scheduler_options(cfg.scheduler),
        )
        scheduler.on_fire.append(observe_fire)
        jobs.on_finish.append(scheduler.job_finished)
        ctx.scheduler = scheduler
        ctx.components["scheduler"] = lambda: {
            "status": "healthy",
            "schedules": len(scheduler.schedules),
            "fired": scheduler.fired,
        }

        def token_ok(token: str) -> bool:
            return ctx.verifier.check(token) is not None

        app = create_app(ctx, cors_origins=cfg.api.cors_origins)
        install_metrics(app, cfg.metrics, token_ok)
        api = Config()
        api.bind = [cfg.api.listen]
        api.graceful_timeout = 5.0
        api.accesslog = None
        api.errorlog = logging.getLogger("hypercorn.error")
        async with (
            open_mesh(repo, settings_from_config(cfg.p2p)) as mesh,
            trio.open_nursery() as nursery,
        ):
            adopt_library_loggers()
            ctx.mesh = mesh
            mesh.add_configured_peers(cfg.peers)
            ctx.components["p2p"] = partial(_p2p_health, mesh)
            _announce_after_backups(ctx, nursery)
            _push_after_forgets(ctx, nursery)
            nursery.start_soon(_flush_refusals, ctx)
            if handle_signals:
                nursery.start_soon(_watch_signals, shutdown)
            nursery.start_soon(
                partial(
                    trio.to_thread.run_sync, refresh_store_metrics, repo, limiter=ctx.io_limiter
                )
            )
            _refresh_store_gauges_after(ctx, nursery)
            metrics_url = None
            if cfg.metrics.enabled and cfg.metrics.listen:
                bound = await nursery.start(
                    partial(serve_metrics, cfg.metrics, token_ok, shutdown=shutdown)
                )
                metrics_url = _client_url(bound[0]) + "/metrics"
            async with trio.open_nursery() as job_nursery:
                await job_nursery.start(jobs.run)
                await job_nursery.start(scheduler.run)
                api_done = trio.Event()

                async def serve_api(task_status: trio.TaskStatus[list[str]]) -> None:
                    try:
                        await serve(
                            app,  # type: ignore[arg-type]
                            api,
                            shutdown_trigger=shutdown.wait,
                            task_status=task_status,
                        )
                    finally:
                        api_done.set()

                binds = await nursery.start(serve_api)
                url = _client_url(binds[0])
                if cfg.metrics.enabled and not cfg.metrics.listen:
                    metrics_url = url + "/metrics"
                await trio.to_thread.run_sync(_write_daemon_file, home.root, url)
                log.info("node started", peer_id=peer_id, api=url)
                task_status.started(
                    {"peer_id": peer_id, "api": url, "addrs": mesh.addrs, "metrics": metrics_url}
                )
                await shutdown.wait()
                log.info("node stopping")
                jobs.cancel_all()
                # Threads cannot be interrupted; they stop at their next progress report.
                with trio.move_on_after(60):
                    while jobs.active():
                        await trio.sleep(0.05)
                job_nursery.cancel_scope.cancel()
            # The API finishes the requests in flight (graceful timeout); then the rest of
            # the nursery (signal watcher, metrics listener, gauge refreshes) is stopped.
            with trio.move_on_after(api.graceful_timeout + 1):
                await api_done.wait()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(repo.close)
            _remove_daemon_file(home.root)
            log.info("node stopped")
