"""Packages that load their modules on first use (PEP 562).

A package lists which module defines each public name; ``lazy_getattr`` returns the
module-level ``__getattr__`` that imports that module the first time the name is asked
for and caches the value in the package. A CLI command then pays only for the modules it
uses (docs/ARCHITECTURE.md, "Start-up"). Type checkers see the names through the
package's ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], object]:
    """The ``__getattr__`` of ``package``: ``homes`` maps each name to its module."""

    def __getattr__(name: str) -> object:
        module = homes.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    return __getattr__
