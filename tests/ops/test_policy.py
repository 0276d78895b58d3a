"""Policy edge cases that need no restic: refusal, durations, tag filters."""

from __future__ import annotations

import datetime as dt

import pytest

from node.ops import Duration, Policy, PolicyError, SnapshotInfo, apply_policy, parse_group_by

T0 = int(dt.datetime(2024, 3, 31, 12, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
HOUR = 3600 * 1_000_000_000


def _snap(i: int, hours_ago: int, tags: tuple[str, ...] = ()) -> SnapshotInfo:
    return SnapshotInfo(f"{i:064x}", T0 - hours_ago * HOUR, "h", ("/data",), tags)


def test_policy_empty_is_refused() -> None:
    with pytest.raises(PolicyError, match="refusing to forget every snapshot"):
        apply_policy([_snap(1, 0)], Policy())


def test_policy_negative_count_is_refused() -> None:
    with pytest.raises(PolicyError, match="keep-daily"):
        apply_policy([_snap(1, 0)], Policy(daily=-2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", Duration(days=7)),
        ("1y6m", Duration(years=1, months=6)),
        ("2d12h", Duration(days=2, hours=12)),
        ("1y2m3d4h", Duration(1, 2, 3, 4)),
    ],
    ids=["days", "years-months", "days-hours", "all"],
)
def test_duration_parse(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["", "7", "d", "1w", "1d1d", "-1d", "1d 2h"])
def test_duration_parse_rejects(text: str) -> None:
    with pytest.raises(PolicyError):
        Duration.parse(text)


def test_duration_month_steps_like_go_adddate() -> None:
    # Go: 2024-03-31 minus one month is "2024-02-31", normalised to 2024-03-02.
    t = dt.datetime(2024, 3, 31, 12, tzinfo=dt.UTC)
    assert Duration(months=1).before(t) == dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC)


def test_policy_unlimited_daily_keeps_one_per_day() -> None:
    snaps = [_snap(i, h) for i, h in enumerate([0, 1, 30, 31, 60])]
    groups = apply_policy(snaps, Policy(daily=-1), tz=dt.UTC)
    kept = [d.snapshot.id for d in groups[0].decisions if d.keep]
    assert kept == [snaps[0].id, snaps[2].id, snaps[4].id]


def test_policy_tag_filter_leaves_others_alone() -> None:
    snaps = [_snap(1, 0), _snap(2, 5, ("db",)), _snap(3, 10, ("db",))]
    groups = apply_policy(snaps, Policy(last=1), only_tags=[("db",)], tz=dt.UTC)
    seen = {d.snapshot.id: d.keep for g in groups for d in g.decisions}
    assert seen == {snaps[1].id: True, snaps[2].id: False}


def test_group_by_rejects_unknown_field() -> None:
    with pytest.raises(PolicyError, match="unknown field 'user'"):
        parse_group_by("host,user")
