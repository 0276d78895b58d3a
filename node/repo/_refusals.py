"""Refused requests in the audit log, aggregated so a flood cannot grow it without bound.

Refusals (a forged, replayed or stale peer request; an API call without a valid token or
with too small a role) are security-relevant, but an attacker can make them as fast as
the network allows, and new peer ids cost nothing. So they are counted in memory and
written as at most ``max_sources + 1`` entries per window (default one minute): one
``refused`` entry per (source, reason) with its count, the first ``max_sources`` sources
of the window by name and the rest together under ``source: "others"`` with how many
distinct sources that was. The log then grows by a bounded number of entries a minute
however hard it is hammered.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

WINDOW_S = 60.0
MAX_SOURCES = 16
OTHERS = "others"

Append = Callable[[str, dict[str, Any]], object]
"""``append_audit`` bound to a repository: (action, details)."""


class RefusalAudit:
    """Counts refusals per window and writes them as aggregated ``refused`` entries.

    ``note`` only touches memory (call it anywhere, from any thread); ``flush`` writes
    the windows that have ended (blocking: run it in a worker thread), ``flush(force=True)``
    also the current one (at shutdown).

    Args:
        append: writes one audit entry.
        via: where the refusals happen (``p2p``, ``api``), recorded in each entry.
        window_s: seconds per window.
        max_sources: sources named per window before the rest are lumped together.
        clock: unix time source.
    """

    def __init__(
        self,
        append: Append,
        *,
        via: str,
        window_s: float = WINDOW_S,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._append = append
        self._via = via
        self._window = window_s
        self._max_sources = max_sources
        self._clock = clock
        self._lock = threading.Lock()
        # window start -> (source, reason) -> count; and the sources lumped per window
        self._counts: dict[float, dict[tuple[str, str], int]] = {}
        self._others: dict[float, set[str]] = {}

    def note(self, source: str, reason: str) -> None:
        """Count one refusal of a request from ``source`` (peer id, client address)."""
        start = self._clock() // self._window * self._window
        with self._lock:
            counts = self._counts.setdefault(start, {})
            key = (source, reason)
            if key not in counts:
                named = {s for s, _ in counts if s != OTHERS}
                if source not in named and len(named) >= self._max_sources:
                    others = self._others.setdefault(start, set())
                    if len(others) < 100_000:  # memory bound too; the count stays exact
                        others.add(source)
                    key = (OTHERS, reason)
            counts[key] = counts.get(key, 0) + 1

    def flush(self, *, force: bool = False) -> int:
        """Write the entries of every ended window (all windows with ``force``).

        Returns:
            Entries written.
        """
        now_start = self._clock() // self._window * self._window
        with self._lock:
            done = sorted(w for w in self._counts if force or w < now_start)
            batches = [(w, self._counts.pop(w), self._others.pop(w, set())) for w in done]
        written = 0
        for start, counts, others in batches:
            for (source, reason), count in sorted(counts.items()):
                details: dict[str, Any] = {
                    "via": self._via,
                    "source": source,
                    "reason": reason,
                    "count": count,
                    "from": _iso(start),
                    "to": _iso(start + self._window),
                }
                if source == OTHERS:
                    details["sources"] = len(others)
                self._append("refused", details)
                written += 1
        return written


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()
