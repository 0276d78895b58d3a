"""Jobs hooks that turn a job's start and outcome into metrics and a store refresh.

Jobs carry JSON-ready results (the same the CLI prints); this maps them back to the
typed summaries the metric functions take.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from node.ops import BackupSummary, RestoreSummary

from . import _metrics as m
from ._jobs import Job

_STARTED = {"backup": m.backup_started, "restore": m.restore_started, "check": m.check_started}
STORE_CHANGING = frozenset({"backup", "forget", "gc", "repair"})
"""Kinds after which the store gauges are measured again."""


@dataclass(frozen=True)
class _CheckOutcome:
    ok: bool
    bytes_read: int
    problems: list[Any] = field(default_factory=list)


def _fields(cls: type[Any], result: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in result.items() if k in names}


def job_started(job: Job) -> None:
    """``Jobs.on_start`` hook."""
    m.job_started(job.kind)
    start = _STARTED.get(job.kind)
    if start is not None:
        start()


def job_finished(job: Job) -> None:
    """``Jobs.on_finish`` hook: per-kind outcome metrics, then the job counters."""
    took = (job.finished or 0.0) - (job.started or job.finished or 0.0)
    result = job.result or {}
    if job.state == "succeeded":
        if job.kind == "backup":
            m.observe_backup(BackupSummary(**_fields(BackupSummary, result)))
        elif job.kind == "restore":
            m.observe_restore(RestoreSummary(**_fields(RestoreSummary, result)), took)
        elif job.kind == "forget":
            m.observe_forget(result)
        elif job.kind == "gc":
            m.observe_gc(result)
        elif job.kind == "check":
            outcome = _CheckOutcome(bool(result.get("ok")), int(result.get("bytes_read", 0)))
            m.observe_check(
                dataclasses.replace(outcome, problems=list(result.get("problems", []))), took
            )
    elif job.started is not None:
        # None: cancelled; else the error's kind, which is also counted as an error.
        kind = (job.error or {}).get("kind", "internal") if job.state == "failed" else None
        failed = {"backup": m.backup_failed, "restore": m.restore_failed, "check": m.check_failed}
        if job.kind == "gc":
            m.GC_RUNS.labels("failed" if kind else "cancelled").inc()
        if job.kind in failed:
            failed[job.kind](took, kind)
        elif kind is not None:
            m.count_error(kind)
    m.observe_job(job)
