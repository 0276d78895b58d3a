"""What a check reports: problems, counts, and the slices of ``--read-data-subset``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the store, precise enough to act on."""

    what: str
    """A stable code: missing_pack, truncated_pack, damaged_pack, bad_index_record,
    index_mismatch, orphan_pack, corrupt_blob, missing_blob."""
    detail: str
    blob: str | None = None
    pack: int | None = None

    def __str__(self) -> str:
        where = []
        if self.blob:
            where.append(f"blob {self.blob[:16]}")
        if self.pack is not None:
            where.append(f"pack {self.pack:08d}")
        return f"{', '.join(where) or 'store'}: {self.detail}"


@dataclass
class CheckReport:
    """What a check looked at and what it found."""

    packs: int = 0
    blobs: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    unindexed_entries: int = 0
    """Pack entries no index record names: garbage gc swept but has not rewritten yet."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Subset:
    """The ``n``-th (1-based) of ``m`` slices of all blobs, chosen by blob id."""

    n: int
    m: int

    @classmethod
    def parse(cls, text: str) -> Subset:
        """Parse ``N/M``.

        Raises:
            ValueError: not of that form, or not 1 <= N <= M.
        """
        try:
            n_text, m_text = text.split("/")
            n, m = int(n_text), int(m_text)
        except ValueError:
            raise ValueError(f"expected N/M (e.g. 2/7), got {text!r}") from None
        if not 1 <= n <= m:
            raise ValueError(f"need 1 <= N <= M in N/M, got {text!r}")
        return cls(n, m)

    def contains(self, blob_id: bytes) -> bool:
        return int.from_bytes(blob_id[:8], "big") % self.m == self.n - 1


ProgressFn = Callable[[int, int], None]
"""Called with (bytes read so far, blobs read so far)."""
