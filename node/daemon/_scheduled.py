"""What each kind of schedule runs: the job a scheduled time starts."""

from __future__ import annotations

from node.config import Duration
from node.ops import BackupRequest, CheckRequest, DrillRequest, ForgetRequest, GcRequest

from ._context import NodeContext
from ._jobs import Job
from ._peer_ops import drill_anywhere
from ._scheduler import Schedule


def start_scheduled(ctx: NodeContext, schedule: Schedule, counter: int) -> Job:
    """Start the job for one firing of ``schedule`` (``counter``: runs so far, from 1).

    Raises:
        ValueError: the schedule's parameters are invalid (a config error).
    """
    source = f"schedule:{schedule.name}"
    control = ctx.control
    if schedule.kind == "backup":
        backup = BackupRequest(**schedule.params)
        return ctx.jobs.start(
            "backup",
            backup.model_dump(),
            lambda progress: control.backup(backup, progress),
            source=source,
            exclusive=True,
        )
    if schedule.kind == "check":
        # A rotation through the data: run n of M reads slice n, so M runs read it all.
        slices = int(schedule.params.get("read_data_subsets", 0))
        subset = f"{(counter - 1) % slices + 1}/{slices}" if slices else None
        check = CheckRequest(read_data_subset=subset)
        return ctx.jobs.start(
            "check",
            check.model_dump(),
            lambda progress: control.check(check, progress),
            source=source,
        )
    if schedule.kind == "forget":
        p = schedule.params
        within = p.get("keep_within") or None
        forget = ForgetRequest(
            keep_last=int(p.get("keep_last", 0)),
            keep_hourly=int(p.get("keep_hourly", 0)),
            keep_daily=int(p.get("keep_daily", 0)),
            keep_weekly=int(p.get("keep_weekly", 0)),
            keep_monthly=int(p.get("keep_monthly", 0)),
            keep_yearly=int(p.get("keep_yearly", 0)),
            keep_within=None if _seconds(within) is None else within,
            keep_tags=list(p.get("keep_tags", [])),
            group_by=",".join(p.get("group_by", ["host", "paths"])),
            prune=bool(p.get("prune", False)),
        )
        return ctx.jobs.start(
            "forget",
            forget.model_dump(),
            lambda progress: control.forget(forget, progress),
            source=source,
            exclusive=True,
        )
    if schedule.kind == "gc":
        gc = GcRequest(grace=str(schedule.params.get("grace") or "0s"))
        return ctx.jobs.start(
            "gc", gc.model_dump(), lambda progress: control.gc(gc, progress), source=source
        )
    if schedule.kind == "drill":
        params = schedule.params
        drill = DrillRequest(
            max_rto=_seconds(params.get("max_rto")),
            max_rpo=_seconds(params.get("max_rpo")),
            framework=params.get("framework") or None,
            keep=int(params.get("keep_reports", 100)),
            from_peers=bool(params.get("from_peers", False)),
        )
        return ctx.jobs.start(
            "drill",
            drill.model_dump(),
            lambda progress: drill_anywhere(ctx, drill, progress),
            source=source,
        )
    raise ValueError(f"schedule {schedule.name!r}: unknown kind {schedule.kind!r}")


def _seconds(text: str | None) -> float | None:
    """A config duration as seconds; ``0s`` (no target) as None."""
    return (Duration.parse(text).seconds or None) if text else None
