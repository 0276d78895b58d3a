"""The `shadowvault` command line: parses arguments, calls one operation, renders it.

Exit codes are the same for every command (see ``_errors``): 0 ok, 1 error, 2 usage,
3 backup with warnings, 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from ._cmd_backup import backup
from ._cmd_browse import diff, dump, find, ls, snapshots
from ._cmd_check import check, stats
from ._cmd_config import config_app
from ._cmd_drill import drill_app
from ._cmd_init import init, key_app
from ._cmd_jobs import jobs
from ._cmd_mesh import id_, peers_app, status
from ._cmd_node import node_app
from ._cmd_recover import recover
from ._cmd_repair import repair_app
from ._cmd_restore import restore
from ._cmd_retention import audit_app, forget, gc, hold, holds
from ._cmd_token import token_app

app = typer.Typer(
    name="shadowvault",
    help="ShadowVault: encrypted, deduplicated backups, kept by the peers you choose.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(init)
app.add_typer(key_app, name="key")
app.add_typer(config_app, name="config")
app.add_typer(node_app, name="node")
app.add_typer(repair_app, name="repair")
app.add_typer(token_app, name="token")
app.add_typer(drill_app, name="drill")
app.command()(backup)
app.command()(restore)
app.command()(snapshots)
app.command()(ls)
app.command()(find)
app.command()(dump)
app.command()(diff)
app.command()(check)
app.command()(stats)
app.command()(forget)
app.command()(gc)
app.command()(hold)
app.command()(holds)
app.add_typer(audit_app, name="audit")
app.command()(jobs)
app.command("id")(id_)
app.add_typer(peers_app, name="peers")
app.command()(status)
app.command()(recover)


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
    app()


__all__ = ["app", "main"]
