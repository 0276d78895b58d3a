"""The node daemon: a trio process holding the store and serving the HTTP API.

Terms:
    owner token: the admin bearer token written at first start to ``<home>/api.token``.
"""

from ._config_schedules import observe_fire as observe_fire
from ._config_schedules import scheduler_options as scheduler_options
from ._config_schedules import schedules_from_config as schedules_from_config
from ._jobs import JOB_PREFIX as JOB_PREFIX
from ._logging import REDACTED as REDACTED
from ._logging import add_secret as add_secret
from ._logging import adopt_library_loggers as adopt_library_loggers
from ._logging import configure_logging as configure_logging
from ._logging import redact_secrets as redact_secrets
from ._metrics import StoreFacts as StoreFacts
from ._metrics import api_refused as api_refused
from ._metrics import backup_failed as backup_failed
from ._metrics import backup_started as backup_started
from ._metrics import check_failed as check_failed
from ._metrics import check_started as check_started
from ._metrics import count_error as count_error
from ._metrics import error_kind as error_kind
from ._metrics import job_finished as job_finished
from ._metrics import job_queued as job_queued
from ._metrics import job_started as job_started
from ._metrics import measure_store as measure_store
from ._metrics import observe_backup as observe_backup
from ._metrics import observe_check as observe_check
from ._metrics import observe_job as observe_job
from ._metrics import observe_restore as observe_restore
from ._metrics import refresh_store_metrics as refresh_store_metrics
from ._metrics import restore_failed as restore_failed
from ._metrics import restore_started as restore_started
from ._metrics import scheduler_missed as scheduler_missed
from ._metrics import scheduler_next_run as scheduler_next_run
from ._metrics import scheduler_run as scheduler_run
from ._metrics import set_build_info as set_build_info
from ._metrics_http import MetricsMiddleware as MetricsMiddleware
from ._metrics_http import create_metrics_app as create_metrics_app
from ._metrics_http import install_metrics as install_metrics
from ._metrics_http import metrics_dependencies as metrics_dependencies
from ._metrics_http import metrics_router as metrics_router
from ._metrics_http import render_metrics as render_metrics
from ._metrics_http import serve_metrics as serve_metrics
from ._service import run_daemon as run_daemon
from ._tokens import ROLES as ROLES
from ._tokens import create_token as create_token
from ._tokens import ensure_owner_token as ensure_owner_token
from ._tokens import list_tokens as list_tokens
from ._tokens import revoke_token as revoke_token

__all__ = [
    "JOB_PREFIX",
    "MetricsMiddleware",
    "REDACTED",
    "ROLES",
    "StoreFacts",
    "add_secret",
    "adopt_library_loggers",
    "api_refused",
    "backup_failed",
    "backup_started",
    "check_failed",
    "check_started",
    "configure_logging",
    "count_error",
    "create_metrics_app",
    "create_token",
    "ensure_owner_token",
    "error_kind",
    "install_metrics",
    "job_finished",
    "job_queued",
    "job_started",
    "list_tokens",
    "measure_store",
    "metrics_dependencies",
    "metrics_router",
    "observe_backup",
    "observe_check",
    "observe_fire",
    "observe_job",
    "observe_restore",
    "redact_secrets",
    "refresh_store_metrics",
    "render_metrics",
    "restore_failed",
    "restore_started",
    "revoke_token",
    "run_daemon",
    "scheduler_missed",
    "scheduler_next_run",
    "scheduler_options",
    "scheduler_run",
    "schedules_from_config",
    "serve_metrics",
    "set_build_info",
]
