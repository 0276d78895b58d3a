"""The scheduler: cron schedules that start jobs.

Rules, in the spirit of cron with anacron's catch-up:

* A schedule fires at each time its cron expression names (croniter; five fields, or
  six with seconds last).
* Runs missed while the node was down run once at start, not once per missed time.
  A schedule seen for the first time starts counting from now.
* Runs never overlap: if the previous run of a schedule is still going when the next
  time comes, that time is skipped (and counted).
* A failed run is retried with exponential backoff (``retry_base`` doubling up to
  ``retry_max``, at most ``max_retries`` times) until it succeeds or the next regular
  time comes.

State (last fire, last result, failures, rotation counters) lives in LevelDB under
``c`` + name, so catch-up and rotation survive restarts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
import trio
from croniter import croniter

from node.repo import RepoError, Store

from ._jobs import Job

STATE_PREFIX = b"c"
RETRY_BASE = 30.0
RETRY_MAX = 3600.0
log = structlog.get_logger("shadowvault.scheduler")


@dataclass(frozen=True)
class Schedule:
    """One scheduled kind of job: ``kind`` is backup, check, forget, gc or drill."""

    name: str
    cron: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.cron):
            raise ValueError(f"schedule {self.name!r}: {self.cron!r} is not a cron expression")

    def next_after(self, when: float) -> float:
        """The first time this schedule names strictly after ``when`` (unix seconds)."""
        start = datetime.fromtimestamp(when, tz=UTC)
        return float(croniter(self.cron, start).get_next(float))


@dataclass
class _State:
    last_fire: float | None = None
    last_state: str | None = None
    failures: int = 0
    retry_at: float | None = None
    skipped: int = 0
    counter: int = 0
    """Runs so far (drives rotations such as check subsets)."""
    job: Job | None = None

    def record(self) -> dict[str, Any]:
        return {
            "last_fire": self.last_fire,
            "last_state": self.last_state,
            "failures": self.failures,
            "retry_at": self.retry_at,
            "skipped": self.skipped,
            "counter": self.counter,
        }


StartJob = Callable[[Schedule, int], Job]
"""Starts the job for a schedule; the int is the run counter (for rotations)."""


class Scheduler:
    """Fires the schedules' jobs on time; see the module docstring for the rules."""

    def __init__(
        self,
        schedules: list[Schedule],
        start_job: StartJob,
        store: Store,
        *,
        clock: Callable[[], float] | None = None,
        catch_up: bool = True,
        retry_base: float = RETRY_BASE,
        retry_max: float = RETRY_MAX,
        max_retries: int = 3,
    ) -> None:
        import time

        self.catch_up = catch_up
        self.retry_base, self.retry_max, self.max_retries = retry_base, retry_max, max_retries
        self.schedules = schedules
        self._start_job = start_job
        self._store = store
        self._now = clock or time.time
        self._states = {s.name: self._load(s.name) for s in schedules}
        self.fired = 0
        self.on_fire: list[Callable[[Schedule, str], None]] = []
        """Hooks called with (schedule, outcome): started, skipped_overlap, failed_to_start."""

    def _load(self, name: str) -> _State:
        raw = self._store.get_record(STATE_PREFIX + name.encode())
        if raw is None:
            return _State()
        try:
            data = json.loads(raw)
            return _State(**{k: data[k] for k in _State().record() if k in data})
        except (ValueError, TypeError):
            return _State()

    def _save(self, name: str) -> None:
        state = self._states[name]
        try:
            self._store.put_records(
                [(STATE_PREFIX + name.encode(), json.dumps(state.record()).encode())], sync=False
            )
        except RepoError:
            log.warning("scheduler state not saved", schedule=name)

    def due_at(self, schedule: Schedule, started: float) -> float:
        """When ``schedule`` should next fire."""
        state = self._states[schedule.name]
        base = state.last_fire if state.last_fire is not None else started
        if not self.catch_up:
            base = max(base, started)
        due = schedule.next_after(base)
        if state.retry_at is not None:
            due = min(due, state.retry_at)
        return due

    def describe(self) -> list[dict[str, Any]]:
        """Each schedule with its next run and last outcome (``shadowvault jobs``)."""
        now = self._now()
        out = []
        for s in self.schedules:
            state = self._states[s.name]
            out.append(
                {
                    "name": s.name,
                    "kind": s.kind,
                    "cron": s.cron,
                    "next_run": self.due_at(s, now)
                    if state.last_fire is not None
                    else s.next_after(now),
                    "running": state.job is not None and state.job.active,
                    **state.record(),
                }
            )
        return out

    def job_finished(self, job: Job) -> None:
        """Jobs hook: record a scheduled job's outcome and plan a retry if it failed."""
        if not job.source.startswith("schedule:"):
            return
        name = job.source.removeprefix("schedule:")
        state = self._states.get(name)
        if state is None:
            return
        state.last_state = job.state
        if job.state == "failed":
            state.failures += 1
            if state.failures <= self.max_retries:
                delay = min(self.retry_base * 2 ** (state.failures - 1), self.retry_max)
                state.retry_at = self._now() + delay
                log.warning("scheduled job failed; will retry", schedule=name, in_s=delay)
            else:
                state.retry_at = None
                log.warning(
                    "scheduled job failed; retries used up until its next time", schedule=name
                )
        else:
            state.failures, state.retry_at = 0, None
        self._save(name)

    def _fire(self, schedule: Schedule, now: float) -> None:
        state = self._states[schedule.name]
        state.last_fire, state.retry_at = now, None
        if state.job is not None and state.job.active:
            state.skipped += 1
            log.info("schedule skipped: previous run still going", schedule=schedule.name)
            outcome = "skipped_overlap"
        else:
            state.counter += 1
            try:
                state.job = self._start_job(schedule, state.counter)
                outcome = "started"
                self.fired += 1
            except Exception:
                log.exception("scheduled job could not start", schedule=schedule.name)
                state.failures += 1
                outcome = "failed_to_start"
        self._save(schedule.name)
        for hook in self.on_fire:
            hook(schedule, outcome)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire schedules until cancelled."""
        started = self._now()
        task_status.started()
        if not self.schedules:
            await trio.sleep_forever()
        while True:
            now = self._now()
            for schedule in self.schedules:
                if self.due_at(schedule, started) <= now:
                    self._fire(schedule, now)
            wake = min(self.due_at(s, started) for s in self.schedules)
            # Wake at least every minute: the wall clock may jump (suspend, NTP).
            await trio.sleep(min(max(wake - self._now(), 0.05), 60.0))
