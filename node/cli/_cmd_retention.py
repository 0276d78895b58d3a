"""`shadowvault forget`, `gc`, `hold`, `holds` and `audit`: thin over ``node.ops``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, control, human_bytes, print_json
from ._errors import EXIT_ERROR, EXIT_USAGE, CliError, user_errors, validation_message

# The requests (pydantic) and the retention operations are imported by the commands that
# use them: `holds` and `audit` start without building pydantic's model machinery.


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


def _when_iso(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _print_gc(report: dict[str, Any]) -> None:
    verb = "would remove" if report["dry_run"] else "removed"
    print(
        f"gc: {verb} {report['blobs_removed']} of {report['blobs_total']} blobs "
        f"({human_bytes(report['bytes_removed'])}); packs deleted {report['packs_deleted']} "
        f"(rewritten {report['packs_rewritten']}), {human_bytes(report['bytes_freed'])} freed, "
        f"{report['spared_pinned']} spared for running operations, "
        f"{report['spared_grace']} by the grace period; {report['duration_s']:.2f}s"
    )
    foreign = report.get("foreign") or {}
    if foreign.get("owners"):
        print(
            f"other owners: {foreign['owners']}; snapshots they forgot {foreign['forgotten']}, "
            f"they hold {foreign['held']}; their blobs that may go {foreign['collectable']}"
        )
    for owner in foreign.get("lapsed", []):
        print(f"owner lease lapsed (gc.owner_lease): {owner}'s unheld data may go")
    for problem in foreign.get("problems", []):
        print(f"warning: {problem}")


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
    from pydantic import ValidationError

    from node.ops import ForgetRequest

    with user_errors():
        try:
            request = ForgetRequest(
                snapshots=snapshots or [],
                keep_last=_count("last", keep_last),
                keep_hourly=_count("hourly", keep_hourly),
                keep_daily=_count("daily", keep_daily),
                keep_weekly=_count("weekly", keep_weekly),
                keep_monthly=_count("monthly", keep_monthly),
                keep_yearly=_count("yearly", keep_yearly),
                keep_within=keep_within,
                keep_tags=keep_tag or [],
                only_tags=tag or [],
                group_by=group_by,
                dry_run=dry_run,
                prune=prune,
            )
        except ValidationError as exc:
            raise CliError(validation_message(exc), EXIT_USAGE) from None
        with control(home, password_file) as ctl:
            result = ctl.forget(request)
        if json_out:
            print_json(result)
            return
        for group in result["groups"]:
            key = ", ".join(f"{k} {v}" for k, v in group["group"].items() if v is not None)
            print(f"group: {key or 'all snapshots'}")
            for d in group["snapshots"]:
                verdict = "keep  " if d["keep"] else "remove"
                why = ", ".join(d["reasons"])
                print(f"  {verdict} {d['id'][:12]}  {_when_iso(d['time'])}  {why}")
        verb = "would remove" if result["dry_run"] else "removed"
        n = len(result["removed"])
        print(f"{verb} {n} snapshot{'s' if n != 1 else ''}", end="")
        print(f"; {len(result['held'])} kept by holds" if result["held"] else "")
        if result["gc"] is not None:
            _print_gc(result["gc"])


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
    from pydantic import ValidationError

    from node.ops import GcRequest

    with user_errors():
        try:
            request = GcRequest(dry_run=dry_run, grace=grace)
        except ValidationError as exc:
            raise CliError(validation_message(exc), EXIT_USAGE) from None
        with control(home, password_file) as ctl:
            report = ctl.gc(request)
        if json_out:
            print_json(report)
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
    from node.ops import HoldRequest, parse_until

    with user_errors():
        if release == (until is not None):
            raise CliError("give either --until DATE or --release", EXIT_USAGE)
        if until is not None:
            try:
                parse_until(until)
            except ValueError as exc:
                raise CliError(f"--until: {exc}", EXIT_USAGE) from exc
        request = HoldRequest(snapshot=snapshot, until=until, reason=reason, release=release)
        with control(home, password_file) as ctl:
            result = ctl.hold(request)
        if json_out:
            print_json(result)
        elif result["action"] == "hold" and result["hold"] is not None:
            print(f"snapshot {result['snapshot'][:12]} held until {result['hold']['until']}")
        elif result["hold"] is not None:
            print(f"released the hold on snapshot {result['snapshot'][:12]}")
        else:
            print(f"snapshot {result['snapshot'][:12]} had no hold")


def holds(
    home: HomeOpt = None, password_file: PasswordFileOpt = None, json_out: JsonOpt = False
) -> None:
    """List holds (active and expired)."""
    with user_errors():
        with control(home, password_file) as ctl:
            found = ctl.holds()
        if json_out:
            print_json(found)
            return
        for h in found:
            state = "active " if h["active"] else "expired"
            print(f"{state} {h['snapshot'][:12]} until {h['until']}  {h['reason']}")
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
        with control(home, password_file) as ctl:
            entries = ctl.audit(since_ns)
        if json_out:
            print_json(entries)
            return
        for e in entries:
            details = " ".join(f"{k}={v}" for k, v in e["details"].items())
            print(f"{e['seq']:6d}  {_when_iso(e['time'])}  {e['action']:<10} {details}")


def _since(text: str) -> int:
    """A date/date-time, or a span back from now (7d)."""
    from node.ops import parse_span, parse_until

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
        with control(home, password_file) as ctl:
            report = ctl.audit_verify()
        if json_out:
            print_json(report)
        else:
            for problem in report["problems"]:
                print(f"problem: {problem}")
            verdict = "intact" if report["ok"] else f"{len(report['problems'])} problems found"
            print(f"audit log: {report['entries']} entries, {verdict}")
        if not report["ok"]:
            raise typer.Exit(EXIT_ERROR)
