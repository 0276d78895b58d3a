"""`shadowvault jobs`: schedules with their next runs, running jobs, and history."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from node.repo import resolve_home

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, opened, print_json
from ._errors import user_errors
from ._remote import call_daemon


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _local_jobs(home: HomeOpt, password_file: Any, limit: int) -> dict[str, Any]:
    from node.daemon import JOB_PREFIX  # the history the daemon left in the store

    with opened(home, password_file) as repo:
        history = [json.loads(raw) for _, raw in repo.store.iter_records(JOB_PREFIX)]
    return {"active": [], "history": history[::-1][:limit], "schedules": []}


def jobs(
    limit: Annotated[int, typer.Option("--limit", help="How many finished jobs to show.")] = 20,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show schedules (next run, last outcome), running jobs and recent history."""
    with user_errors():
        data: dict[str, Any] | None = call_daemon(
            resolve_home(home), "GET", "/api/v1/jobs", params={"limit": limit}
        )
        daemon = data is not None
        if data is None:
            data = _local_jobs(home, password_file, limit)
        if json_out:
            print_json(data)
            return
        if data["schedules"]:
            print(f"{'Schedule':<16} {'Kind':<8} {'Cron':<16} {'Next run':<20} Last")
            for s in data["schedules"]:
                last = s["last_state"] or "-"
                if s["running"]:
                    last = "running"
                print(
                    f"{s['name']:<16} {s['kind']:<8} {s['cron']:<16} {_when(s['next_run']):<20} {last}"
                )
            print()
        elif not daemon:
            print("no daemon running: schedules run only under `shadowvault node run`")
        for j in data["active"]:
            done = j["progress"]
            print(
                f"running  {j['id']}  {j['kind']:<8} {done['files']} files, {done['bytes']} bytes"
            )
        print(f"{'Job':<14} {'Kind':<8} {'State':<10} {'Source':<18} {'Finished':<20} Duration")
        for j in data["history"]:
            took = (
                f"{j['finished'] - j['started']:.1f}s"
                if j.get("started") and j.get("finished")
                else "-"
            )
            print(
                f"{j['id']:<14} {j['kind']:<8} {j['state']:<10} {j['source'][:18]:<18} "
                f"{_when(j['finished']):<20} {took}"
            )
