"""Options and helpers shared by the commands: home, passphrase, JSON output, progress."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from node.ops import LocalControl
from node.repo import HomePaths, Repository, open_repository, resolve_home

from ._passphrase import get_passphrase
from ._remote import RemoteControl, find_daemon

Control = LocalControl | RemoteControl

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Node home (default: $SHADOWVAULT_HOME or ~/.shadowvault).",
        show_default=False,
    ),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Read the passphrase from this file (else $SHADOWVAULT_PASSWORD[_FILE] or a prompt).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@contextmanager
def opened(home: Path | None, password_file: Path | None) -> Iterator[Repository]:
    """Unlock and open the node's repository for the duration of a command."""
    paths = resolve_home(home)
    paths.require_node()  # "no node here" before asking for a passphrase it cannot use
    repo = open_repository(paths, get_passphrase(password_file, paths))
    try:
        yield repo
    finally:
        repo.close()


@contextmanager
def control(home: Path | None, password_file: Path | None) -> Iterator[Control]:
    """The node's operations: through its daemon if one runs, else on the store directly.

    Through the daemon no passphrase is needed: the daemon holds the unlocked store and
    the owner token in the home authorises the call.
    """
    paths = resolve_home(home)
    daemon = find_daemon(paths)
    if daemon is not None:
        remote = RemoteControl(daemon, paths)
        try:
            yield remote
        finally:
            remote.close()
        return
    with opened(home, password_file) as repo:
        yield LocalControl(repo, owner_lease=partial(_owner_lease, paths, repo))


def _owner_lease(paths: HomePaths, repo: Repository) -> float | None:
    """The config's ``gc.owner_lease`` (seconds); an invalid config is an error, never
    a silent default: the lease decides when other owners' data may be deleted.

    None (the default, unused) when no other owner's data is here: then the lease
    decides nothing, and reading the config (pydantic models, PyYAML) was a tenth of
    `forget --prune`. No owner can appear meanwhile: this process holds the store (with
    a daemon running, the command goes through it and the daemon's config is used).
    """
    from node.p2p import other_owners

    if not other_owners(repo):
        return None
    from node.config import load_config  # the model and YAML: only here

    return float(load_config(paths.config, env=os.environ).config.gc.owner_lease.seconds)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class TerminalProgress:
    """A rich progress line on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, label: str, total_bytes: int | None = None) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._progress: Any = None
        if self.enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[files]} files"),
                transient=True,
            )
            self._task = self._progress.add_task(label, total=total_bytes, files=0)
            self._progress.start()

    def __call__(self, files: int, bytes_done: int) -> None:
        """The ``Progress`` protocol of ``node.ops``."""
        self.file_done(files, bytes_done, "")

    def file_done(self, files: int, bytes_done: int, path: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        self._progress.update(self._task, completed=bytes_done, files=files)

    def bytes_done(self, bytes_done: int, blobs: int) -> None:
        self.file_done(blobs, bytes_done, "")

    def close(self) -> None:
        if self.enabled:
            self._progress.stop()


def scan_size(paths: list[Path]) -> int:
    """Total bytes under ``paths`` (for a progress bar's ETA)."""
    import os

    total = 0
    for root in paths:
        if root.is_file():
            total += root.stat().st_size
            continue
        for dirpath, _, files in os.walk(root):
            for name in files:
                with suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
