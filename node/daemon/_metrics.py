"""Prometheus metrics of the daemon and of local operations (backup, restore, check, jobs).

Every series lives on prometheus_client's default registry, defined once at import: a
daemon is one process, and metric objects made per app fail the second time with
"Duplicated timeseries" (daemon-field-notes.md section 3.6). The mesh defines its
``shadowvault_p2p_*`` series in ``node/p2p/_metrics.py``, retention its gc/forget series.

Job code calls the small ``observe_*`` / ``*_started`` functions; ``_metrics_http`` serves
the series and counts API requests. Store gauges (size, blobs, packs, snapshots) come from a collector
that reads figures cached by ``refresh_store_metrics``: a scrape never touches LevelDB.

Labels are bounded: results are a closed set, API routes are route templates (a path
that matches no route is counted as ``<unmatched>``), error kinds are exception classes
of our own (anything else is ``internal``).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.ops import BackupSummary, RestoreSummary
from node.repo import BlobKind, RepoError, Repository, list_snapshots

# Backups, restores and checks run from seconds to hours.
OPERATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

RESULTS = ("ok", "warnings", "failed", "cancelled")
CHECK_RESULTS = ("ok", "problems", "failed", "cancelled")
JOB_KINDS = ("backup", "restore", "check", "forget", "gc", "drill", "replicate")
JOB_STATES = ("queued", "running")
UNMATCHED = "<unmatched>"

# -- build -------------------------------------------------------------------------------

BUILD = Info("shadowvault_build", "Version of the running node.")
START_TIME = Gauge("shadowvault_start_time_seconds", "When the daemon started (Unix time).")

# -- backups -----------------------------------------------------------------------------

BACKUPS_STARTED = Counter("shadowvault_backups_started_total", "Backups started.")
BACKUPS_FINISHED = Counter(
    "shadowvault_backups_finished_total", "Backups finished, by result.", ["result"]
)
BACKUP_DURATION = Histogram(
    "shadowvault_backup_duration_seconds",
    "Wall time of finished backups.",
    buckets=OPERATION_BUCKETS,
)
BACKUP_PROCESSED = Counter(
    "shadowvault_backup_processed_bytes_total", "Bytes of files read by backups."
)
BACKUP_ADDED = Counter(
    "shadowvault_backup_added_bytes_total", "Plaintext bytes of new (not deduplicated) chunks."
)
BACKUP_STORED = Counter(
    "shadowvault_backup_stored_bytes_total", "Bytes written to packs by backups (sealed)."
)
BACKUP_FILES = Counter(
    "shadowvault_backup_files_total", "Files seen by backups, by state.", ["state"]
)
BACKUP_DIRS = Counter(
    "shadowvault_backup_dirs_total", "Directories seen by backups, by state.", ["state"]
)
BACKUP_WARNINGS = Counter(
    "shadowvault_backup_warnings_total", "Files backups could not read (vanished, unreadable)."
)
BACKUP_DEDUP_RATIO = Gauge(
    "shadowvault_backup_dedup_ratio",
    "Bytes processed / bytes added by the last finished backup (1: nothing deduplicated).",
)
LAST_BACKUP = Gauge(
    "shadowvault_last_backup_timestamp_seconds", "When the last backup finished without failing."
)

# -- restores ----------------------------------------------------------------------------

RESTORES_STARTED = Counter("shadowvault_restores_started_total", "Restores started.")
RESTORES_FINISHED = Counter(
    "shadowvault_restores_finished_total", "Restores finished, by result.", ["result"]
)
RESTORE_DURATION = Histogram(
    "shadowvault_restore_duration_seconds",
    "Wall time of finished restores.",
    buckets=OPERATION_BUCKETS,
)
RESTORE_WRITTEN = Counter("shadowvault_restore_written_bytes_total", "Bytes written by restores.")
RESTORE_FILES = Counter("shadowvault_restore_files_total", "Files written by restores.")

# -- checks ------------------------------------------------------------------------------

CHECKS_STARTED = Counter("shadowvault_checks_started_total", "Checks started.")
CHECKS_FINISHED = Counter(
    "shadowvault_checks_finished_total", "Checks finished, by result.", ["result"]
)
CHECK_DURATION = Histogram(
    "shadowvault_check_duration_seconds", "Wall time of finished checks.", buckets=OPERATION_BUCKETS
)
CHECK_READ = Counter("shadowvault_check_read_bytes_total", "Bytes read and verified by checks.")
CHECK_PROBLEMS = Gauge("shadowvault_check_problems", "Problems found by the last finished check.")
LAST_CHECK = Gauge(
    "shadowvault_last_check_timestamp_seconds", "When the last check finished (any result)."
)

# -- retention -----------------------------------------------------------------------------

FORGET_REMOVED = Counter(
    "shadowvault_forget_snapshots_removed_total", "Snapshots removed by forget."
)
FORGET_HELD = Counter(
    "shadowvault_forget_snapshots_held_total", "Snapshots a policy would remove that holds kept."
)
GC_RUNS = Counter(
    "shadowvault_gc_runs_total", "Garbage collections finished, by result.", ["result"]
)
GC_DURATION = Histogram(
    "shadowvault_gc_duration_seconds", "Wall time of finished gc runs.", buckets=OPERATION_BUCKETS
)
GC_BLOBS_REMOVED = Counter("shadowvault_gc_blobs_removed_total", "Blobs removed by gc.")
GC_FREED = Counter("shadowvault_gc_freed_bytes_total", "Bytes of disk freed by gc.")
GC_PACKS_REWRITTEN = Counter("shadowvault_gc_packs_rewritten_total", "Packs rewritten by gc.")

# -- jobs and scheduler ------------------------------------------------------------------

JOBS = Gauge(
    "shadowvault_jobs", "Jobs queued or running now, by kind and state.", ["kind", "state"]
)
JOBS_STARTED = Counter("shadowvault_jobs_started_total", "Jobs started, by kind.", ["kind"])
JOBS_FINISHED = Counter(
    "shadowvault_jobs_finished_total", "Jobs finished, by kind and result.", ["kind", "result"]
)
JOB_DURATION = Histogram(
    "shadowvault_job_duration_seconds",
    "Wall time of jobs, by kind.",
    ["kind"],
    buckets=OPERATION_BUCKETS,
)
SCHEDULER_RUNS = Counter(
    "shadowvault_scheduler_runs_total", "Scheduled runs started, by schedule.", ["schedule"]
)
SCHEDULER_MISSED = Counter(
    "shadowvault_scheduler_missed_total",
    "Scheduled times that passed while the node was down or the previous run still ran.",
    ["schedule"],
)
SCHEDULER_RETRIES = Counter(
    "shadowvault_scheduler_retries_total", "Retries of failed scheduled runs.", ["schedule"]
)
SCHEDULER_NEXT = Gauge(
    "shadowvault_scheduler_next_run_timestamp_seconds", "Next run of each schedule.", ["schedule"]
)

# -- API ---------------------------------------------------------------------------------

API_REQUESTS = Counter(
    "shadowvault_api_requests_total",
    "HTTP API requests, by route template, method and status.",
    ["route", "method", "status"],
)
API_DURATION = Histogram(
    "shadowvault_api_request_duration_seconds",
    "HTTP API request latency (until the response started and ended), by route and method.",
    ["route", "method"],
    buckets=API_BUCKETS,
)
API_IN_FLIGHT = Gauge("shadowvault_api_requests_in_flight", "HTTP API requests being served.")
API_REFUSED = Counter(
    "shadowvault_api_refused_total",
    "HTTP API requests refused before any work, by reason.",
    ["reason"],
)

# -- errors ------------------------------------------------------------------------------

ERRORS = Counter("shadowvault_errors_total", "Errors, by kind (exception class).", ["kind"])

for _result in RESULTS:
    BACKUPS_FINISHED.labels(_result)
    RESTORES_FINISHED.labels(_result)
for _result in CHECK_RESULTS:
    CHECKS_FINISHED.labels(_result)
for _state in ("new", "changed", "unmodified"):
    BACKUP_FILES.labels(_state)
    BACKUP_DIRS.labels(_state)
for _kind in JOB_KINDS:
    JOBS_STARTED.labels(_kind)
    for _result in RESULTS:
        JOBS_FINISHED.labels(_kind, _result)
    for _state in JOB_STATES:
        JOBS.labels(_kind, _state)
for _reason in ("missing_token", "bad_token", "forbidden", "invalid_request"):
    API_REFUSED.labels(_reason)


def set_build_info(version: str | None = None) -> None:
    """Record the version and the start time (call once when the daemon starts)."""
    if version is None:
        try:
            version = metadata.version("shadowvault")
        except metadata.PackageNotFoundError:
            version = "unknown"
    BUILD.info({"version": version, "python": sys.version.split()[0]})
    START_TIME.set(time.time())


# -- operations --------------------------------------------------------------------------


def error_kind(exc: BaseException | str) -> str:
    """A bounded label for an error: our exception class in snake case, else a category."""
    if isinstance(exc, str):
        return re.sub(r"[^a-z0-9_]", "_", exc.lower())[:40] or "internal"
    if isinstance(exc, RepoError):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    if isinstance(exc, OSError):
        return "io"
    return "internal"


def count_error(exc: BaseException | str) -> None:
    """Count one error under ``error_kind(exc)``."""
    ERRORS.labels(error_kind(exc)).inc()


def backup_started() -> None:
    BACKUPS_STARTED.inc()


def observe_backup(summary: BackupSummary) -> None:
    """Record a backup that finished (its warnings make the result ``warnings``)."""
    result = "warnings" if summary.warnings else "ok"
    BACKUPS_FINISHED.labels(result).inc()
    BACKUP_DURATION.observe(summary.duration_s)
    BACKUP_PROCESSED.inc(summary.bytes_processed)
    BACKUP_ADDED.inc(summary.bytes_added)
    BACKUP_STORED.inc(summary.bytes_stored)
    BACKUP_FILES.labels("new").inc(summary.files_new)
    BACKUP_FILES.labels("changed").inc(summary.files_changed)
    BACKUP_FILES.labels("unmodified").inc(summary.files_unmodified)
    BACKUP_DIRS.labels("new").inc(summary.dirs_new)
    BACKUP_DIRS.labels("changed").inc(summary.dirs_changed)
    BACKUP_DIRS.labels("unmodified").inc(summary.dirs_unmodified)
    BACKUP_WARNINGS.inc(len(summary.warnings))
    BACKUP_DEDUP_RATIO.set(
        summary.bytes_processed / summary.bytes_added if summary.bytes_added else 1.0
    )
    LAST_BACKUP.set(time.time())


def backup_failed(duration_s: float, exc: BaseException | str | None = None) -> None:
    """Record a backup that failed (``exc`` None: it was cancelled)."""
    BACKUPS_FINISHED.labels("cancelled" if exc is None else "failed").inc()
    BACKUP_DURATION.observe(duration_s)
    if exc is not None:
        count_error(exc)


def restore_started() -> None:
    RESTORES_STARTED.inc()


def observe_restore(summary: RestoreSummary, duration_s: float) -> None:
    """Record a restore that ran to its end (errors inside it make it ``failed``)."""
    if summary.errors:
        result = "failed"
    elif summary.warnings or summary.skipped_existing:
        result = "warnings"
    else:
        result = "ok"
    RESTORES_FINISHED.labels(result).inc()
    RESTORE_DURATION.observe(duration_s)
    RESTORE_WRITTEN.inc(summary.bytes_written)
    RESTORE_FILES.inc(summary.files)


def restore_failed(duration_s: float, exc: BaseException | str | None = None) -> None:
    """Record a restore that could not finish (``exc`` None: it was cancelled)."""
    RESTORES_FINISHED.labels("cancelled" if exc is None else "failed").inc()
    RESTORE_DURATION.observe(duration_s)
    if exc is not None:
        count_error(exc)


def check_started() -> None:
    CHECKS_STARTED.inc()


class CheckOutcome(Protocol):
    """What ``observe_check`` reads of a check (``CheckReport`` has it)."""

    @property
    def ok(self) -> bool: ...
    @property
    def bytes_read(self) -> int: ...
    @property
    def problems(self) -> Sized: ...


def observe_check(report: CheckOutcome, duration_s: float) -> None:
    """Record a check that ran to its end."""
    CHECKS_FINISHED.labels("ok" if report.ok else "problems").inc()
    CHECK_DURATION.observe(duration_s)
    CHECK_READ.inc(report.bytes_read)
    CHECK_PROBLEMS.set(len(report.problems))
    LAST_CHECK.set(time.time())


def check_failed(duration_s: float, exc: BaseException | str | None = None) -> None:
    """Record a check that could not finish (``exc`` None: it was cancelled)."""
    CHECKS_FINISHED.labels("cancelled" if exc is None else "failed").inc()
    CHECK_DURATION.observe(duration_s)
    if exc is not None:
        count_error(exc)


def observe_gc(report: dict[str, Any]) -> None:
    """Record a finished gc (its ``as_dict()``; a dry run counts as ``dry_run``)."""
    GC_RUNS.labels("dry_run" if report.get("dry_run") else "ok").inc()
    GC_DURATION.observe(float(report.get("duration_s", 0.0)))
    if not report.get("dry_run"):
        GC_BLOBS_REMOVED.inc(int(report.get("blobs_removed", 0)))
        GC_FREED.inc(int(report.get("bytes_freed", 0)))
        GC_PACKS_REWRITTEN.inc(int(report.get("packs_rewritten", 0)))


def observe_forget(result: dict[str, Any]) -> None:
    """Record a finished forget (its ``as_dict()``), and its gc if it pruned."""
    if not result.get("dry_run"):
        FORGET_REMOVED.inc(len(result.get("removed", [])))
        FORGET_HELD.inc(len(result.get("held", [])))
    if result.get("gc"):
        observe_gc(result["gc"])


def job_queued(kind: str) -> None:
    JOBS.labels(kind, "queued").inc()


def job_started(kind: str, *, was_queued: bool = False) -> None:
    """A job of ``kind`` starts running (``was_queued``: it was counted by ``job_queued``)."""
    if was_queued:
        JOBS.labels(kind, "queued").dec()
    JOBS.labels(kind, "running").inc()
    JOBS_STARTED.labels(kind).inc()


def job_finished(kind: str, result: str, duration_s: float) -> None:
    """A running job ended; ``result``: ok (or succeeded), warnings, failed, cancelled."""
    JOBS.labels(kind, "running").dec()
    JOBS_FINISHED.labels(kind, _JOB_RESULTS.get(result, result)).inc()
    JOB_DURATION.labels(kind).observe(duration_s)


_JOB_RESULTS = {"succeeded": "ok"}


class FinishedJob(Protocol):
    """What ``observe_job`` reads of a job (``node.daemon``'s ``Job`` has it)."""

    kind: str
    state: str
    started: float | None
    finished: float | None


def observe_job(job: FinishedJob) -> None:
    """A ``Jobs.on_finish`` hook: count the job, by kind and final state.

    A job that never started (cancelled while queued) only counts as finished; one that
    ran also leaves the running gauge (``job_started`` put it there).
    """
    if job.started is None:
        JOBS_FINISHED.labels(job.kind, _JOB_RESULTS.get(job.state, job.state)).inc()
        return
    job_finished(job.kind, job.state, (job.finished or time.time()) - job.started)


def scheduler_run(schedule: str, *, retry: bool = False) -> None:
    """A schedule fired (or retried a failed run)."""
    SCHEDULER_RUNS.labels(schedule).inc()
    if retry:
        SCHEDULER_RETRIES.labels(schedule).inc()


def scheduler_missed(schedule: str, count: int = 1) -> None:
    """Scheduled times that passed without a run of their own (downtime, overlap)."""
    SCHEDULER_MISSED.labels(schedule).inc(count)


def scheduler_next_run(schedule: str, when: float) -> None:
    SCHEDULER_NEXT.labels(schedule).set(when)


def api_refused(reason: str) -> None:
    """An API request refused: missing_token, bad_token, forbidden or invalid_request."""
    API_REFUSED.labels(reason).inc()


# -- store gauges --------------------------------------------------------------------------


@dataclass
class StoreFacts:
    """Figures of the open store, as of ``taken`` (Unix time)."""

    taken: float = 0.0
    blobs: dict[str, int] = field(default_factory=dict)
    stored_bytes: dict[str, int] = field(default_factory=dict)
    packs: int = 0
    pack_bytes: int = 0
    snapshots: int = 0


STORE_SERIES = (
    "shadowvault_store_blobs",
    "shadowvault_store_blob_bytes",
    "shadowvault_store_size_bytes",
    "shadowvault_store_packs",
    "shadowvault_snapshots",
    "shadowvault_store_stats_timestamp_seconds",
)
"""The gauges ``StoreCollector`` yields once a store was measured."""


class StoreCollector(Collector):
    """Store gauges from the figures last cached by ``refresh_store_metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: StoreFacts | None = None

    def update(self, facts: StoreFacts) -> None:
        with self._lock:
            self._facts = facts

    def clear(self) -> None:
        with self._lock:
            self._facts = None

    def describe(self) -> Iterable[Metric]:
        return []  # figures appear only once a store was measured

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            facts = self._facts
        if facts is None:
            return
        blobs = GaugeMetricFamily(
            "shadowvault_store_blobs", "Blobs in the store, by kind.", labels=["kind"]
        )
        stored = GaugeMetricFamily(
            "shadowvault_store_blob_bytes",
            "Sealed bytes of the blobs in the store, by kind.",
            labels=["kind"],
        )
        for kind in sorted(facts.blobs):
            blobs.add_metric([kind], facts.blobs[kind])
            stored.add_metric([kind], facts.stored_bytes.get(kind, 0))
        yield blobs
        yield stored
        yield GaugeMetricFamily(
            "shadowvault_store_size_bytes", "Bytes of pack files on disk.", value=facts.pack_bytes
        )
        yield GaugeMetricFamily("shadowvault_store_packs", "Pack files.", value=facts.packs)
        yield GaugeMetricFamily(
            "shadowvault_snapshots", "Snapshots of this node in the store.", value=facts.snapshots
        )
        yield GaugeMetricFamily(
            "shadowvault_store_stats_timestamp_seconds",
            "When the store figures above were measured.",
            value=facts.taken,
        )


STORE = StoreCollector()
REGISTRY.register(STORE)


def measure_store(repo: Repository) -> StoreFacts:
    """Count the store's blobs, packs and snapshots: one scan of the index, no pack reads.

    Blocking (seconds for millions of blobs): call it in a worker thread, at start and
    after jobs that change the store, never from a scrape.
    """
    facts = StoreFacts(taken=time.time())
    for kind in BlobKind:
        facts.blobs[kind.name.lower()] = 0
        facts.stored_bytes[kind.name.lower()] = 0
    for _, loc in repo.store.iter_blobs():
        if loc is None:
            continue
        name = loc.kind.name.lower()
        facts.blobs[name] += 1
        facts.stored_bytes[name] += loc.stored_len
    packs = repo.store.pack_files()
    facts.packs = len(packs)
    facts.pack_bytes = sum(path.stat().st_size for path in packs.values())
    facts.snapshots = len(list_snapshots(repo))
    return facts


def refresh_store_metrics(repo: Repository) -> StoreFacts:
    """Measure the store (blocking, see ``measure_store``) and publish the figures."""
    facts = measure_store(repo)
    STORE.update(facts)
    return facts


def metric_names() -> Iterator[str]:
    """Names of every ``shadowvault_`` family this module defines (for docs and tests)."""
    for metric in REGISTRY.collect():
        if metric.name.startswith("shadowvault_") and not metric.name.startswith(
            "shadowvault_p2p_"
        ):
            yield metric.name
