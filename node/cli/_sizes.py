"""Human sizes and durations: ``512KiB``, ``50GiB``, ``1.5MB``; ``30s``, ``24h``, ``7d``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in a size such as ``512KiB`` or ``2GB``.

    Raises:
        ValueError: not a number with a known unit.
    """
    match = _SIZE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 512KiB, 50GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


_DURATION_UNITS = {
    "": 1.0,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90``, ``45s``, ``15m``, ``4h``, ``1h30m`` or ``7d``.

    Raises:
        ValueError: empty, negative, or an unknown unit.
    """
    compact = text.strip().lower().replace(" ", "")
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != pos or match.group(2) not in _DURATION_UNITS:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    else:
        if compact and pos == len(compact):
            return total
    raise ValueError(f"not a duration: {text!r} (examples: 90s, 15m, 4h, 1h30m, 7d)")
