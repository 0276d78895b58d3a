"""The scheduler on a fake clock: cron times, catch-up once, no overlap, retry backoff.

Time is trio's autojump clock mapped onto a fixed wall-clock start, so an hour of
schedule runs in milliseconds; the store holding the scheduler's state is the real one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from node.daemon._jobs import Job
from node.daemon._scheduler import RETRY_BASE, Schedule, Scheduler
from node.repo import Repository
from tests.ops.helpers import make_repo

BASE = datetime(2026, 1, 5, 9, 0, 30, tzinfo=UTC).timestamp()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = make_repo(tmp_path / "home")
    yield r
    r.close()


def clock() -> float:
    return BASE + trio.current_time()


class Runner:
    """Starts a 'job' per fire and lets the test finish it as it likes."""

    def __init__(self, finish: str | None = "succeeded") -> None:
        self.finish = finish
        self.started: list[tuple[str, int, float]] = []
        self.jobs: list[Job] = []

    def __call__(self, schedule: Schedule, counter: int) -> Job:
        job = Job(
            id=f"j{len(self.jobs)}",
            kind=schedule.kind,
            params={},
            source=f"schedule:{schedule.name}",
        )
        job.state = "running"
        self.started.append((schedule.name, counter, clock()))
        self.jobs.append(job)
        return job


async def _run_for(scheduler: Scheduler, seconds: float) -> None:
    with trio.move_on_after(seconds):
        await scheduler.run()


async def test_fires_at_each_cron_time(
    repo: Repository, autojump_clock: trio.testing.MockClock
) -> None:
    runner = Runner()
    s = Schedule("every10", "*/10 * * * *", "backup", {"paths": ["/x"]})
    sched = Scheduler([s], runner, repo.store, clock=clock)

    def finish_all(schedule: Schedule, outcome: str) -> None:
        for job in runner.jobs:
            job.state = "succeeded"

    sched.on_fire.append(finish_all)
    await _run_for(sched, 3600)
    times = [datetime.fromtimestamp(t, tz=UTC).strftime("%H:%M") for _, _, t in runner.started]
    assert times == ["09:10", "09:20", "09:30", "09:40", "09:50", "10:00"]
    assert [c for _, c, _ in runner.started] == [1, 2, 3, 4, 5, 6]


async def test_missed_runs_run_once_after_downtime(
    repo: Repository, autojump_clock: trio.testing.MockClock
) -> None:
    s = Schedule("hourly", "0 * * * *", "check")
    first = Runner()
    sched = Scheduler([s], first, repo.store, clock=clock)
    await _run_for(sched, 3600)  # fires at 10:00
    assert len(first.started) == 1
    first.jobs[0].state = "succeeded"

    # The node is down for five hours (the clock moves on), then starts again.
    await trio.sleep(5 * 3600)
    second = Runner()
    restarted = Scheduler([s], second, repo.store, clock=clock)
    await _run_for(restarted, 60)
    assert len(second.started) == 1, "five missed runs must run once, not five times"
    assert second.started[0][1] == 2  # the counter survived the restart


async def test_runs_do_not_overlap(
    repo: Repository, autojump_clock: trio.testing.MockClock
) -> None:
    runner = Runner()  # its jobs never finish
    s = Schedule("often", "* * * * *", "backup", {"paths": ["/x"]})
    sched = Scheduler([s], runner, repo.store, clock=clock)
    await _run_for(sched, 5 * 60)
    assert len(runner.started) == 1
    (info,) = sched.describe()
    assert info["skipped"] == 4 and info["running"]


async def test_failures_retry_with_backoff(
    repo: Repository, autojump_clock: trio.testing.MockClock
) -> None:
    runner = Runner()
    s = Schedule("daily", "0 3 * * *", "backup", {"paths": ["/x"]})
    sched = Scheduler([s], runner, repo.store, clock=clock, max_retries=5)

    def fail_it(schedule: Schedule, outcome: str) -> None:
        job = runner.jobs[-1]
        job.state = "failed"
        sched.job_finished(job)

    sched.on_fire.append(fail_it)
    await _run_for(sched, 42 * 3600 + 10 * 60)  # to 03:10 two days later
    starts = [t for _, _, t in runner.started]
    gaps = [round(b - a) for a, b in itertools.pairwise(starts)]
    base = int(RETRY_BASE)
    # the 03:00 run, five retries doubling, then nothing until the next day's 03:00
    assert gaps[:5] == [base, 2 * base, 4 * base, 8 * base, 16 * base]
    assert datetime.fromtimestamp(starts[6], tz=UTC).strftime("%d %H:%M") == "07 03:00"
    assert len(starts) == 7
    assert sched.describe()[0]["failures"] == 7


def test_bad_cron_is_refused() -> None:
    with pytest.raises(ValueError, match="not a cron expression"):
        Schedule("bad", "every day", "backup")
