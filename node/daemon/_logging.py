"""Logs: structlog, JSON or console, with stdlib logging (hypercorn, libp2p) routed in.

One handler on the root logger renders everything, structlog events and stdlib records
alike, through the same processors, so a libp2p or hypercorn line looks like ours and
passes the same secret filter.

Secrets never reach the output. ``redact_secrets`` runs last before rendering, after
exceptions were formatted to text, and

- replaces the value of any key named like a secret (token, passphrase, password,
  secret, authorization, cookie, key, ...), at any depth of dicts and lists;
- replaces every occurrence of a registered secret value (``add_secret``: the owner
  token, the passphrase) in any string, the event text and tracebacks included;
- masks ``Bearer <token>`` and ``token=...``-style pairs in free text.

libp2p's loggers: ``libp2p`` sets ``propagate = False`` and ``auto_connector`` pins its level
to INFO at import (daemon-field-notes.md section 1 rule 8); ``adopt_library_loggers``
undoes both and is called by ``configure_logging`` and again after ``import libp2p``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from node.config import LoggingConfig

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"token|passphrase|password|passwd|secret|authorization|cookie|credential|"
    r"api[_-]?key|private|(^|[_-])key($|[_-])",
    re.IGNORECASE,
)
_SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)\b((?:api[_-]?)?token|passphrase|password|secret|authorization)"
            r"(\s*[=:]\s*)(?!\[REDACTED\]|(?:bearer|basic)\s)[^\s,;'\"]+"
        ),
        r"\1\2" + REDACTED,
    ),
]
_MIN_SECRET = 6  # shorter registered values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Register a secret value (token, passphrase): it is masked wherever it appears."""
    if len(value) >= _MIN_SECRET:
        with _lock:
            _secrets.add(value)


def _scrub_text(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, repl in _SECRET_TEXT:
        text = pattern.sub(repl, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return value
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, bytes):
        return _scrub_text(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {
            k: REDACTED if _is_secret_key(k) else _scrub(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _scrub_text(str(value))


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret keys, registered secret values and bearer tokens."""
    for key in list(event_dict):
        if key.startswith("_"):  # structlog's own bookkeeping (the record, the logger)
            continue
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _LibraryLevel(logging.Filter):
    """Drops records of chatty libraries below their own level, whatever they set."""

    def __init__(self, levels: MutableMapping[str, int]) -> None:
        super().__init__()
        self.levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        for prefix, level in self.levels.items():
            if record.name == prefix or record.name.startswith(prefix + "."):
                return record.levelno >= level
        return True


def adopt_library_loggers() -> None:
    """Route libp2p's loggers into the root handler (call again after ``import libp2p``)."""
    top = logging.getLogger("libp2p")
    top.propagate = True
    top.handlers.clear()
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("libp2p.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)
            logger.handlers.clear()
            logger.propagate = True
    # hypercorn's default "-" error log adds a stderr handler of its own: every line twice.
    for name in ("hypercorn.error", "hypercorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def configure_logging(cfg: LoggingConfig, *, stream: TextIO | None = None) -> None:
    """Set up structlog and stdlib logging from the ``logging`` config section.

    Args:
        cfg: level, format (json or console) and libp2p's level.
        stream: where lines go (default: stderr; a terminal gets colours in console mode).
    """
    out = stream if stream is not None else sys.stderr
    level = logging.getLevelName(cfg.level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Processor
    if cfg.format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # tracebacks become text, then scrubbed
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(_LibraryLevel({"libp2p": logging.getLevelName(cfg.libp2p_level.upper())}))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    adopt_library_loggers()
