"""`snapshots`, snapshot references, `ls`, `find`, `dump` and `diff` (read-only)."""

from __future__ import annotations

import os
import re
from datetime import datetime

import pytest

SNAPSHOT_KEYS = {"id", "time", "host", "paths", "tags", "parent", "summary"}
NODE_KEYS = {"path", "name", "type", "mode", "uid", "gid", "size", "mtime_ns"}


# -- snapshots -------------------------------------------------------------------------------


def test_snapshots_json_oldest_first(populated):
    p = populated
    snaps = p.node.snapshots()
    assert isinstance(snaps, list)
    assert [s["id"] for s in snaps] == [p.s1, p.s2, p.s3]
    for s in snaps:
        assert set(s) >= SNAPSHOT_KEYS
        assert re.fullmatch(r"[0-9a-f]{64}", s["id"])
        assert isinstance(s["host"], str) and s["host"]
        assert isinstance(s["summary"], dict)
    times = [datetime.fromisoformat(s["time"]) for s in snaps]
    assert times == sorted(times)
    assert [s["paths"] for s in snaps] == [[str(p.src)], [str(p.src)], [str(p.src2)]]
    assert [s["parent"] for s in snaps] == [None, p.s1, None]
    assert snaps[0]["summary"]["files_new"] == p.backups[0]["files_new"]
    assert snaps[1]["summary"]["bytes_processed"] == p.backups[1]["bytes_processed"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tag", "daily"], ["s1", "s2"]),
        (["--tag", "daily", "--tag", "manual"], ["s2"]),
        (["--path", "SRC2"], ["s3"]),
    ],
    ids=["tag", "two-tags", "path"],
)
def test_snapshots_filters(populated, args, expected):
    p = populated
    args = [{"SRC": str(p.src), "SRC2": str(p.src2)}.get(a, a) for a in args]
    ids = {"s1": p.s1, "s2": p.s2, "s3": p.s3}
    got = p.node.json("snapshots", *args)
    assert [s["id"] for s in got] == [ids[e] for e in expected]


def test_snapshots_text(populated):
    out = populated.node.run("snapshots").stdout
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ID", "Time"]
    assert [line.split()[0] for line in lines[1:4]] == [
        populated.s1[:8],
        populated.s2[:8],
        populated.s3[:8],
    ]
    assert lines[-1] == "3 snapshots"


# -- snapshot references ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "which"),
    [
        (lambda p: p.s1, "s1"),
        (lambda p: p.s1[:8], "s1"),
        (lambda p: "latest", "s3"),
    ],
    ids=["full-id", "8-digit-prefix", "latest"],
)
def test_find_snapshot_refs(populated, ref, which):
    p = populated
    expected = {"s1": p.s1, "s2": p.s2, "s3": p.s3}[which]
    hits = p.node.json("find", "*.txt", "--snapshot", ref(p))
    assert hits, "every snapshot has .txt files"
    assert {h["snapshot"] for h in hits} == {expected}


@pytest.mark.parametrize(
    ("command", "ref", "message"),
    [
        ("ls", "deadbeefdeadbeef", "no snapshot matches 'deadbeefdeadbeef'"),
        ("ls", "abc", "use `latest`, or 8 or more hex digits"),
        ("restore", "0000000000", "no snapshot matches"),
    ],
    ids=["unknown-prefix", "too-short", "restore-unknown"],
)
def test_command_bad_snapshot_ref_fails(populated, tmp_path, command, ref, message):
    target = tmp_path / "target"
    args = {
        "ls": ["ls", ref],
        "restore": ["restore", ref, "--target", str(target)],
    }[command]
    result = populated.node.run(*args, expect=1)
    assert message in result.stderr
    assert result.stdout == ""
    assert not target.exists()


# -- ls --------------------------------------------------------------------------------------


def test_ls_one_level_json(populated, fs):
    p = populated
    entries = p.node.json("ls", p.s2, p.src)
    names = [os.fsencode(e["name"]) for e in entries]
    assert names == sorted(os.listdir(os.fsencode(p.src)))
    by_name = {e["name"]: e for e in entries}
    for e in entries:
        assert set(e) >= NODE_KEYS
        assert e["path"] == f"{p.src}/{e['name']}"
    assert by_name["link"]["type"] == "symlink"
    assert by_name["link"]["target"] == "notes.txt"
    assert by_name["dangling"]["target"] == "does/not/exist"
    assert by_name["sub"]["type"] == "dir"
    assert by_name["fifo"]["type"] == "fifo"
    assert by_name["exec.sh"]["mode"] == "0755"
    assert by_name["perm.txt"]["mode"] == "0600"
    assert by_name["perm.txt"]["mtime_ns"] == fs.fixed_mtime_ns
    assert by_name["big.bin"]["size"] == len(p.big)
    assert by_name[os.fsdecode(fs.non_utf8_name)]["type"] == "file"


def test_ls_recursive_json(populated):
    p = populated
    entries = p.node.json("ls", p.s2, p.src, "--recursive")
    got = {os.fsencode(e["path"]) for e in entries}
    want = set()
    base = os.fsencode(p.src)
    for dirpath, dirs, files in os.walk(base):
        want.update(os.path.join(dirpath, n) for n in dirs + files)
    assert got == want


