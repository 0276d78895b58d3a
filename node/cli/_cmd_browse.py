"""`shadowvault snapshots`, `ls`, `find`, `dump` and `diff`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, control, human_bytes, print_json
from ._errors import user_errors

_KIND = {"dir": "d", "symlink": "l", "file": "-", "chardev": "c", "blockdev": "b", "fifo": "p"}


def _when(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _when_iso(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def snapshots(
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only snapshots with this tag.")
    ] = None,
    path: Annotated[
        list[str] | None, typer.Option("--path", help="Only snapshots of this path.")
    ] = None,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List snapshots, oldest first."""
    with user_errors():
        with control(home, password_file) as ctl:
            snaps = ctl.snapshots(tag, path)
        if json_out:
            print_json(snaps)
            return
        print(f"{'ID':<10} {'Time':<20} {'Host':<16} {'Tags':<16} {'Size':>10}  Paths")
        for s in snaps:
            size = human_bytes(int(s["summary"].get("bytes_processed", 0)))
            print(
                f"{s['short_id']:<10} {_when_iso(s['time']):<20} {s['host'][:16]:<16} "
                f"{','.join(s['tags'])[:16]:<16} {size:>10}  {', '.join(s['paths'])}"
            )
        print(f"{len(snaps)} snapshots")


def _line(entry: dict[str, Any]) -> str:
    kind = _KIND.get(entry["type"], "?")
    text = (
        f"{kind}{entry['mode']} {entry['uid']:>5} {entry['gid']:>5} {entry['size']:>12} "
        f"{_when(entry['mtime_ns'])} {entry['path']}"
    )
    if entry["type"] == "symlink":
        text += f" -> {entry['target']}"
    return text


def ls(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, prefix, or 'latest'.")],
    path: Annotated[str, typer.Argument(help="Absolute path inside the snapshot.")] = "/",
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="List everything below.")
    ] = False,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the entries of a directory in a snapshot."""
    with user_errors():
        with control(home, password_file) as ctl:
            entries = ctl.ls(snapshot, path, recursive)
        if json_out:
            print_json(entries)
        else:
            for entry in entries:
                print(_line(entry))


def find(
    pattern: Annotated[str, typer.Argument(help="Glob on names (or on paths if it has a '/').")],
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Search only this snapshot.")
    ] = None,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find files by name across snapshots."""
    with user_errors():
        with control(home, password_file) as ctl:
            hits = ctl.find(pattern, snapshot)
        if json_out:
            print_json([{k: v for k, v in hit.items() if k != "short_id"} for hit in hits])
        else:
            for hit in hits:
                print(f"{hit['short_id']}  {_line(hit)}")
            print(f"{len(hits)} matches")


def dump(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, prefix, or 'latest'.")],
    path: Annotated[str, typer.Argument(help="Absolute path of a file inside the snapshot.")],
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Write one file's bytes from a snapshot to standard output."""
    with user_errors(), control(home, password_file) as ctl:
        ctl.dump(snapshot, path, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def diff(
    first: Annotated[str, typer.Argument(help="Older snapshot.")],
    second: Annotated[str, typer.Argument(help="Newer snapshot.")],
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show what was added, removed, modified, or changed only in metadata."""
    with user_errors():
        with control(home, password_file) as ctl:
            changes = ctl.diff(first, second)
        if json_out:
            print_json(changes)
            return
        marks = {"added": "+", "removed": "-", "modified": "M", "metadata": "U"}
        for c in changes:
            print(f"{marks[c['kind']]}  {c['path']}{'/' if c['type'] == 'dir' else ''}")
        counts = {k: sum(1 for c in changes if c["kind"] == k) for k in marks}
        print(", ".join(f"{v} {k}" for k, v in counts.items()))
