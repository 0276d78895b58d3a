"""`shadowvault forget`, `gc`, `hold`, `holds` and `audit`: thin over ``node.ops``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from node.ops import (
    Duration,
    ForgetOptions,
    Policy,
    PolicyError,
    hold_snapshot,
    parse_group_by,
    parse_span,
    parse_tag_lists,
    parse_until,
    release_snapshot,
    run_forget,
    run_gc,
    snapshot_holds,
)
from node.repo import GcReport, list_audit, verify_audit

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, human_bytes, opened, print_json
from ._errors import EXIT_ERROR, EXIT_USAGE, CliError, user_errors


def _count(name: str, text: str | None) -> int:
    if text is None:
        return 0
    if text == "unlimited":
        return -1
    try:
        n = int(text)
    except ValueError:
        raise CliError(f"--keep-{name}: expected a count or 'unlimited', got {text!r}", 2) from None
    if n < 0:
        raise CliError(f"--keep-{name}: expected a count >= 0 or 'unlimited', got {n}", 2)
    return n


def _when(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _print_gc(report: GcReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    print(
        f"gc: {verb} {report.blobs_removed} of {report.blobs_total} blobs "
        f"({human_bytes(report.bytes_removed)}); packs deleted {report.packs_deleted} "
        f"(rewritten {report.packs_rewritten}), {human_bytes(report.bytes_freed)} freed, "
        f"{report.spared_pinned} spared for running operations, "
        f"{report.spared_grace} by the grace period; {report.duration_s:.2f}s"
    )


def forget(
    snapshots: Annotated[
        list[str] | None, typer.Argument(help="Snapshots to forget (instead of a policy).")
    ] = None,
    keep_last: Annotated[str | None, typer.Option("--keep-last", help="Keep the N newest.")] = None,
    keep_hourly: Annotated[
        str | None, typer.Option("--keep-hourly", help="Keep the newest of the last N hours.")
    ] = None,
    keep_daily: Annotated[
        str | None, typer.Option("--keep-daily", help="Keep the newest of the last N days.")
    ] = None,
    keep_weekly: Annotated[
        str | None, typer.Option("--keep-weekly", help="Keep the newest of the last N weeks.")
    ] = None,
    keep_monthly: Annotated[
        str | None, typer.Option("--keep-monthly", help="Keep the newest of the last N months.")
    ] = None,
    keep_yearly: Annotated[
        str | None, typer.Option("--keep-yearly", help="Keep the newest of the last N years.")
    ] = None,
    keep_within: Annotated[
        str | None,
        typer.Option("--keep-within", help="Keep all within this of the newest (e.g. 1y2m3d4h)."),
    ] = None,
    keep_tag: Annotated[
        list[str] | None,
        typer.Option("--keep-tag", help="Keep snapshots with these tags (a,b = both; repeatable)."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Only consider snapshots with these tags (repeatable)."),
    ] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="Group by host, paths, tags ('' = one group).")
    ] = "host,paths",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, change nothing.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Run gc afterwards.")] = False,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Forget snapshots by policy (restic's rules) or by id. Held snapshots stay.

    Exit codes: 0 done; 1 error (nothing removed); 2 bad or empty policy.
    """
    with user_errors():
        policy = None
        options = (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
        if any(o is not None for o in options) or keep_within or keep_tag:
            try:
                policy = Policy(
                    last=_count("last", keep_last),
                    hourly=_count("hourly", keep_hourly),
                    daily=_count("daily", keep_daily),
                    weekly=_count("weekly", keep_weekly),
                    monthly=_count("monthly", keep_monthly),
                    yearly=_count("yearly", keep_yearly),
                    within=Duration.parse(keep_within) if keep_within else Duration(),
                    keep_tags=tuple(parse_tag_lists(keep_tag or [])),
                )
                policy.validate()
                groups = parse_group_by(group_by)
            except PolicyError as exc:
                raise CliError(str(exc), EXIT_USAGE) from exc
        elif not snapshots:
            raise CliError(
                "no policy given: refusing to forget every snapshot; give snapshot ids or at "
                "least one --keep-* option",
                EXIT_USAGE,
            )
        else:
            groups = ()
        if policy is not None and snapshots:
            raise CliError("give snapshot ids or a policy, not both", EXIT_USAGE)
        opts = ForgetOptions(
            policy=policy,
            snapshots=snapshots or (),
            group_by=groups,
            only_tags=parse_tag_lists(tag or []),
            dry_run=dry_run,
            prune=prune and not dry_run,
        )
        with opened(home, password_file) as repo:
            result = run_forget(repo, opts)
        if json_out:
            print_json(result.as_dict())
            return
        for group in result.groups:
            key = ", ".join(f"{k} {v}" for k, v in group.key.items() if v is not None)
            print(f"group: {key or 'all snapshots'}")
            for d in group.decisions:
                verdict = "keep  " if d.keep else "remove"
                why = ", ".join(d.reasons)
                print(f"  {verdict} {d.snapshot.id[:12]}  {_when(d.snapshot.time_ns)}  {why}")
        verb = "would remove" if result.dry_run else "removed"
        n = len(result.removed)
        print(f"{verb} {n} snapshot{'s' if n != 1 else ''}", end="")
        print(f"; {len(result.held)} kept by holds" if result.held else "")
        if result.gc is not None:
            _print_gc(result.gc)


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, change nothing.")] = False,
    grace: Annotated[
        str,
        typer.Option("--grace", help="Also spare blobs written within this (e.g. 2h, 1d)."),
    ] = "0s",
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove the data no kept snapshot needs; rewrite packs that are mostly garbage.

    Safe beside running backups (their blobs are pinned). Exit codes: 0 done; 1 error
    (a kept snapshot cannot be read: nothing was deleted); 2 bad --grace.
    """
    with user_errors():
        try:
            grace_s = parse_span(grace)
        except ValueError as exc:
            raise CliError(f"--grace: {exc}", EXIT_USAGE) from exc
        with opened(home, password_file) as repo:
            report = run_gc(repo, dry_run=dry_run, grace_s=grace_s)
        if json_out:
            print_json(report.as_dict())
            return
        _print_gc(report)


def hold(
    snapshot: Annotated[str, typer.Argument(help="The snapshot (id prefix or `latest`).")],
    until: Annotated[
        str | None,
        typer.Option("--until", help="2027-01-31, 2027-01-31T12:00:00Z, or a span like 90d."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the log).")] = "",
    release: Annotated[bool, typer.Option("--release", help="Remove the hold.")] = False,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Hold a snapshot: no command can forget it (or collect its data) until the date.

    Exit codes: 0 done; 1 unknown snapshot or a shorter hold; 2 bad usage.
    """
    with user_errors():
        if release == (until is not None):
            raise CliError("give either --until DATE or --release", EXIT_USAGE)
        until_ns = None
        if until is not None:
            try:
                until_ns = parse_until(until)
            except ValueError as exc:
                raise CliError(f"--until: {exc}", EXIT_USAGE) from exc
        with opened(home, password_file) as repo:
            if until_ns is not None:
                result = hold_snapshot(repo, snapshot, until_ns, reason)
            else:
                result = release_snapshot(repo, snapshot)
        if json_out:
            print_json(result.as_dict())
        elif result.action == "hold" and result.hold is not None:
            print(f"snapshot {result.snapshot[:12]} held until {result.hold.until_iso}")
        elif result.hold is not None:
            print(f"released the hold on snapshot {result.snapshot[:12]}")
        else:
            print(f"snapshot {result.snapshot[:12]} had no hold")


def holds(
    home: HomeOpt = None, password_file: PasswordFileOpt = None, json_out: JsonOpt = False
) -> None:
    """List holds (active and expired)."""
    with user_errors():
        with opened(home, password_file) as repo:
            found = snapshot_holds(repo)
        if json_out:
            print_json([h.as_dict() for h in found])
            return
        for h in found:
            state = "active " if h.active() else "expired"
            print(f"{state} {h.snapshot_id.hex()[:12]} until {h.until_iso}  {h.reason}")
        if not found:
            print("no holds")


audit_app = typer.Typer(
    help="The signed, hash-chained log of destructive and security-relevant actions."
)


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries from this date (2026-11-01) or span (7d) on."),
    ] = None,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print the audit log (`audit verify` checks it)."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        since_ns = None
        if since is not None:
            try:
                since_ns = _since(since)
            except ValueError as exc:
                raise CliError(f"--since: {exc}", EXIT_USAGE) from exc
        with opened(home, password_file) as repo:
            entries = list_audit(repo, since_ns)
        if json_out:
            print_json([e.as_dict() for e in entries])
            return
        for e in entries:
            details = " ".join(f"{k}={v}" for k, v in e.details.items())
            print(f"{e.seq:6d}  {_when(e.time_ns)}  {e.action:<10} {details}")


def _since(text: str) -> int:
    """A date/date-time, or a span back from now (7d)."""
    try:
        return int((dt.datetime.now(dt.UTC).timestamp() - parse_span(text)) * 1e9)
    except ValueError:
        return parse_until(text)


@audit_app.command("verify")
def audit_verify(
    home: HomeOpt = None, password_file: PasswordFileOpt = None, json_out: JsonOpt = False
) -> None:
    """Check every entry's signature, the chain and the head.

    Exit codes: 0 the log is whole; 1 an entry was altered, removed or inserted.
    """
    with user_errors():
        with opened(home, password_file) as repo:
            report = verify_audit(repo)
        if json_out:
            print_json(report.as_dict())
        else:
            for problem in report.problems:
                print(f"problem: {problem}")
            verdict = "intact" if report.ok else f"{len(report.problems)} problems found"
            print(f"audit log: {report.entries} entries, {verdict}")
        if not report.ok:
            raise typer.Exit(EXIT_ERROR)
