"""The forget policy against restic's own: same snapshot times, same policies, same verdicts.

A real restic repository gets one snapshot per chosen time (``restic backup --time``);
``restic forget --dry-run --json`` then says what restic keeps and why, and
``apply_policy`` must keep exactly the same snapshots for the same reasons.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from node.ops import Duration, Policy, SnapshotInfo, apply_policy, parse_tag_lists

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic not installed")

# (time, host, tags): hours apart, days apart, week and month and year boundaries, the same
# hour twice, two hosts, and tagged snapshots.
TIMES: list[tuple[str, str, str]] = [
    ("2023-03-31 23:30:00", "alpha", ""),
    ("2023-12-31 23:59:00", "alpha", "monthly"),
    ("2024-01-01 00:01:00", "alpha", ""),
    ("2024-01-01 00:40:00", "alpha", ""),
    ("2024-01-07 12:00:00", "alpha", "keep"),
    ("2024-01-08 09:00:00", "alpha", ""),
    ("2024-02-29 10:00:00", "alpha", "keep,monthly"),
    ("2024-03-01 10:00:00", "alpha", ""),
    ("2024-03-30 08:00:00", "alpha", ""),
    ("2024-03-30 09:00:00", "alpha", ""),
    ("2024-03-30 09:30:00", "alpha", ""),
    ("2024-03-31 07:00:00", "alpha", ""),
    ("2024-04-01 07:00:00", "alpha", ""),
    ("2024-04-02 07:00:00", "alpha", ""),
    ("2024-04-02 19:00:00", "alpha", ""),
    ("2024-04-03 07:00:00", "alpha", "monthly"),
    ("2022-06-15 12:00:00", "beta", ""),
    ("2023-06-15 12:00:00", "beta", ""),
    ("2024-03-29 12:00:00", "beta", "keep"),
    ("2024-03-31 12:00:00", "beta", ""),
    ("2024-04-01 01:00:00", "beta", ""),
]

# (restic flags, our policy, group-by, --tag filter)
POLICIES: list[tuple[list[str], Policy, str, list[str]]] = [
    (["--keep-last", "3"], Policy(last=3), "host,paths", []),
    (["--keep-hourly", "4"], Policy(hourly=4), "host,paths", []),
    (["--keep-daily", "5"], Policy(daily=5), "host,paths", []),
    (["--keep-daily", "30"], Policy(daily=30), "host,paths", []),
    (["--keep-weekly", "3"], Policy(weekly=3), "host,paths", []),
    (["--keep-monthly", "4"], Policy(monthly=4), "host,paths", []),
    (["--keep-yearly", "2"], Policy(yearly=2), "host,paths", []),
    (
        ["--keep-last", "2", "--keep-daily", "3", "--keep-weekly", "2", "--keep-monthly", "3"],
        Policy(last=2, daily=3, weekly=2, monthly=3),
        "host,paths",
        [],
    ),
    (["--keep-within", "3d"], Policy(within=Duration(days=3)), "host,paths", []),
    (["--keep-within", "1m2d"], Policy(within=Duration(months=1, days=2)), "host,paths", []),
    (["--keep-within", "1y"], Policy(within=Duration(years=1)), "host,paths", []),
    (["--keep-within", "30h"], Policy(within=Duration(hours=30)), "", []),
    (
        ["--keep-tag", "keep", "--keep-last", "1"],
        Policy(last=1, keep_tags=tuple(parse_tag_lists(["keep"]))),
        "host,paths",
        [],
    ),
    (
        ["--keep-tag", "keep,monthly", "--keep-daily", "2"],
        Policy(daily=2, keep_tags=tuple(parse_tag_lists(["keep,monthly"]))),
        "host",
        [],
    ),
    (["--keep-last", "2"], Policy(last=2), "", []),
    (["--keep-daily", "2"], Policy(daily=2), "host,tags", []),
    (["--keep-last", "1"], Policy(last=1), "host,paths", ["monthly"]),
]


def _restic(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        ["restic", *args], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def restic_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("restic")
    (root / "data").mkdir()
    (root / "data" / "f").write_text("same content every time\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "TZ": "UTC",
        "RESTIC_REPOSITORY": str(root / "repo"),
        "RESTIC_PASSWORD": "restic-policy-test",
        "RESTIC_CACHE_DIR": str(root / "cache"),
    }
    _restic(env, "init", "-q")
    for when, host, tags in TIMES:
        args = ["backup", "-q", "--time", when, "--host", host]
        if tags:
            args += ["--tag", tags]
        _restic(env, *args, str(root / "data"))
    yield env


def _ours_from_restic(snaps: list[dict[str, Any]]) -> list[SnapshotInfo]:
    out = []
    for s in snaps:
        t = dt.datetime.fromisoformat(s["time"].replace("Z", "+00:00"))
        out.append(
            SnapshotInfo(
                s["id"],
                int(t.timestamp()) * 1_000_000_000,
                s["hostname"],
                tuple(s["paths"]),
                tuple(s.get("tags") or ()),
            )
        )
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "policy", "group_by", "only_tags"),
    POLICIES,
    ids=[
        " ".join(p[0])
        + (f" group:{p[2]}" if p[2] != "host,paths" else "")
        + (" tag" if p[3] else "")
        for p in POLICIES
    ],
)
def test_policy_matches_restic(
    restic_repo: dict[str, str],
    flags: list[str],
    policy: Policy,
    group_by: str,
    only_tags: list[str],
) -> None:
    snaps = json.loads(_restic(restic_repo, "snapshots", "--json"))
    assert len(snaps) == len(TIMES)
    args = ["forget", "--dry-run", "--json", "--group-by", group_by, *flags]
    for t in only_tags:
        args += ["--tag", t]
    theirs = json.loads(_restic(restic_repo, *args))
    restic_keep: dict[str, list[str]] = {}
    for group in theirs:
        by_time = {r["snapshot"]["time"]: r["matches"] for r in group["reasons"]}
        for s in group["keep"] or []:
            restic_keep[s["id"]] = by_time[s["time"]]

    groups = apply_policy(
        _ours_from_restic(snaps),
        policy,
        group_by=tuple(f for f in group_by.split(",") if f),
        only_tags=parse_tag_lists(only_tags),
        tz=dt.UTC,
    )
    ours = {d.snapshot.id: list(d.reasons) for g in groups for d in g.decisions if d.keep}
    assert len(groups) == len(theirs)
    assert sorted(ours) == sorted(restic_keep)
    assert ours == restic_keep
