"""Which module holds each command, so that a run imports only the one it invokes.

Importing every command module and letting typer build the click group for all of them
cost each command about 0.25 s before it did anything (``python -X importtime``: the
operations, pydantic, the config model; cProfile: ``get_params_from_function`` for ~70
functions). ``shadowvault forget`` needs none of backup, restore, drill or the mesh
commands. The table below names every top-level command, where it lives and its one-line
summary; ``build_app`` registers the invoked command for real and, for help or an
unknown name, stand-ins that show the same list without importing anything.
``tests/cli/test_startup.py`` fails if the table and the real commands disagree.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer

HELP = "ShadowVault: encrypted, deduplicated backups, kept by the peers you choose."


@dataclass(frozen=True, slots=True)
class Entry:
    """One top-level command or command group.

    Attributes:
        name: what the user types (``shadowvault <name>``).
        module: the ``node.cli`` module defining it, e.g. ``_cmd_retention``.
        attr: the command function, or the ``typer.Typer`` of a group, in that module.
        group: ``attr`` is a group (``add_typer``), not a command function.
        summary: the first paragraph of its help, as ``shadowvault --help`` lists it.
        extends: modules that add subcommands to this group when imported.
    """

    name: str
    module: str
    attr: str
    summary: str
    group: bool = False
    extends: tuple[str, ...] = ()


# typer lists the commands first and then the groups, each in the order registered; the
# table keeps that order so that the stand-ins list exactly as the real commands do.
COMMANDS: tuple[Entry, ...] = (
    Entry("init", "_cmd_init", "init", "Create a node home: keys, identity, store and config."),
    Entry(
        "backup",
        "_cmd_backup",
        "backup",
        "Back up files into a new snapshot; unchanged files are not read again.",
    ),
    Entry(
        "restore", "_cmd_restore", "restore", "Restore a snapshot, or part of it, into a directory."
    ),
    Entry("snapshots", "_cmd_browse", "snapshots", "List snapshots, oldest first."),
    Entry("ls", "_cmd_browse", "ls", "List the entries of a directory in a snapshot."),
    Entry("find", "_cmd_browse", "find", "Find files by name across snapshots."),
    Entry(
        "dump", "_cmd_browse", "dump", "Write one file's bytes from a snapshot to standard output."
    ),
    Entry(
        "diff",
        "_cmd_browse",
        "diff",
        "Show what was added, removed, modified, or changed only in metadata.",
    ),
    Entry(
        "check",
        "_cmd_check",
        "check",
        "Check that the index and the packs agree and every referenced blob exists.",
    ),
    Entry(
        "stats",
        "_cmd_check",
        "stats",
        "Show how much is stored, dedup and compression ratios, and unreferenced space.",
    ),
    Entry(
        "forget",
        "_cmd_retention",
        "forget",
        "Forget snapshots by policy (restic's rules) or by id. Held snapshots stay.",
    ),
    Entry(
        "gc",
        "_cmd_retention",
        "gc",
        "Remove the data no kept snapshot needs; rewrite packs that are mostly garbage.",
    ),
    Entry(
        "hold",
        "_cmd_retention",
        "hold",
        "Hold a snapshot: no command can forget it (or collect its data) until the date.",
    ),
    Entry("holds", "_cmd_retention", "holds", "List holds (active and expired)."),
    Entry(
        "jobs",
        "_cmd_jobs",
        "jobs",
        "Show schedules (next run, last outcome), running jobs and recent history.",
    ),
    Entry("id", "_cmd_mesh", "id_", "This node's peer id and addresses."),
    Entry(
        "status",
        "_cmd_mesh",
        "status",
        "For each snapshot, the peers holding a complete copy (by their signed receipts).",
    ),
    Entry(
        "recover",
        "_cmd_recover",
        "recover",
        "Become this node again on a new machine: keys from the kit, snapshots from peers.",
    ),
    Entry(
        "key",
        "_cmd_init",
        "key_app",
        "Manage the key that protects the node's data.",
        group=True,
        extends=("_cmd_recover",),  # `key export` lives with the recovery kit
    ),
    Entry(
        "config",
        "_cmd_config",
        "config_app",
        "Show and check the node configuration (config.yaml, SHADOWVAULT_* variables).",
        group=True,
    ),
    Entry("node", "_cmd_node", "node_app", "Run and inspect the node daemon.", group=True),
    Entry("repair", "_cmd_repair", "repair_app", "Repair a damaged store.", group=True),
    Entry("token", "_cmd_token", "token_app", "API tokens: admin, operator or viewer.", group=True),
    Entry(
        "drill",
        "_cmd_drill",
        "drill_app",
        "Prove the backups restore: disaster-recovery drills and their history.",
        group=True,
    ),
    Entry(
        "audit",
        "_cmd_retention",
        "audit_app",
        "The signed, hash-chained log of destructive and security-relevant actions.",
        group=True,
    ),
    Entry(
        "peers",
        "_cmd_mesh",
        "peers_app",
        "The peers this node stores for and stores at.",
        group=True,
    ),
)

_BY_NAME = {entry.name: entry for entry in COMMANDS}


class LoadAll(Exception):
    """A stand-in was invoked (argv the selection did not foresee): load every command."""


def _new_app() -> typer.Typer:
    app = typer.Typer(
        name="shadowvault",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    # A typer app with one command and no callback runs that command as the program
    # itself (`shadowvault [OPTIONS]`); the callback keeps it a group of commands.
    app.callback()(_root)
    return app


def _root() -> None:
    pass


def _register(app: typer.Typer, entry: Entry) -> None:
    module = importlib.import_module(f"node.cli.{entry.module}")
    for extra in entry.extends:
        importlib.import_module(f"node.cli.{extra}")
    target: Any = getattr(module, entry.attr)
    if entry.group:
        app.add_typer(target, name=entry.name)
    else:
        app.command(entry.name)(target)


def _stand_in() -> None:
    raise LoadAll


def selected_command(argv: list[str]) -> str | None:
    """The top-level command ``argv`` (without the program name) invokes, if it names one.

    The root takes no option but ``--help``, so the command is the first word, or the
    word after a leading ``--``.
    """
    words = argv[1:] if argv[:1] == ["--"] else argv
    if words and words[0] in _BY_NAME:
        return words[0]
    return None


def build_app(command: str | None = None, *, stand_ins: bool = True) -> typer.Typer:
    """The ``shadowvault`` typer app with ``command`` loaded, or every command.

    Args:
        command: the one top-level command to import and register; ``None`` for all.
        stand_ins: with ``command=None``, register import-free stand-ins that list as the
            real commands do (for ``--help``, no arguments or an unknown name) instead of
            the real ones. A stand-in that is invoked raises ``LoadAll``.
    """
    app = _new_app()
    if command is not None:
        _register(app, _BY_NAME[command])
        return app
    for entry in COMMANDS:
        if stand_ins:
            app.command(
                entry.name,
                help=entry.summary,
                add_help_option=False,
                context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
            )(_stand_in)
        else:
            _register(app, entry)
    return app
