"""`shadowvault restore`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from node.ops import RestoreRequest

from ._common import (
    HomeOpt,
    JsonOpt,
    PasswordFileOpt,
    TerminalProgress,
    control,
    human_bytes,
    print_json,
)
from ._errors import EXIT_ERROR, CliError, user_errors, validation_message


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
        try:
            request = RestoreRequest(
                snapshot=snapshot,
                target=os.path.abspath(target),
                includes=include or [],
                excludes=exclude or [],
                overwrite=overwrite,
                verify=verify,
            )
        except ValidationError as exc:
            raise CliError(validation_message(exc), 2) from None
        with control(home, password_file) as ctl:
            progress = TerminalProgress("restore")
            if progress.enabled:
                progress.close()
                progress = TerminalProgress("restore", ctl.restore_size(snapshot) or None)
            try:
                summary = ctl.restore(request, progress if progress.enabled else None)
            finally:
                progress.close()
        if json_out:
            print_json({k: v for k, v in summary.items() if k not in ("short_id", "target")})
        else:
            for path in summary["skipped_existing"]:
                print(f"exists, not overwritten (use --overwrite): {path}", file=sys.stderr)
            for warning in summary["warnings"]:
                print(f"warning: {warning}", file=sys.stderr)
            for err in summary["errors"]:
                print(f"error: {err}", file=sys.stderr)
            print(
                f"restored {summary['files']} files, {summary['dirs']} dirs, "
                f"{summary['links']} hard links, {human_bytes(summary['bytes_written'])} "
                f"from snapshot {summary['short_id']} into {target}"
            )
            if verify:
                print(f"verified {summary['verified']} files")
        if not summary["ok"]:
            raise typer.Exit(EXIT_ERROR)
