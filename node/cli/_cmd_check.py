"""`shadowvault check` and `shadowvault stats`."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from node.ops import run_check, run_stats
from node.repo import Subset

from ._common import (
    HomeOpt,
    JsonOpt,
    PasswordFileOpt,
    TerminalProgress,
    human_bytes,
    opened,
    print_json,
)
from ._errors import EXIT_ERROR, CliError, user_errors


def check(
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Read, authenticate and decrypt every blob.")
    ] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option("--read-data-subset", help="Read only slice N of M (e.g. 2/7), by blob id."),
    ] = None,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check that the index and the packs agree and every referenced blob exists.

    Exit codes: 0 no problems; 1 problems found (each listed with blob, pack and cause).
    """
    with user_errors():
        subset = None
        if read_data_subset is not None:
            try:
                subset = Subset.parse(read_data_subset)
            except ValueError as exc:
                raise CliError(str(exc), 2) from exc
        with opened(home, password_file) as repo:
            recovery = repo.store.recovery
            total = sum(repo.store.committed_packs().values()) if read_data or subset else None
            progress = TerminalProgress("check", total)
            try:
                report = run_check(
                    repo,
                    read_data=read_data,
                    subset=subset,
                    progress=progress.bytes_done if progress.enabled else None,
                )
            finally:
                progress.close()
        if json_out:
            print_json(
                {
                    "ok": report.ok,
                    "packs": report.packs,
                    "blobs": report.blobs,
                    "blobs_read": report.blobs_read,
                    "bytes_read": report.bytes_read,
                    "problems": [dataclasses.asdict(p) for p in report.problems],
                    "warnings": [dataclasses.asdict(p) for p in report.warnings],
                    "recovered": {"reindexed": recovery.reindexed, "truncated": recovery.truncated},
                }
            )
        else:
            if recovery.reindexed or recovery.truncated:
                print(
                    f"recovered after an interrupted write: {recovery.reindexed} blobs re-indexed, "
                    f"{len(recovery.truncated)} torn pack tails cut"
                )
            for warning in report.warnings:
                print(f"warning: {warning}")
            for problem in report.problems:
                print(f"problem: {problem}")
            read = (
                f", read {report.blobs_read} blobs ({human_bytes(report.bytes_read)})"
                if report.blobs_read
                else ""
            )
            count = len(report.problems)
            verdict = (
                "no problems found"
                if report.ok
                else f"{count} problem{'s' if count != 1 else ''} found"
            )
            print(f"checked {report.packs} packs, {report.blobs} blobs{read}: {verdict}")
        if not report.ok:
            raise typer.Exit(EXIT_ERROR)


def stats(
    home: HomeOpt = None, password_file: PasswordFileOpt = None, json_out: JsonOpt = False
) -> None:
    """Show how much is stored, dedup and compression ratios, and unreferenced space."""
    with user_errors():
        with opened(home, password_file) as repo:
            result = run_stats(repo)
        if json_out:
            print_json(result.as_dict())
            return
        print(f"snapshots:          {result.snapshots}")
        print(f"logical size:       {human_bytes(result.logical_bytes)}")
        print(f"stored size:        {human_bytes(result.stored_bytes)}")
        print(f"blobs / packs:      {result.blob_count} / {result.pack_count}")
        print(f"dedup ratio:        {result.dedup_ratio:.2f}x")
        print(f"compression ratio:  {result.compression_ratio:.2f}x")
        print(
            f"unreferenced:       {human_bytes(result.unreferenced_bytes)} in {result.unreferenced_blobs} blobs"
        )
