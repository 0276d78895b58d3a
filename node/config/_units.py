"""Durations (``30s``, ``24h``, ``7d``) and sizes (``512KiB``, ``50GiB``) for the config.

Both read the way people write them and print back as written (units in their usual
case, spaces dropped: ``50 gib`` prints ``50GiB``). A value made from a number prints in
the largest units that keep it exact (5400 s prints ``1h30m``). A bare number is seconds
or bytes, so YAML's ``timeout: 30`` still works.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

_DURATION_UNITS: dict[str, float] = {
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
    "ms": 0.001,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
_SIZE_SPELLING = {
    "b": "B",
    "kib": "KiB",
    "mib": "MiB",
    "gib": "GiB",
    "tib": "TiB",
    "kb": "kB",
    "mb": "MB",
    "gb": "GB",
    "tb": "TB",
}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")

DURATION_EXPECTED = "expected a duration like 30s, 5m, 24h or 7d"
SIZE_EXPECTED = "expected a size like 512KiB, 50GiB or 1TB"


class _ConfigUnit:
    """What Duration and Size share: pydantic validation from text or a bare number.

    A subclass sets ``_EXPECTED`` (the error message), ``_EXAMPLES`` (for the JSON
    schema) and ``_NUMBERS`` (the number types a bare value may have), and makes a
    value from a bare number or from text in ``_coerce``.
    """

    _EXPECTED: ClassVar[str]
    _EXAMPLES: ClassVar[tuple[str, ...]]
    _NUMBERS: ClassVar[tuple[type, ...]]

    __slots__ = ()

    @classmethod
    def _coerce(cls, value: Any) -> Any:
        """The value made from a bare number or from text; ValueError if it is not one."""
        raise NotImplementedError

    @classmethod
    def _validate(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        # bool is an int to Python, never a duration or a size to a user.
        if not isinstance(value, bool):
            try:
                if isinstance(value, (str, *cls._NUMBERS)):
                    return cls._coerce(value)
            except ValueError:
                pass
        raise PydanticCustomError("expected", cls._EXPECTED)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "examples": list(cls._EXAMPLES)}


class Duration(_ConfigUnit):
    """A non-negative length of time, written ``1h30m``, ``30s``, ``7d``, ``500ms``.

    Units: ``w`` (7 days), ``d``, ``h``, ``m``, ``s``, ``ms``. Months and years are left out
    on purpose: their length varies, and a retention window must mean the same every time.
    """

    __slots__ = ("_ms", "_text")
    _EXPECTED = DURATION_EXPECTED
    _EXAMPLES = ("30s", "24h", "7d")
    _NUMBERS = (int, float)

    def __init__(self, seconds: float, *, text: str | None = None) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("a duration is a finite, non-negative time")
        self._ms = round(seconds * 1000)
        self._text = text

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``30s``, ``1h30m``, ``7d`` or a bare number of seconds.

        Raises:
            ValueError: anything else (the message says what is expected).
        """
        cleaned = text.strip().lower().replace(" ", "")
        if not cleaned:
            raise ValueError(DURATION_EXPECTED)
        if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
            return cls(float(cleaned))
        total = 0.0
        pos = 0
        for match in _DURATION_PART.finditer(cleaned):
            if match.start() != pos:
                raise ValueError(DURATION_EXPECTED)
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(cleaned):
            raise ValueError(DURATION_EXPECTED)
        return cls(total, text=cleaned)

    @property
    def seconds(self) -> float:
        return self._ms / 1000

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        ms = self._ms
        if ms == 0:
            return "0s"
        # Days are the largest unit printed: "14d" reads better than "2w" in a config,
        # and "7d" must print back as "7d".
        parts = []
        for unit in ("d", "h", "m", "s", "ms"):
            size = round(_DURATION_UNITS[unit] * 1000)
            if ms >= size:
                count, ms = divmod(ms, size)
                parts.append(f"{count}{unit}")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Duration({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other._ms == self._ms

    def __hash__(self) -> int:
        return hash(("Duration", self._ms))

    @classmethod
    def _coerce(cls, value: Any) -> Duration:
        return cls.parse(value) if isinstance(value, str) else cls(float(value))


class Size(_ConfigUnit):
    """A number of bytes, written ``512KiB``, ``50GiB``, ``1TB`` or a bare number of bytes.

    Binary (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) units, case-insensitive.
    """

    __slots__ = ("_bytes", "_text")
    _EXPECTED = SIZE_EXPECTED
    _EXAMPLES = ("512KiB", "50GiB")
    _NUMBERS = (int,)

    def __init__(self, nbytes: int, *, text: str | None = None) -> None:
        if nbytes < 0:
            raise ValueError("a size cannot be negative")
        self._bytes = nbytes
        self._text = text

    @classmethod
    def parse(cls, text: str) -> Size:
        """Parse ``512KiB``, ``50GiB``, ``1.5GB`` or a bare number of bytes.

        Raises:
            ValueError: anything else, or a fraction of a byte.
        """
        match = _SIZE_RE.fullmatch(text.strip().lower())
        if match is None or (match.group(2) not in _SIZE_UNITS and match.group(2) != ""):
            raise ValueError(SIZE_EXPECTED)
        if match.group(2) == "":
            if "." in match.group(1):
                raise ValueError(SIZE_EXPECTED)
            return cls(int(match.group(1)))
        unit_name = match.group(2)
        unit = _SIZE_UNITS[unit_name]
        number = match.group(1)
        text = number + _SIZE_SPELLING[unit_name]
        if "." in number:
            whole, frac = number.split(".")
            scaled = int(whole + frac) * unit
            div = 10 ** len(frac)
            if scaled % div:
                raise ValueError(SIZE_EXPECTED)
            return cls(scaled // div, text=text)
        return cls(int(number) * unit, text=text)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __int__(self) -> int:
        return self._bytes

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        n = self._bytes
        best = f"{n}B"
        for unit in ("tib", "gib", "mib", "kib", "tb", "gb", "mb", "kb"):
            if n and n % _SIZE_UNITS[unit] == 0:
                text = f"{n // _SIZE_UNITS[unit]}{_SIZE_SPELLING[unit]}"
                if len(text) < len(best):
                    best = text
        return best

    def __repr__(self) -> str:
        return f"Size({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Size) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(("Size", self._bytes))

    @classmethod
    def _coerce(cls, value: Any) -> Size:
        return cls.parse(value) if isinstance(value, str) else cls(value)
