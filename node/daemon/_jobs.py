"""Jobs: long operations (backup, restore, check, ...) owned by the daemon, not by requests.

A job runs its blocking work in a worker thread behind the daemon's CPU limiter. The
thread reports progress by assigning plain fields (no round trip to the event loop per
file) and checks for cancellation at each report by raising ``Cancelled``; so a cancelled
or shut-down job stops at its next file and leaves the store as a failed write would:
whole, synced batches only. HTTP clients watch a job by polling or by streaming its
events; a client that goes away does not affect the job.

Finished jobs are kept in LevelDB (prefix ``j``) so that ``shadowvault jobs`` shows history
across restarts; the newest ``HISTORY_KEEP`` are kept.
"""

from __future__ import annotations

import json
import secrets
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from node.ops import Cancelled, Progress
from node.repo import RepoError, Store

JOB_PREFIX = b"j"
HISTORY_KEEP = 500
_KEY_TIME = struct.Struct(">Q")
log = structlog.get_logger("shadowvault.jobs")

Work = Callable[[Progress], dict[str, Any]]
"""A job's body: runs in a thread, reports progress, returns a JSON-ready result."""


@dataclass
class Job:
    """One operation run by the daemon; ``as_dict`` is its API and history form."""

    id: str
    kind: str
    params: dict[str, Any]
    source: str
    state: str = "queued"
    """queued, running, succeeded, failed or cancelled"""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    files: int = 0
    bytes_done: int = 0
    total_bytes: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    done: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def report(self, files: int, bytes_done: int) -> None:
        """The progress callback handed to the work (called from its thread)."""
        self.files, self.bytes_done = files, bytes_done
        if self.cancel_requested.is_set():
            raise Cancelled(f"job {self.id} was cancelled")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "source": self.source,
            "params": self.params,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "progress": {
                "files": self.files,
                "bytes": self.bytes_done,
                "total_bytes": self.total_bytes,
            },
            "result": self.result,
            "error": self.error,
        }


def _error_of(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, RepoError):
        return {"kind": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, OSError):
        text = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        return {"kind": "OSError", "message": text}
    return {
        "kind": "internal",
        "message": f"internal error ({type(exc).__name__}); see the node log",
    }


class Jobs:
    """The daemon's jobs: start, watch, cancel, and the persisted history."""

    def __init__(self, store: Store, cpu_limiter: trio.CapacityLimiter) -> None:
        self._store = store
        self._limiter = cpu_limiter
        self._active: dict[str, Job] = {}
        self._recent: dict[str, Job] = {}
        self._nursery: trio.Nursery | None = None
        self._exclusive = trio.Lock()
        """Writers of new snapshots run one at a time (two backups would only contend)."""
        self.on_start: list[Callable[[Job], None]] = []
        self.on_finish: list[Callable[[Job], None]] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery every job runs in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def start(
        self,
        kind: str,
        params: dict[str, Any],
        work: Work,
        *,
        source: str = "api",
        exclusive: bool = False,
        total_bytes: int | None = None,
    ) -> Job:
        """Start ``work`` as a job and return it at once.

        Raises:
            RuntimeError: the daemon is shutting down (no job nursery).
        """
        if self._nursery is None:
            raise RuntimeError("the daemon is not accepting jobs")
        job = Job(id=secrets.token_hex(6), kind=kind, params=params, source=source)
        job.total_bytes = total_bytes
        self._active[job.id] = job
        self._nursery.start_soon(self._run, job, work, exclusive)
        return job

    async def _run(self, job: Job, work: Work, exclusive: bool) -> None:
        try:
            if exclusive:
                async with self._exclusive:
                    await self._execute(job, work)
            else:
                await self._execute(job, work)
        finally:
            job.finished = time.time()
            if job.state in ("queued", "running"):
                job.state = "cancelled"  # the daemon stopped before it could finish
                job.error = {"kind": "Cancelled", "message": "the node stopped"}
            self._active.pop(job.id, None)
            self._recent[job.id] = job
            while len(self._recent) > 50:
                self._recent.pop(next(iter(self._recent)))
            job.done.set()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._persist, job)
            for hook in self.on_finish:
                hook(job)
            log.info("job finished", job=job.id, kind=job.kind, state=job.state)

    async def _execute(self, job: Job, work: Work) -> None:
        if job.cancel_requested.is_set():
            return
        job.state, job.started = "running", time.time()
        log.info("job started", job=job.id, kind=job.kind, source=job.source)
        for hook in self.on_start:
            hook(job)
        try:
            job.result = await trio.to_thread.run_sync(work, job.report, limiter=self._limiter)
            job.state = "succeeded"
        except Cancelled:
            job.state = "cancelled"
            job.error = {"kind": "Cancelled", "message": f"job {job.id} was cancelled"}
        except Exception as exc:
            job.state = "failed"
            job.error = _error_of(exc)
            if job.error["kind"] == "internal":
                log.exception("job crashed", job=job.id, kind=job.kind)

    def _persist(self, job: Job) -> None:
        key = JOB_PREFIX + _KEY_TIME.pack(int((job.finished or 0) * 1e6)) + job.id.encode()
        try:
            self._store.put_records([(key, json.dumps(job.as_dict()).encode())], sync=False)
            old = [k for k, _ in self._store.iter_records(JOB_PREFIX)]
            if len(old) > HISTORY_KEEP:
                self._store.put_records([(k, None) for k in old[:-HISTORY_KEEP]], sync=False)
        except RepoError:
            log.warning("job history not saved", job=job.id)

    def get(self, job_id: str) -> Job | dict[str, Any] | None:
        """A live or recent job, else its history record, else None."""
        job = self._active.get(job_id) or self._recent.get(job_id)
        if job is not None:
            return job
        for record in self.history():
            if record["id"] == job_id:
                return record
        return None

    def active(self) -> list[Job]:
        return list(self._active.values())

    def history(self, limit: int = HISTORY_KEEP) -> list[dict[str, Any]]:
        """Finished jobs, newest first."""
        out = []
        for _, raw in self._store.iter_records(JOB_PREFIX):
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out[::-1][:limit]

    def cancel(self, job_id: str) -> bool:
        """Ask a running job to stop; True if it was active."""
        job = self._active.get(job_id)
        if job is None:
            return False
        job.cancel_requested.set()
        return True

    def cancel_all(self) -> None:
        for job in self._active.values():
            job.cancel_requested.set()

    async def events(self, job: Job, interval: float = 0.25) -> AsyncIterator[dict[str, Any]]:
        """Progress events until the job ends, then one final event with its outcome."""
        last: tuple[str, int, int] | None = None
        while not job.done.is_set():
            now = (job.state, job.files, job.bytes_done)
            if now != last:
                last = now
                yield {
                    "event": "progress",
                    "state": job.state,
                    "files": job.files,
                    "bytes": job.bytes_done,
                    "total_bytes": job.total_bytes,
                }
            with trio.move_on_after(interval):
                await job.done.wait()
        yield {"event": "end", "job": job.as_dict()}
