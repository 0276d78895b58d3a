"""`shadowvault restore`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from node.ops import RestoreOptions, run_restore
from node.repo import resolve_snapshot

from ._common import (
    HomeOpt,
    JsonOpt,
    PasswordFileOpt,
    TerminalProgress,
    human_bytes,
    opened,
    print_json,
)
from ._errors import EXIT_ERROR, user_errors


def restore(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, 8+ hex digit prefix, or 'latest'.")],
    target: Annotated[Path, typer.Option("--target", help="Directory to restore into.")],
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include", help="Restore only paths matching (gitignore-style; repeatable)."
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Skip paths matching (repeatable).")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-read and compare what was written.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing files (never done without it).")
    ] = False,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Restore a snapshot, or part of it, into a directory.

    Paths are restored under the target as they were backed up (absolute paths become
    relative to it). Exit codes: 0 done; 1 some files failed or existed (each named).
    """
    with user_errors():
        with opened(home, password_file) as repo:
            snap = resolve_snapshot(repo, snapshot)
            opts = RestoreOptions(
                target=target,
                includes=include or [],
                excludes=exclude or [],
                overwrite=overwrite,
                verify=verify,
            )
            progress = TerminalProgress(
                "restore", int(snap.summary.get("bytes_processed", 0)) or None
            )
            try:
                summary = run_restore(repo, snap, opts, progress if progress.enabled else None)
            finally:
                progress.close()
        if json_out:
            print_json({"snapshot_id": str(snap.id), **dataclasses.asdict(summary)})
        else:
            for path in summary.skipped_existing:
                print(f"exists, not overwritten (use --overwrite): {path}", file=sys.stderr)
            for warning in summary.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            for err in summary.errors:
                print(f"error: {err}", file=sys.stderr)
            print(
                f"restored {summary.files} files, {summary.dirs} dirs, {summary.links} hard links, "
                f"{human_bytes(summary.bytes_written)} from snapshot {snap.short_id} into {target}"
            )
            if verify:
                print(f"verified {summary.verified} files")
        if not summary.ok:
            raise typer.Exit(EXIT_ERROR)
