"""The config's schedules as the scheduler's ``Schedule`` list, and its scheduler options.

One schedule per ``backups[]`` entry (named ``backup:<name>``), plus ``check``,
``retention``, ``gc`` and ``drill`` when their ``cron`` is set. A schedule's params are
what the job that kind starts takes: for backups, ``BackupRequest``'s fields; for the
others, the config section as JSON (durations as text, e.g. ``"grace": "1h"``).
"""

from __future__ import annotations

from typing import Any

from node.config import NodeConfig, SchedulerConfig

from ._metrics import count_error, scheduler_missed, scheduler_run
from ._scheduler import Schedule


def schedules_from_config(cfg: NodeConfig) -> list[Schedule]:
    """Every schedule the config asks for, in config order (validated config: no errors)."""
    out = []
    for job in cfg.backups:
        out.append(
            Schedule(
                name=f"backup:{job.name}",
                cron=job.cron,
                kind="backup",
                params={
                    "paths": list(job.paths),
                    "tags": list(job.tags),
                    "excludes": list(job.exclude),
                    "one_file_system": job.one_file_system,
                    "compression": "off" if job.compression == 0 else str(job.compression),
                },
            )
        )
    sections: list[tuple[str, Any]] = [
        ("check", cfg.check),
        ("forget", cfg.retention),
        ("gc", cfg.gc),
        ("drill", cfg.drill),
    ]
    for kind, section in sections:
        if section.cron:
            params = section.model_dump(mode="json", exclude={"cron"})
            name = "retention" if kind == "forget" else kind
            out.append(Schedule(name=name, cron=section.cron, kind=kind, params=params))
    return out


def scheduler_options(cfg: SchedulerConfig) -> dict[str, Any]:
    """``Scheduler`` keyword arguments from the ``scheduler`` section."""
    return {
        "catch_up": cfg.catch_up,
        "retry_base": cfg.retry_backoff.seconds,
        "retry_max": cfg.retry_backoff_max.seconds,
        "max_retries": cfg.retries,
    }


def observe_fire(schedule: Schedule, outcome: str) -> None:
    """A ``Scheduler.on_fire`` hook: count runs, skipped (overlapping) runs, start failures."""
    if outcome == "started":
        scheduler_run(schedule.name)
    elif outcome == "skipped_overlap":
        scheduler_missed(schedule.name)
    else:
        count_error("schedule_start")
