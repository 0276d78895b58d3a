"""The CLI's single table from exception types to exit codes, and the message printer.

Exit codes (documented in every command's help):

    0  success
    1  an error: nothing or not everything was done (wrong passphrase, damaged data, ...)
    2  wrong usage (bad flag or argument)
    3  a backup finished with warnings (unreadable or vanished files)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer

from node.config import ConfigError
from node.ops import Cancelled
from node.repo import RepoError

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_WARNINGS = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An error the CLI itself detects (bad option values, missing input)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as one line per field, the way a flag error reads."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where.replace('_', '-')}: {message}" if where else message)
    return "; ".join(parts)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn our exceptions into one-line messages and exit codes, never tracebacks."""
    try:
        yield
    except CliError as exc:
        fail(str(exc), exc.code)
    except ConfigError as exc:
        # One line per problem, each naming source, key, expected and found.
        for message in exc.messages[:-1]:
            print(f"error: {message}", file=sys.stderr)
        fail(exc.messages[-1] if exc.messages else "invalid configuration")
    except RepoError as exc:
        fail(str(exc))
    except Cancelled as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
