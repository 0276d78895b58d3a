"""A real daemon with schedules in its config: a scheduled backup and check fire on their
own, `jobs` shows them, and /metrics (scraped and parsed with prometheus-client's own
parser) counts them. The cron has a seconds field so the test waits seconds, not minutes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

EVERY_2S = "* * * * * */2"  # croniter: a sixth field is seconds


def _wait_for(predicate: Any, what: str, limit: float = 90) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def test_scheduled_backup_and_check_fire_and_are_counted(
    node: Any, daemon_for: Any, tmp_path: Path, fs: Any
) -> None:
    src = tmp_path / "data"
    fs.write_file(src / "a.txt", b"scheduled\n")
    config = node.home / "config.yaml"
    text = config.read_text()
    assert "backups: []\n" in text and 'cron: ""\n  # 0: check structure only' in text
    text = text.replace(
        "backups: []\n",
        f'backups:\n  - name: often\n    cron: "{EVERY_2S}"\n    paths: ["{src}"]\n    tags: [auto]\n',
    )
    text = text.replace(
        'cron: ""\n  # 0: check structure only', f'cron: "{EVERY_2S}"\n  # 0: check structure only'
    )
    config.write_text(text.replace("read_data_subsets: 0", "read_data_subsets: 3", 1))
    node.run("config", "validate")

    d = daemon_for(node)
    node.passphrase = None
    _wait_for(lambda: len(node.snapshots()) >= 2, "two scheduled backups")
    jobs = _wait_for(
        lambda: (
            (j := node.json("jobs"))
            and any(h["kind"] == "check" and h["state"] == "succeeded" for h in j["history"])
            and j
        ),
        "a scheduled check",
    )
    schedules = {s["name"]: s for s in jobs["schedules"]}
    assert set(schedules) == {"backup:often", "check"}
    assert schedules["backup:often"]["counter"] >= 2
    sources = {h["source"] for h in jobs["history"]}
    assert {"schedule:backup:often", "schedule:check"} <= sources
    check_subsets = [
        h["params"]["read_data_subset"] for h in jobs["history"] if h["kind"] == "check"
    ]
    assert set(check_subsets) <= {"1/3", "2/3", "3/3"} and "1/3" in check_subsets
    assert all(s["tags"] == ["auto"] for s in node.snapshots())
    text = node.run("jobs").stdout
    assert "backup:often" in text and "schedule:check" in text

    response = d.api("GET", "/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    ours = [name for name in families if name.startswith("shadowvault_")]
    assert len(ours) >= 30, ours

    def value(family: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[family].samples
            if all(s.labels.get(k) == v for k, v in labels.items()) and s.name.endswith("_total")
        )

    assert value("shadowvault_backups_finished", result="ok") >= 2
    assert value("shadowvault_scheduler_runs", schedule="backup:often") >= 2
    assert value("shadowvault_jobs_finished", kind="check", result="ok") >= 1
    assert value("shadowvault_api_requests") >= 1
    assert "shadowvault_store_size_bytes" in families
    assert d.api("GET", "/metrics", token="svt_wrong").status_code == 401
    summary = d.api("GET", "/api/v1/metrics/summary").json()
    assert summary["backups"]["ok"] >= 2 and summary["data"]["bytes_backed_up"] > 0
