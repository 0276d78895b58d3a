"""`shadowvault snapshots`, `ls`, `find`, `dump` and `diff`."""

from __future__ import annotations

import dataclasses
import os
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from node.ops import diff as diff_snapshots
from node.ops import dump as dump_file
from node.ops import filter_snapshots, list_dir, node_json, snapshot_json
from node.ops import find as find_entries
from node.repo import DIR, SYMLINK, list_snapshots, resolve_snapshot

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, human_bytes, opened, print_json
from ._errors import user_errors


def _when(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


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
        with opened(home, password_file) as repo:
            snaps = filter_snapshots(list_snapshots(repo), tag, path)
        if json_out:
            print_json([snapshot_json(s) for s in snaps])
            return
        print(f"{'ID':<10} {'Time':<20} {'Host':<16} {'Tags':<16} {'Size':>10}  Paths")
        for s in snaps:
            size = human_bytes(int(s.summary.get("bytes_processed", 0)))
            print(
                f"{s.short_id:<10} {_when(s.time_ns):<20} {s.host[:16]:<16} "
                f"{','.join(s.tags)[:16]:<16} {size:>10}  {', '.join(s.paths)}"
            )
        print(f"{len(snaps)} snapshots")


def _line(path: str, node: object) -> str:
    from node.repo import Node

    assert isinstance(node, Node)
    kind = {DIR: "d", SYMLINK: "l"}.get(node.type, "-" if node.type == "f" else node.type)
    text = f"{kind}{node.mode:04o} {node.uid:>5} {node.gid:>5} {node.size:>12} {_when(node.mtime_ns)} {path}"
    if node.type == SYMLINK:
        text += f" -> {os.fsdecode(node.target)}"
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
        with opened(home, password_file) as repo:
            snap = resolve_snapshot(repo, snapshot)
            entries = list(list_dir(repo, snap, path, recursive))
        if json_out:
            print_json([node_json(p, n) for p, n in entries])
        else:
            for p, n in entries:
                print(_line(p, n))


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
        with opened(home, password_file) as repo:
            snaps = [resolve_snapshot(repo, snapshot)] if snapshot else list_snapshots(repo)
            hits = list(find_entries(repo, snaps, pattern))
        if json_out:
            print_json([{"snapshot": str(s.id), **node_json(p, n)} for s, p, n in hits])
        else:
            for s, p, n in hits:
                print(f"{s.short_id}  {_line(p, n)}")
            print(f"{len(hits)} matches")


def dump(
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, prefix, or 'latest'.")],
    path: Annotated[str, typer.Argument(help="Absolute path of a file inside the snapshot.")],
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Write one file's bytes from a snapshot to standard output."""
    with user_errors(), opened(home, password_file) as repo:
        snap = resolve_snapshot(repo, snapshot)
        dump_file(repo, snap, path, sys.stdout.buffer)
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
        with opened(home, password_file) as repo:
            snaps = list_snapshots(repo)
            a, b = resolve_snapshot(repo, first, snaps), resolve_snapshot(repo, second, snaps)
            changes = list(diff_snapshots(repo, a, b))
        if json_out:
            print_json([dataclasses.asdict(c) for c in changes])
            return
        marks = {"added": "+", "removed": "-", "modified": "M", "metadata": "U"}
        for c in changes:
            print(f"{marks[c.kind]}  {c.path}{'/' if c.type == 'dir' else ''}")
        counts = {k: sum(1 for c in changes if c.kind == k) for k in marks}
        print(", ".join(f"{v} {k}" for k, v in counts.items()))
