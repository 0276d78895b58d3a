"""The CLI's way through a running daemon: the same calls as ``LocalControl``, over HTTP.

A daemon that owns a home writes ``<home>/daemon.json`` (its pid and API URL). When that
file names a live process, every command goes through the API with the owner token from
``<home>/api.token`` (or ``$SHADOWVAULT_API_TOKEN``); results come back as the same JSON
the local call returns, so output and exit codes do not depend on which path was taken.
Long operations are jobs: the CLI starts one and follows its NDJSON event stream; Ctrl-C
cancels the job before exiting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from node.ops import Cancelled
from node.repo import HomePaths, RepoError

if TYPE_CHECKING:
    import httpx

    from node.ops import (
        BackupRequest,
        CheckRequest,
        DrillRequest,
        ForgetRequest,
        GcRequest,
        HoldRequest,
        Progress,
        RestoreRequest,
    )

DAEMON_FILE = "daemon.json"
TOKEN_FILE = "api.token"  # noqa: S105 - a file name


class RemoteError(RepoError):
    """The daemon refused or failed a request; ``str()`` is its message."""


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """A running daemon, from its ``daemon.json``."""

    pid: int
    url: str


def find_daemon(home: HomePaths) -> DaemonInfo | None:
    """The daemon that owns ``home``, if one is running."""
    try:
        facts = json.loads((home.root / DAEMON_FILE).read_text())
        pid, url = int(facts["pid"]), str(facts["api"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # stale file left by a killed daemon
    except PermissionError:
        pass  # alive, owned by another user
    return DaemonInfo(pid, url)


def _token(home: HomePaths) -> str:
    if os.environ.get("SHADOWVAULT_API_TOKEN"):
        return os.environ["SHADOWVAULT_API_TOKEN"].strip()
    try:
        return (home.root / TOKEN_FILE).read_text().strip()
    except OSError as exc:
        raise RepoError(
            f"a node daemon runs for {home.root} but its token cannot be read "
            f"({exc.strerror}); set SHADOWVAULT_API_TOKEN"
        ) from None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"the node answered {response.status_code} {response.reason_phrase}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # pydantic validation errors: name each field
        parts = []
        for err in detail:
            where = ".".join(str(x) for x in err.get("loc", [])[1:]) or "request"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return "; ".join(parts)
    return str(detail or f"the node answered {response.status_code}")


class RemoteControl:
    """``LocalControl``'s operations, run by the daemon at ``url``."""

    def __init__(self, daemon: DaemonInfo, home: HomePaths) -> None:
        import httpx  # here: 0.1 s of import that local commands don't need

        self.daemon = daemon
        self._http = httpx.Client(
            base_url=daemon.url,
            headers={"Authorization": f"Bearer {_token(home)}"},
            timeout=httpx.Timeout(60.0, connect=5.0),
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API request; its JSON answer, or ``RemoteError`` with the node's message."""
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteError(
                f"the node daemon (pid {self.daemon.pid}) does not answer at "
                f"{self.daemon.url}: {exc}"
            ) from None
        if response.status_code >= 400:
            raise RemoteError(_message(response))
        return response.json()

    def snapshots(
        self, tags: list[str] | None = None, paths: list[str] | None = None
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            "GET", "/api/v1/snapshots", params={"tag": tags or [], "path": paths or []}
        )
        return result

    def snapshot(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/api/v1/snapshots/{ref}")
        return result

    def ls(self, ref: str, path: str = "/", recursive: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            "GET",
            f"/api/v1/snapshots/{ref}/ls",
            params={"path": path, "recursive": recursive},
        )
        return result

    def find(self, pattern: str, ref: str | None = None) -> list[dict[str, Any]]:
        params = {"pattern": pattern, **({"snapshot": ref} if ref else {})}
        result: list[dict[str, Any]] = self.call("GET", "/api/v1/find", params=params)
        return result

    def diff(self, first: str, second: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            "GET", "/api/v1/diff", params={"first": first, "second": second}
        )
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/api/v1/stats")
        return result

    def dump(self, ref: str, path: str, out: BinaryIO) -> int:
        n = 0
        with self._http.stream(
            "GET", f"/api/v1/snapshots/{ref}/dump", params={"path": path}
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise RemoteError(_message(response))
            for data in response.iter_bytes():
                out.write(data)
                n += len(data)
        return n

    def restore_size(self, ref: str) -> int:
        return int(self.snapshot(ref).get("summary", {}).get("bytes_processed", 0))

    def check_size(self, request: CheckRequest) -> int | None:
        return None  # the job's events carry the total

    def backup(self, request: BackupRequest, progress: Progress | None = None) -> dict[str, Any]:
        return self._job("/api/v1/backups", request.model_dump(), progress)

    def restore(self, request: RestoreRequest, progress: Progress | None = None) -> dict[str, Any]:
        return self._job("/api/v1/restores", request.model_dump(), progress)

    def check(self, request: CheckRequest, progress: Progress | None = None) -> dict[str, Any]:
        return self._job("/api/v1/checks", request.model_dump(), progress)

    def drill(self, request: DrillRequest, progress: Progress | None = None) -> dict[str, Any]:
        return self._job("/api/v1/drills", request.model_dump(), progress)

    def drills(self, limit: int | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            "GET", "/api/v1/drills", params={"limit": limit or 10_000}
        )
        return result

    def forget(self, request: ForgetRequest, progress: Progress | None = None) -> dict[str, Any]:
        return self._job("/api/v1/forget", request.model_dump(), progress)

    def gc(self, request: GcRequest, progress: Progress | None = None) -> dict[str, Any]:
        return self._job("/api/v1/gc", request.model_dump(), progress)

    def hold(self, request: HoldRequest) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/api/v1/holds", json=request.model_dump())
        return result

    def holds(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/api/v1/holds")
        return result

    def audit(self, since_ns: int | None = None) -> list[dict[str, Any]]:
        params = {"since_ns": since_ns} if since_ns is not None else {}
        result: list[dict[str, Any]] = self.call("GET", "/api/v1/audit", params=params)
        return result

    def audit_verify(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/api/v1/audit/verify")
        return result

    def _job(self, path: str, body: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        job = self.call("POST", path, json=body)
        try:
            final = self._follow(job["id"], progress)
        except KeyboardInterrupt:
            self.call("DELETE", f"/api/v1/jobs/{job['id']}")
            raise
        if final["state"] == "succeeded":
            result: dict[str, Any] = final["result"]
            return result
        error = final.get("error") or {}
        if final["state"] == "cancelled":
            raise Cancelled(error.get("message", "the job was cancelled"))
        raise RemoteError(error.get("message", f"job {job['id']} failed"))

    def _follow(self, job_id: str, progress: Progress | None) -> dict[str, Any]:
        for event in self._events(job_id):
            if event["event"] == "end":
                job: dict[str, Any] = event["job"]
                return job
            if progress is not None:
                progress(int(event["files"]), int(event["bytes"]))
        # The stream ended without an outcome (daemon stopping): ask once more.
        job = self.call("GET", f"/api/v1/jobs/{job_id}")
        if job["state"] in ("queued", "running"):
            raise RemoteError(f"lost track of job {job_id}: the node daemon stopped answering")
        return job

    def _events(self, job_id: str) -> Iterator[dict[str, Any]]:
        import httpx

        try:
            with self._http.stream(
                "GET", f"/api/v1/jobs/{job_id}/events", timeout=httpx.Timeout(None, connect=5.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteError(_message(response))
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError:
            return


def call_daemon(home: HomePaths, method: str, path: str, **kwargs: Any) -> Any:
    """One API call to the daemon that owns ``home``; None when no daemon runs.

    Raises:
        RemoteError: the daemon refused or failed the request.
    """
    daemon = find_daemon(home)
    if daemon is None:
        return None
    remote = RemoteControl(daemon, home)
    try:
        return remote.call(method, path, **kwargs)
    finally:
        remote.close()
