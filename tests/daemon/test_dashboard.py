"""The Grafana dashboard (docker/grafana/shadowvault.json) only queries series we define."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from node.daemon._metrics import STORE_SERIES  # also defines the series on the registry

DASHBOARD = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "shadowvault.json"
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_info")


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def _known_series() -> set[str]:
    names = [m.name for m in REGISTRY.collect()] + list(STORE_SERIES)
    return {name + s for name in names for s in SUFFIXES}


def test_dashboard_queries_only_defined_series() -> None:
    known = _known_series()
    used: set[str] = set()
    for panel in _panels():
        for target in panel["targets"]:
            for name in re.findall(r"\bshadowvault_[a-z0-9_]+", target["expr"]):
                if not name.startswith("shadowvault_p2p_"):  # the mesh defines those
                    used.add(name)
                    assert name in known, f"panel {panel['title']!r} queries unknown {name}"
            expr = target["expr"]
            for opening, closing in ("()", "{}", "[]"):
                assert expr.count(opening) == expr.count(closing), expr
    assert len(used) >= 30


def test_dashboard_panels_cover_each_area() -> None:
    panels = _panels()
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needle in (
        "shadowvault_backups_finished_total",
        "shadowvault_backup_duration_seconds_bucket",
        "shadowvault_store_size_bytes",
        "shadowvault_api_requests_total",
        "shadowvault_errors_total",
        "shadowvault_p2p_",
    ):
        assert needle in exprs
