"""Integration fixtures: a failing test that used a cluster shows every node's log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        logs = getattr(value, "logs", None)
        if callable(logs) and hasattr(value, "nodes"):
            report.sections.append(("cluster logs", logs()))
