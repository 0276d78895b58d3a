"""`shadowvault backup`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from node.ops import BackupRequest

from ._common import (
    HomeOpt,
    JsonOpt,
    PasswordFileOpt,
    TerminalProgress,
    control,
    human_bytes,
    print_json,
    scan_size,
)
from ._errors import EXIT_WARNINGS, CliError, user_errors, validation_message


def backup(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories to back up.")],
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Tag the snapshot (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="gitignore-style pattern (repeatable).")
    ] = None,
    exclude_file: Annotated[
        list[Path] | None, typer.Option("--exclude-file", help="File of exclude patterns.")
    ] = None,
    one_file_system: Annotated[
        bool, typer.Option("--one-file-system", help="Do not cross into other filesystems.")
    ] = False,
    compression: Annotated[
        str | None, typer.Option(help="zstd level 1-19 or 'off' (default: the store's).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Host name to record.")] = None,
    parent: Annotated[
        str | None, typer.Option(help="Snapshot to compare with (default: latest, same paths).")
    ] = None,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Back up files into a new snapshot; unchanged files are not read again.

    Exit codes: 0 done; 1 nothing backed up (missing path, store error);
    3 snapshot made, but some files could not be read (listed).
    """
    with user_errors():
        try:
            request = BackupRequest(
                # Absolute here: a daemon doing the work does not share our cwd.
                paths=[os.path.abspath(p) for p in paths],
                tags=tag or [],
                excludes=exclude or [],
                exclude_files=[os.path.abspath(p) for p in exclude_file or []],
                one_file_system=one_file_system,
                compression=compression,
                host=host,
                parent=parent,
            )
        except ValidationError as exc:
            raise CliError(validation_message(exc), 2) from None
        with control(home, password_file) as ctl:
            progress = TerminalProgress("backup")
            if progress.enabled and not json_out:
                progress.close()
                progress = TerminalProgress("backup", scan_size(paths))
            try:
                summary = ctl.backup(request, progress if progress.enabled else None)
            finally:
                progress.close()
        if json_out:
            print_json(summary)
        else:
            for warning in summary["warnings"]:
                print(f"warning: {warning}")
            files = summary["files_new"] + summary["files_changed"] + summary["files_unmodified"]
            print(
                f"files: {summary['files_new']} new, {summary['files_changed']} changed, "
                f"{summary['files_unmodified']} unmodified ({files} in all)"
            )
            print(
                f"dirs:  {summary['dirs_new']} new, {summary['dirs_changed']} changed, "
                f"{summary['dirs_unmodified']} unmodified"
            )
            print(
                f"added {human_bytes(summary['bytes_added'])} "
                f"(stored {human_bytes(summary['bytes_stored'])}) of "
                f"{human_bytes(summary['bytes_processed'])} in {summary['duration_s']:.1f}s"
            )
            print(f"snapshot {summary['snapshot_id'][:8]} saved")
        if summary["warnings"]:
            raise typer.Exit(EXIT_WARNINGS)
