"""The config's schedules become the scheduler's schedules and options."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from node.config import load_config_text
from node.daemon import observe_fire, scheduler_options, schedules_from_config
from node.daemon._scheduler import Schedule, Scheduler
from node.ops import BackupRequest, CheckRequest
from tests.ops.helpers import make_repo

CONFIG = """
scheduler: {retries: 5, retry_backoff: 30s, retry_backoff_max: 2h, catch_up: false}
backups:
  - {name: home, cron: "0 3 * * *", paths: [/home/a], tags: [nightly], exclude: ["*.tmp"]}
  - {name: etc, cron: "@hourly", paths: [/etc], compression: "off", one_file_system: true}
check: {cron: "0 4 * * 0", read_data_subsets: 7}
retention: {cron: "@daily", keep_daily: 7, keep_within: 2d}
gc: {cron: "@weekly", grace: 1h}
"""


def test_config_schedules_kinds_names_and_params() -> None:
    cfg = load_config_text(CONFIG).config
    schedules = schedules_from_config(cfg)
    assert [(s.name, s.kind, s.cron) for s in schedules] == [
        ("backup:home", "backup", "0 3 * * *"),
        ("backup:etc", "backup", "@hourly"),
        ("check", "check", "0 4 * * 0"),
        ("retention", "forget", "@daily"),
        ("gc", "gc", "@weekly"),
    ]
    home = BackupRequest(**schedules[0].params)  # what start_scheduled builds
    assert (home.paths, home.tags, home.excludes, home.compression) == (
        ["/home/a"],
        ["nightly"],
        ["*.tmp"],
        "3",
    )
    etc = BackupRequest(**schedules[1].params)
    assert (etc.compression, etc.one_file_system) == ("off", True)
    assert schedules[2].params == {"read_data_subsets": 7}
    CheckRequest(read_data_subset=f"1/{schedules[2].params['read_data_subsets']}")
    assert schedules[3].params["keep_daily"] == 7
    assert schedules[3].params["keep_within"] == "2d"
    assert schedules[4].params["grace"] == "1h"


def test_config_without_crons_schedules_nothing() -> None:
    assert schedules_from_config(load_config_text(None).config) == []


def test_config_scheduler_options_accepted_by_scheduler(tmp_path: Path) -> None:
    cfg = load_config_text(CONFIG).config
    options = scheduler_options(cfg.scheduler)
    assert options == {"catch_up": False, "retry_base": 30.0, "retry_max": 7200.0, "max_retries": 5}
    repo = make_repo(tmp_path / "home")
    try:
        scheduler = Scheduler(schedules_from_config(cfg), lambda s, n: None, repo.store, **options)  # type: ignore[arg-type, return-value]
        assert [d["name"] for d in scheduler.describe()][:2] == ["backup:home", "backup:etc"]
    finally:
        repo.close()


def test_config_observe_fire_counts_runs_and_skips() -> None:
    def value(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"schedule": "backup:x"}) or 0.0

    schedule = Schedule(name="backup:x", cron="@daily", kind="backup")
    runs, missed = (
        value("shadowvault_scheduler_runs_total"),
        value("shadowvault_scheduler_missed_total"),
    )
    observe_fire(schedule, "started")
    observe_fire(schedule, "skipped_overlap")
    observe_fire(schedule, "skipped_overlap")
    assert value("shadowvault_scheduler_runs_total") == runs + 1
    assert value("shadowvault_scheduler_missed_total") == missed + 2
