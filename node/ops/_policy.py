"""Retention policies with restic's semantics: which snapshots `forget` keeps, and why.

A pure function over (id, time, host, paths, tags) records: no store, no clock. It
follows restic's ``ApplyPolicy`` (internal/restic/snapshot_policy.go, restic 0.14):

- snapshots are grouped (default by host and paths) and each group is judged alone;
- inside a group they are visited newest first. ``keep-last N`` keeps the N newest.
  Each calendar rule (hourly, daily, weekly, monthly, yearly) keeps the newest snapshot
  of each of the N most recent periods *that have a snapshot* (natural boundaries in the
  local time zone; weeks are ISO weeks); ``-1`` means no limit. When a rule still has
  counts left at the oldest snapshot of the group, that snapshot is kept too (restic
  keeps the longest history the counts allow);
- ``keep-within D`` keeps every snapshot newer than (the group's newest snapshot - D),
  where D is ``NyNmNdNh`` and months and years are calendar steps (Go's ``AddDate``);
- ``keep-tag`` keeps every snapshot carrying all tags of one of the given lists;
- the rules are ORed; a snapshot no rule keeps is removed. A policy with no rule is
  refused, because it would keep nothing of what the user meant to keep.

``--tag`` (``only_tags``) limits the whole run to snapshots carrying all tags of one of
the lists; the others are neither kept nor removed (not considered at all).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

UNLIMITED = -1
"""A calendar or last count that keeps every period (restic's ``unlimited``)."""

GROUP_FIELDS = ("host", "paths", "tags")


class PolicyError(ValueError):
    """A policy or one of its fields is invalid (the caller's input)."""


@dataclass(frozen=True, slots=True)
class Duration:
    """restic's ``--keep-within`` duration: calendar years, months, days and hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    _RE = re.compile(r"(\d+)([ymdh])")

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``1y2m3d4h`` (any subset, in any order, each unit once at most).

        Raises:
            PolicyError: anything else.
        """
        text = text.strip()
        pos = 0
        parts: dict[str, int] = {}
        for m in cls._RE.finditer(text):
            if m.start() != pos or m.group(2) in parts:
                break
            parts[m.group(2)] = int(m.group(1))
            pos = m.end()
        if not text or pos != len(text):
            raise PolicyError(
                f"invalid duration {text!r}: use a number with a unit y, m, d or h, "
                "e.g. 7d, 1y6m, 2d12h"
            )
        return cls(parts.get("y", 0), parts.get("m", 0), parts.get("d", 0), parts.get("h", 0))

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, t: dt.datetime) -> dt.datetime:
        """``t`` minus this duration, with Go's ``AddDate`` normalisation (Mar 31 - 1m
        = Mar 3 in a leap year, as restic computes it)."""
        month0 = t.month - 1 - self.months
        year = t.year - self.years + month0 // 12
        month = month0 % 12 + 1
        base = t.replace(year=year, month=month, day=1) + dt.timedelta(days=t.day - 1)
        return base - dt.timedelta(days=self.days, hours=self.hours)

    def __str__(self) -> str:
        out = "".join(
            f"{n}{u}"
            for n, u in ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
            if n
        )
        return out or "0h"


TagList = tuple[str, ...]


def parse_tag_lists(values: Sequence[str]) -> list[TagList]:
    """``--tag a,b --tag c`` -> [(a, b), (c,)]: comma means all of, repeating means any of."""
    out = []
    for value in values:
        tags = tuple(t for t in (x.strip() for x in value.split(",")) if t)
        if tags:
            out.append(tags)
    return out


def _first_match(tags: Sequence[str], lists: Sequence[TagList]) -> TagList | None:
    have = set(tags)
    return next((wanted for wanted in lists if set(wanted) <= have), None)


def _matches(tags: Sequence[str], lists: Sequence[TagList]) -> bool:
    have = set(tags)
    return any(set(wanted) <= have for wanted in lists)


@dataclass(frozen=True, slots=True)
class Policy:
    """What to keep. Counts are 0 (rule off), N, or ``UNLIMITED``."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration = field(default_factory=Duration)
    keep_tags: tuple[TagList, ...] = ()

    def validate(self) -> None:
        """Raises PolicyError for negative counts (other than UNLIMITED) or no rule at all."""
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            n = getattr(self, name)
            if n < UNLIMITED:
                raise PolicyError(f"--keep-{name} must be a count >= 0 or 'unlimited', got {n}")
        if self.empty:
            raise PolicyError(
                "no policy given: refusing to forget every snapshot; give at least one of "
                "--keep-last/-hourly/-daily/-weekly/-monthly/-yearly/-within/-tag"
            )

    @property
    def empty(self) -> bool:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        return not any(counts) and self.within.zero and not self.keep_tags

    def as_dict(self) -> dict[str, Any]:
        return {
            "keep_last": self.last,
            "keep_hourly": self.hourly,
            "keep_daily": self.daily,
            "keep_weekly": self.weekly,
            "keep_monthly": self.monthly,
            "keep_yearly": self.yearly,
            "keep_within": str(self.within) if not self.within.zero else None,
            "keep_tags": [",".join(t) for t in self.keep_tags],
        }


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The facts a policy looks at."""

    id: str
    time_ns: int
    host: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """One snapshot's verdict; ``reasons`` is empty for a snapshot that goes."""

    snapshot: SnapshotInfo
    keep: bool
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        s = self.snapshot
        return {
            "id": s.id,
            "time": dt.datetime.fromtimestamp(s.time_ns / 1e9, dt.UTC).isoformat(),
            "host": s.host,
            "paths": list(s.paths),
            "tags": list(s.tags),
            "keep": self.keep,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class Group:
    """The verdicts of one group, newest first."""

    key: dict[str, Any]
    decisions: list[Decision]

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.key, "snapshots": [d.as_dict() for d in self.decisions]}


