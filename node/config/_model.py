"""The node configuration as a pydantic model: every key, its type and its default.

``config/node.example.yaml`` documents each key; a test checks that it parses to exactly
these defaults and names every field. Values meaning "off" or "no limit" are written
``""``, ``0``, ``0s`` or ``0B`` rather than ``null``, so that every key can also be set
from one environment variable without a null syntax.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ._types import (
    Compression,
    Cron,
    HostPort,
    ListenAddr,
    Name,
    OptionalHostPort,
    PeerAddr,
    PeerId,
    rule,
)
from ._units import Duration, Size

KiB = 1 << 10
MiB = 1 << 20

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Framework = Literal["", "SOC2", "HIPAA", "GDPR", "ISO27001", "NIST"]
GroupKey = Literal["host", "paths", "tags"]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable."""

    # defer_build: commands that never read the config (forget, gc, ...) import these
    # models; building their validators at import was a tenth of the CLI's start-up.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ApiConfig(Section):
    listen: HostPort = "127.0.0.1:8734"
    cors_origins: list[str] = []


class MetricsConfig(Section):
    enabled: bool = True
    listen: OptionalHostPort = ""
    require_token: bool = True
    token: SecretStr | None = Field(default=None, json_schema_extra={"secret": True})


class P2PConfig(Section):
    listen: list[ListenAddr] = ["/ip4/0.0.0.0/tcp/4001"]
    announce: list[ListenAddr] = []
    bootstrap: list[PeerAddr] = []
    dht: bool = True
    request_window: Duration = Duration.parse("2m")
    request_timeout: Duration = Duration.parse("60s")
    fetch_concurrency: int = Field(default=4, ge=1, le=64)


class PeerConfig(Section):
    id: PeerId
    name: str = ""
    addrs: list[ListenAddr] = []
    store_for: bool = False
    store_at: bool = False
    quota: Size = Size.parse("0B")


class LoggingConfig(Section):
    level: LogLevel = "info"
    format: Literal["console", "json"] = "console"
    libp2p_level: LogLevel = "warning"


class StoreConfig(Section):
    chunk_min: Size = Size.parse("512KiB")
    chunk_avg: Size = Size.parse("1MiB")
    chunk_max: Size = Size.parse("8MiB")
    compression: Compression = 3

    @model_validator(mode="after")
    def _chunk_bounds(self) -> StoreConfig:
        # The same bounds node.repo's ChunkerParams.validate enforces (pyfastcdc's limits).
        lo, avg, hi = self.chunk_min.bytes, self.chunk_avg.bytes, self.chunk_max.bytes
        if not 64 <= lo <= MiB:
            raise rule(f"expected chunk_min between 64B and 1MiB, found {self.chunk_min}")
        if not 256 <= avg <= 4 * MiB:
            raise rule(f"expected chunk_avg between 256B and 4MiB, found {self.chunk_avg}")
        if not KiB <= hi <= 16 * MiB:
            raise rule(f"expected chunk_max between 1KiB and 16MiB, found {self.chunk_max}")
        if not lo <= avg <= hi:
            raise rule(
                f"expected chunk_min <= chunk_avg <= chunk_max, found "
                f"{self.chunk_min} / {self.chunk_avg} / {self.chunk_max}"
            )
        return self


class SchedulerConfig(Section):
    enabled: bool = True
    catch_up: bool = True
    retries: int = Field(default=3, ge=0, le=100)
    retry_backoff: Duration = Duration.parse("1m")
    retry_backoff_max: Duration = Duration.parse("1h")
    history: int = Field(default=200, ge=1, le=100_000)


class BackupSchedule(Section):
    name: Name
    cron: Cron
    paths: list[str] = Field(min_length=1)
    tags: list[str] = []
    exclude: list[str] = []
    one_file_system: bool = False
    compression: Compression = 3

    @model_validator(mode="after")
    def _must_run(self) -> BackupSchedule:
        if not self.cron:
            raise rule("expected a cron expression for a scheduled backup, found ''")
        return self


class CheckConfig(Section):
    cron: Cron = ""
    read_data_subsets: int = Field(default=0, ge=0, le=10_000)


class RetentionConfig(Section):
    cron: Cron = ""
    keep_last: int = Field(default=0, ge=0)
    keep_hourly: int = Field(default=0, ge=0)
    keep_daily: int = Field(default=0, ge=0)
    keep_weekly: int = Field(default=0, ge=0)
    keep_monthly: int = Field(default=0, ge=0)
    keep_yearly: int = Field(default=0, ge=0)
    keep_within: Duration = Duration.parse("0s")
    keep_tags: list[str] = []
    group_by: list[GroupKey] = ["host", "paths"]
    prune: bool = True

    def keeps_something(self) -> bool:
        """True if at least one rule keeps a snapshot (restic refuses an empty policy)."""
        return bool(
            self.keep_last
            or self.keep_hourly
            or self.keep_daily
            or self.keep_weekly
            or self.keep_monthly
            or self.keep_yearly
            or self.keep_within.seconds
            or self.keep_tags
        )

    @model_validator(mode="after")
    def _not_empty_when_scheduled(self) -> RetentionConfig:
        if self.cron and not self.keeps_something():
            raise rule(
                "expected at least one keep_* rule when retention.cron is set (a policy "
                "that keeps nothing would forget every snapshot), found none"
            )
        return self


class GcConfig(Section):
    cron: Cron = ""
    grace: Duration = Duration.parse("0s")
    repack_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    owner_lease: Duration = Duration.parse("90d")


class DrillConfig(Section):
    cron: Cron = ""
    from_peers: bool = False
    max_rto: Duration = Duration.parse("0s")
    max_rpo: Duration = Duration.parse("0s")
    framework: Framework = ""
    keep_reports: int = Field(default=100, ge=1, le=100_000)


class NodeConfig(Section):
    """The whole node configuration (``config.yaml``)."""

    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    p2p: P2PConfig = P2PConfig()
    peers: list[PeerConfig] = []
    logging: LoggingConfig = LoggingConfig()
    store: StoreConfig = StoreConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    backups: list[BackupSchedule] = []
    check: CheckConfig = CheckConfig()
    retention: RetentionConfig = RetentionConfig()
    gc: GcConfig = GcConfig()
    drill: DrillConfig = DrillConfig()

    @field_validator("peers")
    @classmethod
    def _unique_peers(cls, peers: list[PeerConfig]) -> list[PeerConfig]:
        seen: set[str] = set()
        for peer in peers:
            if peer.id in seen:
                raise rule(f"expected each peer once, found {peer.id!r} twice")
            seen.add(peer.id)
        return peers

    @field_validator("backups")
    @classmethod
    def _unique_backups(cls, backups: list[BackupSchedule]) -> list[BackupSchedule]:
        names: set[str] = set()
        for job in backups:
            if job.name in names:
                raise rule(f"expected each backup name once, found {job.name!r} twice")
            names.add(job.name)
        return backups
