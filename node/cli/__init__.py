"""The `shadowvault` command line: parses arguments, calls one operation, renders it.

Exit codes are the same for every command (see ``_errors``): 0 ok, 1 error, 2 usage,
3 backup with warnings, 130 interrupted.

A run imports only the command it invokes (``_commands``: the table of every command,
its module and its summary); ``app`` is the whole command line, built on first use.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ._commands import LoadAll, build_app, selected_command

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def __getattr__(name: str) -> object:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = build_app(stand_ins=False)
    globals()[name] = value
    return value


def _limit_malloc_arenas() -> None:
    # glibc gives each thread its own malloc arena; with the sealing and flush threads
    # that fragments 8 MiB batch buffers across arenas (+30-40 MB peak RSS measured,
    # packs-field-notes.md section 3). Two arenas keep the speed and drop the waste.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def main() -> None:
    """Console-script entry point."""
    _limit_malloc_arenas()
    # The read-ahead, sealing and restore threads spend most of their time in C calls
    # that release the GIL; with the default 5 ms switch interval each of them waited up
    # to 5 ms to get it back after every syscall. 1 ms: backup 17 % faster, measured.
    sys.setswitchinterval(0.001)
    # pydantic looks for plugins in the entry points of every installed distribution
    # the first time it builds a validator: 0.1 s per command (importtime + cProfile),
    # for plugins this node never uses. A value set by the user wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        build_app(selected_command(sys.argv[1:]))()
    except LoadAll:  # a stand-in ran: argv named a command in a way not foreseen
        build_app(stand_ins=False)()


__all__ = ["app", "main"]