def parse_group_by(text: str) -> tuple[str, ...]:
    """``host,paths`` -> ("host", "paths"); empty text groups everything together.

    Raises:
        PolicyError: an unknown field.
    """
    fields = tuple(f for f in (x.strip() for x in text.split(",")) if f)
    for f in fields:
        if f not in GROUP_FIELDS:
            raise PolicyError(f"--group-by: unknown field {f!r} (use host, paths, tags)")
    return fields


def _group_key(s: SnapshotInfo, group_by: Sequence[str]) -> tuple[Any, ...]:
    parts: list[Any] = []
    for f in GROUP_FIELDS:
        if f in group_by:
            value = getattr(s, f)
            parts.append(tuple(sorted(value)) if f != "host" else value)
        else:
            parts.append(None)
    return tuple(parts)


_Bucket = Callable[[dt.datetime, int], int]


def _always(_t: dt.datetime, nr: int) -> int:
    return nr


def _ymdh(t: dt.datetime, _nr: int) -> int:
    return t.year * 1_000_000 + t.month * 10_000 + t.day * 100 + t.hour


def _ymd(t: dt.datetime, _nr: int) -> int:
    return t.year * 10_000 + t.month * 100 + t.day


def _yw(t: dt.datetime, _nr: int) -> int:
    year, week, _ = t.isocalendar()
    return year * 100 + week


def _ym(t: dt.datetime, _nr: int) -> int:
    return t.year * 100 + t.month


def _y(t: dt.datetime, _nr: int) -> int:
    return t.year


def _apply_group(snaps: list[SnapshotInfo], policy: Policy, tz: dt.tzinfo | None) -> list[Decision]:
    snaps = sorted(snaps, key=lambda s: (-s.time_ns, s.id))  # newest first
    if not snaps:
        return []
    times = [dt.datetime.fromtimestamp(s.time_ns / 1e9, tz or dt.UTC) for s in snaps]
    if tz is None:
        times = [t.astimezone() for t in times]  # the local zone, as restic uses
    buckets: list[tuple[int, _Bucket, str]] = [
        (policy.last, _always, "last snapshot"),
        (policy.hourly, _ymdh, "hourly snapshot"),
        (policy.daily, _ymd, "daily snapshot"),
        (policy.weekly, _yw, "weekly snapshot"),
        (policy.monthly, _ym, "monthly snapshot"),
        (policy.yearly, _y, "yearly snapshot"),
    ]
    counts = [b[0] for b in buckets]
    lasts: list[int | None] = [None] * len(buckets)
    within_from = None if policy.within.zero else policy.within.before(times[0])
    out = []
    for nr, (snap, t) in enumerate(zip(snaps, times, strict=True)):
        reasons = []
        matched = _first_match(snap.tags, policy.keep_tags)
        if matched is not None:
            reasons.append(f"has tags [{', '.join(matched)}]")  # restic's wording
        if within_from is not None and t > within_from:
            reasons.append(f"within {policy.within}")
        for i, (_, bucket, reason) in enumerate(buckets):
            if counts[i] > 0 or counts[i] == UNLIMITED:
                val = bucket(t, nr)
                # restic also keeps the oldest snapshot while a rule has counts left:
                # the longest history the counts allow.
                if val != lasts[i] or nr == len(snaps) - 1:
                    lasts[i] = val
                    if counts[i] > 0:
                        counts[i] -= 1
                    reasons.append(reason)
        out.append(Decision(snap, bool(reasons), tuple(reasons)))
    return out


def apply_policy(
    snaps: Sequence[SnapshotInfo],
    policy: Policy,
    *,
    group_by: Sequence[str] = ("host", "paths"),
    only_tags: Sequence[TagList] = (),
    tz: dt.tzinfo | None = None,
) -> list[Group]:
    """Decide, per group, which snapshots the policy keeps and why.

    Args:
        snaps: every snapshot to consider.
        policy: the rules; validated here.
        group_by: fields of ``GROUP_FIELDS`` to group by (empty: one group).
        only_tags: consider only snapshots matching one of these tag lists.
        tz: the zone for calendar periods (default: the local zone, as restic).

    Returns:
        One ``Group`` per group, groups in order of their newest snapshot's time.

    Raises:
        PolicyError: an empty or invalid policy.
    """
    policy.validate()
    groups: dict[tuple[Any, ...], list[SnapshotInfo]] = {}
    for s in snaps:
        if only_tags and not _matches(s.tags, only_tags):
            continue
        groups.setdefault(_group_key(s, group_by), []).append(s)
    out = []
    for key, members in groups.items():
        host, paths, tags = key
        out.append(
            Group(
                {
                    "host": host,
                    "paths": list(paths) if paths is not None else None,
                    "tags": list(tags) if tags is not None else None,
                },
                _apply_group(members, policy, tz),
            )
        )
    out.sort(key=lambda g: -max(d.snapshot.time_ns for d in g.decisions))
    return out
