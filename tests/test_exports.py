"""Each package's public surface is explicit: a sorted ``__all__`` naming what it exports."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "protocol",
    "node.config",
    "node.repo",
    "node.p2p",
    "node.ops",
    "node.daemon",
    "node.cli",
]


@pytest.mark.parametrize("name", PACKAGES, ids=PACKAGES)
def test_exports_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item}"
