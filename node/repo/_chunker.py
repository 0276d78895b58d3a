"""Content-defined chunking with FastCDC (pyfastcdc).

Boundaries depend on content, so an insert in the middle of a file changes only the
chunks around it and the rest deduplicate. The gear table is seeded from the master key
(``Subkeys.chunker_seed``), as borg does, so the sizes of stored chunks do not
fingerprint known files. pyfastcdc releases the GIL in its cut loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """Chunk size bounds in bytes, fixed for a store at init.

    The defaults (512 KiB / 1 MiB / 8 MiB) keep the index small (one entry per ~1.5 MiB of
    data) while deduplicating the benchmark corpus's day 2 better than restic does
    (perf-baseline.md section 4).
    """

    min_size: int = 512 * KiB
    avg_size: int = 1 * MiB
    max_size: int = 8 * MiB

    def validate(self) -> None:
        """Raise ValueError unless pyfastcdc accepts these bounds and min <= avg <= max."""
        if not 64 <= self.min_size <= 1 * MiB:
            raise ValueError(f"chunk min size must be 64 B..1 MiB, got {self.min_size}")
        if not 256 <= self.avg_size <= 4 * MiB:
            raise ValueError(f"chunk avg size must be 256 B..4 MiB, got {self.avg_size}")
        if not 1 * KiB <= self.max_size <= 16 * MiB:
            raise ValueError(f"chunk max size must be 1 KiB..16 MiB, got {self.max_size}")
        if not self.min_size <= self.avg_size <= self.max_size:
            raise ValueError("chunk sizes must satisfy min <= avg <= max")


class Chunker:
    """Split byte streams into content-defined chunks.

    Not thread-safe (pyfastcdc's object is not); give each thread its own.
    """

    def __init__(self, params: ChunkerParams, seed: int) -> None:
        # Imported here: 25 ms and 27 modules that only backup needs, and every command
        # opens a repository (which imports this module for ChunkerParams).
        import pyfastcdc

        params.validate()
        self.params = params
        self._cdc = pyfastcdc.FastCDC(
            params.avg_size, min_size=params.min_size, max_size=params.max_size, seed=seed
        )

    def chunks_of_stream(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Yield the chunks of a binary stream.

        Each memoryview is valid only until the next one is yielded: copy it to keep it.
        """
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data

    def chunks_of_buffer(self, data: bytes | memoryview) -> Iterator[memoryview]:
        """Yield the chunks of an in-memory buffer (views into ``data``)."""
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data
