"""`shadowvault drill` and `shadowvault drill history`."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from node.config import Duration, load_config
from node.ops import FRAMEWORKS, DrillRequest, DrillResult
from node.repo import resolve_home

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, control, print_json
from ._errors import EXIT_ERROR, EXIT_USAGE, CliError, user_errors, validation_message

drill_app = typer.Typer(
    help="Prove the backups restore: disaster-recovery drills and their history.",
)


def _duration(text: str | None, flag: str, configured: Duration) -> float | None:
    """The flag's target in seconds, else the config's (``0s`` there means no target)."""
    if text is None:
        return configured.seconds or None
    try:
        return Duration.parse(text).seconds
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}", EXIT_USAGE) from exc


@drill_app.callback(invoke_without_command=True)
def drill(
    ctx: typer.Context,
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="Snapshot id, 8+ hex prefix, or 'latest'.")
    ] = "latest",
    from_peers: Annotated[
        bool,
        typer.Option(
            "--from-peers",
            help="Restore from the peers storing for this node only (needs `node run`).",
        ),
    ] = False,
    max_rto: Annotated[
        str | None, typer.Option("--max-rto", help="Recovery-time target, e.g. 15m.")
    ] = None,
    max_rpo: Annotated[
        str | None,
        typer.Option("--max-rpo", help="Recovery-point target (snapshot age), e.g. 24h."),
    ] = None,
    framework: Annotated[
        str | None,
        typer.Option("--framework", help=f"Add compliance evidence: {'|'.join(FRAMEWORKS)}."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the report to this file.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Report format: md or json.")] = "md",
    scratch: Annotated[
        Path | None,
        typer.Option("--scratch", help="Make the scratch directory here [default: temp dir]."),
    ] = None,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Restore a snapshot into a scratch directory, verify every file, time it, clean up.

    RTO = restore + verification time; RPO = age of the snapshot. With --from-peers (or
    drill.from_peers in the config) every blob comes from the peers storing for this node,
    not from its own store, which proves the offsite copies; RTO then includes fetching;
    it needs the running node's mesh. Targets and framework not given as flags come from
    the config's `drill` section. The drill is kept in the store (see `drill history`).
    The report goes to --report FILE, else to stdout.
    Exit codes: 0 every check passed; 1 a check failed (the report says what to do) or
    the drill could not run (also --from-peers without a running node); 2 wrong usage.
    """
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        paths = resolve_home(home)
        cfg = load_config(paths.config, env=os.environ).config.drill
        framework = framework or cfg.framework or None
        if fmt not in ("md", "json"):
            raise CliError(f"--format must be md or json, got {fmt!r}", EXIT_USAGE)
        if framework is not None and framework.upper() not in FRAMEWORKS:
            raise CliError(
                f"--framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}",
                EXIT_USAGE,
            )
        try:
            request = DrillRequest(
                snapshot=snapshot,
                max_rto=_duration(max_rto, "--max-rto", cfg.max_rto),
                max_rpo=_duration(max_rpo, "--max-rpo", cfg.max_rpo),
                framework=framework,
                format=fmt,  # type: ignore[arg-type]  # checked above
                scratch=os.path.abspath(scratch) if scratch else None,
                keep=cfg.keep_reports,
                from_peers=from_peers or cfg.from_peers,
            )
        except ValidationError as exc:
            raise CliError(validation_message(exc), EXIT_USAGE) from None
        with control(home, password_file) as ctl:
            outcome = ctl.drill(request)
        drill_doc = outcome["drill"]
        if report is not None:
            report.write_text(outcome["report"], encoding="utf-8")
            verdict = "passed" if outcome["ok"] else "FAILED"
            print(
                f"drill {drill_doc['id']} {verdict}: RTO {drill_doc['rto_seconds']:.2f} s, "
                f"RPO {drill_doc['rpo_seconds']:.0f} s; report written to {report}"
            )
        else:
            sys.stdout.write(outcome["report"])
        if not outcome["ok"]:
            raise typer.Exit(EXIT_ERROR)


@drill_app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N drills.")] = 50,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List past drills, newest first. Exit codes: 0 listed; 1 cannot open the node."""
    with user_errors():
        with control(home, password_file) as ctl:
            docs = ctl.drills(limit)
        if json_out:
            print_json(docs)
            return
        drills = [DrillResult.from_dict(d) for d in docs]
        if not drills:
            print("no drills yet: run `shadowvault drill`")
            return
        for d in drills:
            when = datetime.fromtimestamp(d.started_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M")
            failed = ",".join(c.name for c in d.checks if not c.ok)
            print(
                f"{d.id}  {when}  {'pass' if d.ok else 'FAIL'}  snapshot {d.snapshot_id[:8]}  "
                f"RTO {d.rto_seconds:.2f} s  RPO {d.rpo_seconds:.0f} s  {d.files} files"
                + (f"  failed: {failed}" if failed else "")
            )
