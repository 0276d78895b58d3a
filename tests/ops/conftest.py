"""Fixtures for operation tests (helpers live in ``tests/ops/helpers.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.repo import Repository
from tests.ops.helpers import make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = make_repo(tmp_path / "home")
    yield r
    r.close()
