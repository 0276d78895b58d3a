"""Durations and sizes: read as written, print back the same way, refuse the rest."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.config import Duration, Size

DURATIONS = [
    ("30s", 30, "30s"),
    ("5m", 300, "5m"),
    ("24h", 86400, "24h"),
    ("7d", 7 * 86400, "7d"),
    ("1h30m", 5400, "1h30m"),
    ("500ms", 0.5, "500ms"),
    ("1w", 7 * 86400, "1w"),
    ("90", 90, "1m30s"),
    (" 2D3H ", 2 * 86400 + 3 * 3600, "2d3h"),
]


@pytest.mark.parametrize(("text", "seconds", "printed"), DURATIONS, ids=[d[0] for d in DURATIONS])
def test_duration_reads_and_prints_back(text: str, seconds: float, printed: str) -> None:
    value = Duration.parse(text)
    assert value.seconds == seconds
    assert str(value) == printed
    assert Duration.parse(str(value)) == value


@pytest.mark.parametrize("text", ["", "x", "1x", "-5s", "+5s", "5s3", "1.2.3s", "inf", "nan"])
def test_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like 30s"):
        Duration.parse(text)


def test_duration_from_seconds_prints_in_largest_units() -> None:
    assert str(Duration(5400)) == "1h30m"
    assert str(Duration(90061)) == "1d1h1m1s"
    assert str(Duration(0)) == "0s"


SIZES = [
    ("512KiB", 512 << 10, "512KiB"),
    ("50GiB", 50 << 30, "50GiB"),
    ("1TB", 10**12, "1TB"),
    ("3 mib", 3 << 20, "3MiB"),
    ("1.5GiB", 3 << 29, "1.5GiB"),
    ("1536KiB", 1536 << 10, "1536KiB"),
    ("4096", 4096, "4KiB"),
    ("0B", 0, "0B"),
]


@pytest.mark.parametrize(("text", "nbytes", "printed"), SIZES, ids=[s[0] for s in SIZES])
def test_size_reads_and_prints_back(text: str, nbytes: int, printed: str) -> None:
    value = Size.parse(text)
    assert value.bytes == nbytes
    assert str(value) == printed
    assert Size.parse(str(value)) == value


@pytest.mark.parametrize("text", ["", "GiB", "12 parsecs", "-1KiB", "1.5", "0.1B", "1e3"])
def test_size_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size like 512KiB"):
        Size.parse(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_any_value_prints_and_parses_back(ms: int) -> None:
    value = Duration(ms / 1000)
    assert Duration.parse(str(value)) == value


@given(st.integers(min_value=0, max_value=1 << 60))
def test_size_any_value_prints_and_parses_back(nbytes: int) -> None:
    value = Size(nbytes)
    assert Size.parse(str(value)) == value


@given(st.text(max_size=30))
def test_units_garbage_raises_only_value_error(text: str) -> None:
    for parse in (Duration.parse, Size.parse):
        with contextlib.suppress(ValueError):
            parse(text)