def test_ls_snapshot_root_shows_first_component(populated):
    entries = populated.node.json("ls", "latest")
    first = str(populated.src2).split("/")[1]
    assert [e["path"] for e in entries] == [f"/{first}"]


def test_ls_text(populated):
    p = populated
    out = p.node.run("ls", p.s1, p.src).stdout
    lines = {line.split(" /", 1)[1].rsplit(" -> ", 1)[0]: line for line in out.splitlines()}
    assert lines[f"{p.src.relative_to('/')}/link"].endswith("/link -> notes.txt")
    assert lines[f"{p.src.relative_to('/')}/link"].startswith("l")
    assert lines[f"{p.src.relative_to('/')}/sub"].startswith("d0755")
    assert lines[f"{p.src.relative_to('/')}/exec.sh"].startswith("-0755")
    assert f"{p.src.relative_to('/')}/gone.txt" in lines  # s1 still has it
    assert f"{p.src.relative_to('/')}/new.txt" not in lines


def test_ls_single_file(populated):
    p = populated
    (entry,) = p.node.json("ls", p.s2, f"{p.src}/notes.txt")
    assert entry["path"] == f"{p.src}/notes.txt"
    assert entry["type"] == "file"
    assert entry["size"] == len(p.notes_v2)


def test_ls_missing_path_fails(populated):
    p = populated
    result = p.node.run("ls", p.s2, f"{p.src}/gone.txt", expect=1)
    assert f"no {p.src}/gone.txt in snapshot {p.s2[:8]}" in result.stderr


# -- find ------------------------------------------------------------------------------------


def test_find_across_snapshots(populated):
    p = populated
    hits = p.node.json("find", "*.log")
    got = {(h["snapshot"], h["path"]) for h in hits}
    logs = [f"{p.src}/sub/data.log", f"{p.src}/sub/deep/keep.log"]
    assert got == {(s, path) for s in (p.s1, p.s2) for path in logs}
    assert all(h["type"] == "file" for h in hits)


def test_find_path_pattern_in_one_snapshot(populated):
    p = populated
    out = p.node.run("find", f"{p.src}/*.txt", "--snapshot", p.s1).stdout
    lines = out.splitlines()
    assert lines[-1] == f"{len(lines) - 1} matches"
    found = {line.rsplit(" ", 1)[1] for line in lines[:-1]}
    assert all(line.startswith(p.s1[:8]) for line in lines[:-1])
    # A glob's * crosses '/', so deeper .txt files match too; s1 has gone.txt, not new.txt.
    assert f"{p.src}/gone.txt" in found
    assert f"{p.src}/sub/deep/file.txt" in found
    assert f"{p.src}/new.txt" not in found


def test_find_no_match(populated):
    out = populated.node.run("find", "no-such-name-*").stdout
    assert out.strip() == "0 matches"


# -- dump ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "name"),
    [("s2", "big.bin"), ("s1", "notes.txt")],
    ids=["binary-8MiB", "older-snapshot"],
)
def test_dump_exact_bytes(populated, which, name):
    p = populated
    snap = {"s1": p.s1, "s2": p.s2}[which]
    expected = {
        ("s2", "big.bin"): p.big,
        ("s1", "notes.txt"): p.notes_v1,
    }[(which, name)]
    result = p.node.run("dump", snap, f"{p.src}/{name}", binary=True)
    assert result.stdout == expected
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("name", "message"),
    [("sub", "is not a file"), ("gone.txt", "no ")],
    ids=["directory", "missing"],
)
def test_dump_not_a_file_fails(populated, name, message):
    p = populated
    result = p.node.run("dump", p.s2, f"{p.src}/{name}", expect=1, binary=True)
    assert result.stdout == b""
    assert message in result.stderr
    assert f"{p.src}/{name}" in result.stderr


# -- diff ------------------------------------------------------------------------------------


def test_diff_json_kinds(populated):
    p = populated
    changes = p.node.json("diff", p.s1, p.s2)
    for c in changes:
        assert set(c) == {"kind", "path", "type"}
    under_src = {
        (c["kind"], c["path"], c["type"])
        for c in changes
        if c["path"] == str(p.src) or c["path"].startswith(f"{p.src}/")
    }
    assert under_src == {
        ("metadata", str(p.src), "dir"),  # entries added and removed: its mtime changed
        ("modified", f"{p.src}/notes.txt", "file"),  # appended to
        ("removed", f"{p.src}/gone.txt", "file"),
        ("added", f"{p.src}/new.txt", "file"),
        ("metadata", f"{p.src}/perm.txt", "file"),  # chmod only
    }
    paths = [c["path"] for c in changes]
    assert paths == sorted(paths)


def test_diff_text(populated):
    p = populated
    lines = p.node.run("diff", p.s1, p.s2).stdout.splitlines()
    assert f"+  {p.src}/new.txt" in lines
    assert f"-  {p.src}/gone.txt" in lines
    assert f"M  {p.src}/notes.txt" in lines
    assert f"U  {p.src}/perm.txt" in lines
    assert f"U  {p.src}/" in lines
    assert re.fullmatch(r"1 added, 1 removed, 1 modified, \d+ metadata", lines[-1])


def test_diff_same_snapshot_is_empty(populated):
    same = populated.node.json("diff", populated.s2, populated.s2[:8])
    assert same == []
