"""The node daemon: one trio process owning the store and serving the API.

Shutdown order (SIGTERM or SIGINT): the API stops accepting and finishes requests in
flight (graceful timeout), then the store is flushed and closed, releasing its lock. A
second signal exits at once: nothing is half-written, since the store only ever commits
whole, synced batches.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from node.repo import HomePaths, open_repository

from ._api import create_app
from ._peer_id import peer_id_of
from ._tokens import TokenVerifier, ensure_owner_token

DEFAULT_API = "127.0.0.1:8734"


async def _watch_signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if shutdown.is_set():
                os._exit(128 + signum)
            shutdown.set()


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
        info = {"peer_id": peer_id, "version": "0.1.0", "pid": os.getpid()}
        app = create_app(repo, TokenVerifier(home.root), info)
        cfg = Config()
        cfg.bind = [api_bind]
        cfg.graceful_timeout = 5.0
        cfg.accesslog = None
        cfg.errorlog = logging.getLogger("hypercorn.error")
        async with trio.open_nursery() as nursery:
            if handle_signals:
                nursery.start_soon(_watch_signals, shutdown)
            binds = await nursery.start(
                lambda task_status: serve(
                    app,  # type: ignore[arg-type]
                    cfg,
                    shutdown_trigger=shutdown.wait,
                    task_status=task_status,
                )
            )
            task_status.started({"peer_id": peer_id, "api": binds[0], "addrs": []})
            await shutdown.wait()
            nursery.cancel_scope.deadline = trio.current_time() + cfg.graceful_timeout + 1
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(repo.close)
