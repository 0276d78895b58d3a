"""`shadowvault check` and `shadowvault stats`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated, Any

import typer

from node.ops import LocalControl

from ._common import (
    HomeOpt,
    JsonOpt,
    PasswordFileOpt,
    TerminalProgress,
    control,
    human_bytes,
    print_json,
)
from ._errors import EXIT_ERROR, EXIT_USAGE, CliError, user_errors, validation_message


def check(
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Read, authenticate and decrypt every blob.")
    ] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option("--read-data-subset", help="Read only slice N of M (e.g. 2/7), by blob id."),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Fetch corrupt or missing blobs from peers, then check again."
        ),
    ] = False,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check that the index and the packs agree and every referenced blob exists.

    Exit codes: 0 no problems; 1 problems found (each listed with blob, pack and cause).
    """
    from pydantic import ValidationError  # here, not above: `stats` sends no request

    from node.ops import CheckRequest

    with user_errors():
        try:
            request = CheckRequest(
                read_data=read_data, read_data_subset=read_data_subset, repair=repair
            )
        except ValidationError as exc:
            raise CliError(validation_message(exc), 2) from None
        with control(home, password_file) as ctl:
            if repair and isinstance(ctl, LocalControl):
                raise CliError(
                    "--repair fetches blobs from peers: run it while the node runs "
                    "(`shadowvault node run`)",
                    EXIT_USAGE,
                )
            progress = TerminalProgress("check", ctl.check_size(request))
            try:
                report = ctl.check(request, progress if progress.enabled else None)
            finally:
                progress.close()
        if json_out:
            print_json(
                {
                    **report,
                    "problems": [_plain(p) for p in report["problems"]],
                    "warnings": [_plain(p) for p in report["warnings"]],
                }
            )
        else:
            recovered = report["recovered"]
            if recovered["reindexed"] or recovered["truncated"]:
                print(
                    f"recovered after an interrupted write: {recovered['reindexed']} blobs "
                    f"re-indexed, {len(recovered['truncated'])} torn pack tails cut"
                )
            for warning in report["warnings"]:
                print(f"warning: {warning['message']}")
            for problem in report["problems"]:
                print(f"problem: {problem['message']}")
            read = (
                f", read {report['blobs_read']} blobs ({human_bytes(report['bytes_read'])})"
                if report["blobs_read"]
                else ""
            )
            count = len(report["problems"])
            verdict = (
                "no problems found"
                if report["ok"]
                else f"{count} problem{'s' if count != 1 else ''} found"
            )
            print(f"checked {report['packs']} packs, {report['blobs']} blobs{read}: {verdict}")
            if "repair" in report:
                fixed = report["repair"]
                print(
                    f"repair: {fixed.get('healed', 0)} blobs fetched from peers and replaced"
                    + (
                        f", {len(fixed['unavailable'])} unavailable"
                        if fixed.get("unavailable")
                        else ""
                    )
                )
        if not report["ok"]:
            raise typer.Exit(EXIT_ERROR)


def _plain(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k != "message"}


def stats(
    home: HomeOpt = None, password_file: PasswordFileOpt = None, json_out: JsonOpt = False
) -> None:
    """Show how much is stored, dedup and compression ratios, and unreferenced space."""
    with user_errors():
        with control(home, password_file) as ctl:
            result = SimpleNamespace(**ctl.stats())
        if json_out:
            print_json(vars(result))
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
