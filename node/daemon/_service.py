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
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from node.repo import HomePaths, open_repository
from node.repo._fsutil import atomic_write

from ._api import create_app
from ._context import NodeContext
from ._jobs import Jobs
from ._peer_id import peer_id_of
from ._tokens import TokenVerifier, ensure_owner_token

DEFAULT_API = "127.0.0.1:8734"
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


async def run_daemon(
    home: HomePaths,
    passphrase: str,
    api_bind: str = DEFAULT_API,
    *,
    shutdown: trio.Event,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until ``shutdown`` is set (or a signal arrives).

    Calls ``task_status.started`` with ``{"peer_id", "api", "addrs"}`` once serving.

    Raises:
        RepoError: the store cannot be opened (wrong passphrase, in use, damaged).
    """
    repo = await trio.to_thread.run_sync(open_repository, home, passphrase)
    try:
        ensure_owner_token(home.root)
        peer_id = peer_id_of(bytes(repo.identity.verify_key))
        jobs = Jobs(repo.store, trio.CapacityLimiter(max(2, os.cpu_count() or 2)))
        ctx = NodeContext(
            home=home.root,
            repo=repo,
            verifier=TokenVerifier(home.root),
            jobs=jobs,
            info={"peer_id": peer_id, "version": "0.1.0", "pid": os.getpid()},
            shutdown=shutdown,
        )
        app = create_app(ctx)
        cfg = Config()
        cfg.bind = [api_bind]
        cfg.graceful_timeout = 5.0
        cfg.accesslog = None
        cfg.errorlog = logging.getLogger("hypercorn.error")
        async with trio.open_nursery() as nursery:
            if handle_signals:
                nursery.start_soon(_watch_signals, shutdown)
            async with trio.open_nursery() as job_nursery:
                await job_nursery.start(jobs.run)
                binds = await nursery.start(
                    lambda task_status: serve(
                        app,  # type: ignore[arg-type]
                        cfg,
                        shutdown_trigger=shutdown.wait,
                        task_status=task_status,
                    )
                )
                url = _client_url(binds[0])
                await trio.to_thread.run_sync(_write_daemon_file, home.root, url)
                task_status.started({"peer_id": peer_id, "api": url, "addrs": []})
                await shutdown.wait()
                jobs.cancel_all()
                # Threads cannot be interrupted; they stop at their next progress report.
                with trio.move_on_after(60):
                    while jobs.active():
                        await trio.sleep(0.05)
                job_nursery.cancel_scope.cancel()
            nursery.cancel_scope.deadline = trio.current_time() + cfg.graceful_timeout + 1
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(repo.close)
            _remove_daemon_file(home.root)
