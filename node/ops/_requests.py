"""The requests of the control surface: what the CLI and the API ask an operation to do.

Requests are pydantic models so that the API validates bodies with exact messages (422,
field named) and the CLI builds them with the same checks. They live apart from
``LocalControl`` so that a command that sends none (``snapshots``, ``ls``, ...) does
not build pydantic's model machinery (about 0.1 s of start-up).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from node.repo import Subset, parse_compression

from ._policy import Duration as PolicyDuration
from ._policy import Policy, PolicyError, parse_group_by, parse_tag_lists

if TYPE_CHECKING:
    from ._backup import BackupOptions
    from ._retention import ForgetOptions


class _Strict(BaseModel):
    # defer_build: a command uses one request model; building all seven at import was
    # a fifth of the CLI's start-up.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class BackupRequest(_Strict):
    """What to back up. Paths must be absolute: the daemon does not share the CLI's cwd."""

    paths: list[str] = Field(min_length=1)
    tags: list[str] = []
    excludes: list[str] = []
    exclude_files: list[str] = []
    one_file_system: bool = False
    compression: str | None = Field(None, description="zstd level 1-19 or 'off'")
    host: str | None = None
    parent: str | None = None

    @field_validator("paths", "exclude_files")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for p in value:
            if not os.path.isabs(p):
                raise ValueError(f"must be an absolute path, got {p!r}")
        return value

    @field_validator("compression")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is not None:
            parse_compression(value)
        return value

    def options(self) -> BackupOptions:
        from ._backup import BackupOptions

        return BackupOptions(
            paths=[Path(p) for p in self.paths],
            tags=list(self.tags),
            excludes=list(self.excludes),
            exclude_files=[Path(p) for p in self.exclude_files],
            one_file_system=self.one_file_system,
            compression=None if self.compression is None else parse_compression(self.compression),
            host=self.host,
            parent=self.parent,
        )


class RestoreRequest(_Strict):
    """What to restore, and where (an absolute target directory)."""

    snapshot: str = Field(min_length=1)
    target: str
    includes: list[str] = []
    excludes: list[str] = []
    verify: bool = False
    overwrite: bool = False

    @field_validator("target")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value


class CheckRequest(_Strict):
    """How much to check: structure only, every blob, or slice N of M."""

    read_data: bool = False
    read_data_subset: str | None = Field(None, description="N/M, e.g. 2/7")
    repair: bool = False
    """Fetch corrupt or missing blobs from peers (the daemon's mesh), then check again."""

    @field_validator("read_data_subset")
    @classmethod
    def _subset(cls, value: str | None) -> str | None:
        if value is not None:
            Subset.parse(value)
        return value


class DrillRequest(_Strict):
    """A disaster-recovery drill: what to restore, the targets, the report wanted."""

    snapshot: str = "latest"
    max_rto: float | None = Field(None, ge=0, description="seconds")
    max_rpo: float | None = Field(None, ge=0, description="seconds")
    framework: str | None = None
    format: Literal["md", "json"] = "md"
    scratch: str | None = None
    keep: int = Field(100, ge=1, le=100_000)
    from_peers: bool = False
    """Restore from the peers storing for this node only (needs the daemon's mesh)."""

    @field_validator("framework")
    @classmethod
    def _framework(cls, value: str | None) -> str | None:
        from ._compliance import FRAMEWORKS

        if value is not None and value.upper() not in FRAMEWORKS:
            raise ValueError(f"must be one of {', '.join(FRAMEWORKS)}, got {value!r}")
        return value

    @field_validator("scratch")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value


class ForgetRequest(_Strict):
    """Snapshots to forget by id, or a policy (restic's rules); counts: -1 is unlimited."""

    snapshots: list[str] = []
    keep_last: int = Field(0, ge=-1)
    keep_hourly: int = Field(0, ge=-1)
    keep_daily: int = Field(0, ge=-1)
    keep_weekly: int = Field(0, ge=-1)
    keep_monthly: int = Field(0, ge=-1)
    keep_yearly: int = Field(0, ge=-1)
    keep_within: str | None = None
    """Keep everything within this of the newest, e.g. 1y2m3d4h."""
    keep_tags: list[str] = []
    """Keep snapshots with these tags; each entry ``a,b`` means all of a and b."""
    only_tags: list[str] = []
    """Only consider snapshots with these tags (``a,b`` as above)."""
    group_by: str = "host,paths"
    dry_run: bool = False
    prune: bool = False
    grace: str = "0s"

    @model_validator(mode="after")
    def _one_way(self) -> ForgetRequest:
        self.options()  # raises PolicyError (a ValueError) with the flag named
        return self

    def options(self) -> ForgetOptions:
        from ._retention import ForgetOptions, parse_span

        counts = (
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        )
        policy = None
        if any(counts) or self.keep_within or self.keep_tags:
            if self.snapshots:
                raise PolicyError("give snapshot ids or a policy, not both")
            policy = Policy(
                last=self.keep_last,
                hourly=self.keep_hourly,
                daily=self.keep_daily,
                weekly=self.keep_weekly,
                monthly=self.keep_monthly,
                yearly=self.keep_yearly,
                within=PolicyDuration.parse(self.keep_within)
                if self.keep_within
                else PolicyDuration(),
                keep_tags=tuple(parse_tag_lists(self.keep_tags)),
            )
            policy.validate()
        elif not self.snapshots:
            raise PolicyError(
                "no policy given: refusing to forget every snapshot; give snapshot ids or at "
                "least one --keep-* option"
            )
        return ForgetOptions(
            policy=policy,
            snapshots=tuple(self.snapshots),
            group_by=parse_group_by(self.group_by) if policy is not None else (),
            only_tags=parse_tag_lists(self.only_tags),
            dry_run=self.dry_run,
            prune=self.prune and not self.dry_run,
            grace_s=parse_span(self.grace),
        )


class GcRequest(_Strict):
    """A garbage collection; ``grace`` spares blobs written more recently (e.g. 2h)."""

    dry_run: bool = False
    grace: str = "0s"

    @field_validator("grace")
    @classmethod
    def _span(cls, value: str) -> str:
        from ._retention import parse_span

        parse_span(value)
        return value


class HoldRequest(_Strict):
    """Hold a snapshot until a date (2027-01-31, or a span like 90d), or release it."""

    snapshot: str = Field(min_length=1)
    until: str | None = None
    reason: str = Field("", max_length=500)
    release: bool = False

    @model_validator(mode="after")
    def _either(self) -> HoldRequest:
        if self.release == (self.until is not None):
            raise ValueError("give either an until date or release")
        if self.until is not None:
            from ._retention import parse_until

            parse_until(self.until)
        return self
