"""What a CLI command loads before it does anything.

Every command pays for every module the CLI imports at start-up. The mesh (libp2p,
about 1 s and 50 MB), the daemon (FastAPI, hypercorn) and trio belong to the commands
that use them: ``node run``, ``recover`` and the daemon's own process. ``node.p2p``
loads its modules on first use, so forget and gc read other owners' retention records
(``node.p2p._retain``) without the host.

A run imports only the command it invokes (``node.cli._commands``); ``node.ops`` and
``node.config`` load their modules on first use. The tests below run the real CLI in a
child process and list what it imported: at start-up, for each command's ``--help``, and
for whole runs of ``snapshots`` and ``forget --prune``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from node.cli._commands import COMMANDS, Entry, LoadAll, build_app, selected_command

_HEAVY = ("libp2p", "fastapi", "hypercorn", "starlette", "trio", "node.daemon")

# Runs the console script's main() and writes the modules it loaded to argv[1] at exit;
# argv[2] is the shadowvault script (Node.run's prefix), the rest its arguments.
_PROBE = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = sys.argv[2:]
from node.cli import main
main()
"""

# Modules that only some commands need: each must stay out of every other command.
_ONLY_FOR: dict[str, set[str]] = {
    "node.ops._backup": {"backup"},
    "node.ops._archiver": {"backup"},
    "pathspec": {"backup"},  # restore loads it only for --include/--exclude
    "node.ops._restore": {"restore", "drill"},
    "node.ops._drill": {"drill"},
    "node.ops._compliance": {"drill"},
    "node.ops._retention": {"forget", "gc", "hold", "holds", "audit", "key"},
    "node.ops._requests": {"backup", "restore", "check", "forget", "gc", "hold", "drill"},
    # the config: forget and gc read gc.owner_lease; the others their sections
    **{
        m: {"forget", "gc", "init", "key", "config", "node", "drill", "recover"}
        | {"id", "status", "peers"}
        for m in ("node.config._model", "yaml")
    },
    "psutil": {"id"},
    "node.p2p._state": {"forget", "gc", "hold", "holds", "audit", "key"},
}


def _run_loaded(node: Any, args: list[str], tmp_path: Path) -> list[str]:
    """The modules a real run of ``shadowvault *args`` on ``node`` imported (exit 0)."""
    out = tmp_path / "modules.json"
    node.run(*args, prefix=[sys.executable, "-c", _PROBE, str(out)])
    modules: list[str] = json.loads(out.read_text())
    return modules


def _matching(loaded: list[str], names: Iterable[str]) -> list[str]:
    """The packages or modules in ``names`` that ``loaded`` holds (or a submodule of)."""
    return sorted({n for n in names for m in loaded if m == n or m.startswith(n + ".")})


def test_the_cli_starts_without_the_mesh_or_the_daemon() -> None:
    probe = "import json, sys, node.cli\nprint(json.dumps(sorted(m for m in sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    heavy = sorted({h for h in _HEAVY for m in loaded if m == h or m.startswith(h + ".")})
    assert heavy == [], f"the CLI imports at start-up: {heavy}"
    ours = sorted(m for m in loaded if m.startswith("node."))
    assert ours == ["node.cli", "node.cli._commands"], "import node.cli loads commands"


def test_the_command_table_matches_the_commands() -> None:
    # Names, order and summaries as typer lists the real commands.
    real = typer.main.get_command(build_app(stand_ins=False))
    assert isinstance(real, typer.core.TyperGroup)
    listed = [
        (name, (cmd.help or "").split("\n\n")[0].strip()) for name, cmd in real.commands.items()
    ]
    assert listed == [(e.name, e.summary) for e in COMMANDS]


def test_help_lists_the_commands_as_the_real_ones_do() -> None:
    runner = CliRunner()
    env = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    for argv in (["--help"], [], ["bogus"]):
        stand_in = runner.invoke(build_app(), argv, env=env)
        real = runner.invoke(build_app(stand_ins=False), argv, env=env)
        assert (stand_in.exit_code, stand_in.output) == (real.exit_code, real.output), argv
    assert "peers" in runner.invoke(build_app(), ["--help"], env=env).output


def test_a_stand_in_that_runs_asks_for_every_command() -> None:
    # main() then builds the whole app and runs argv again (`shadowvault -- gc` is one
    # way to reach a stand-in if the selection did not know `--`).
    result = CliRunner().invoke(build_app(), ["snapshots", "--json"])
    assert isinstance(result.exception, LoadAll)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["forget", "--keep-last", "1"], "forget"),
        (["--", "gc"], "gc"),
        (["--help"], None),
        (["--help", "gc"], None),
        (["bogus"], None),
        ([], None),
    ],
    ids=["command", "after-dashes", "help", "help-first", "unknown", "none"],
)
def test_the_invoked_command_is_found_in_argv(argv: list[str], command: str | None) -> None:
    assert selected_command(argv) == command


@pytest.fixture(scope="module")
def help_modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """For each command, the modules ``shadowvault <command> --help`` imported.

    The children run side by side: one at a time, 26 interpreters took half a minute.
    """
    out = tmp_path_factory.mktemp("help-modules")
    children = {
        e.name: subprocess.Popen(
            [sys.executable, "-c", _PROBE, str(out / e.name), "shadowvault", e.name, "--help"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for e in COMMANDS
    }
    for name, child in children.items():
        assert child.wait(timeout=120) == 0, f"`{name} --help` failed"
    return {name: json.loads((out / name).read_text()) for name in children}


@pytest.mark.parametrize("entry", COMMANDS, ids=[e.name for e in COMMANDS])
def test_each_command_loads_only_its_own_modules(
    entry: Entry, help_modules: dict[str, list[str]]
) -> None:
    loaded = help_modules[entry.name]
    assert _matching(loaded, _HEAVY) == [], f"`{entry.name} --help` loads the mesh or daemon"
    commands = {m for m in loaded if m.startswith("node.cli._cmd_")}
    own = {f"node.cli.{entry.module}", *(f"node.cli.{x}" for x in entry.extends)}
    # _cmd_recover adds `key export` to the group _cmd_init defines
    if "node.cli._cmd_recover" in own:
        own.add("node.cli._cmd_init")
    assert commands == own, f"`{entry.name}` imports other commands' modules"
    wrong = [m for m in _matching(loaded, _ONLY_FOR) if entry.name not in _ONLY_FOR[m]]
    assert wrong == [], f"`{entry.name} --help` loads {wrong}"


def test_listing_snapshots_loads_no_operation_config_or_mesh(
    populated: Any, tmp_path: Path
) -> None:
    loaded = _run_loaded(populated.node, ["snapshots"], tmp_path)
    assert "node.ops._browse" in loaded  # it did run
    wrong = _matching(loaded, [*_ONLY_FOR, *_HEAVY, "rich", "httpx", "node.p2p._peers"])
    assert wrong == [], f"`snapshots` loads {wrong}"


def test_forget_and_gc_load_retention_only(populated_copy: Any, tmp_path: Path) -> None:
    args = ["forget", "--keep-last", "1", "--prune", "--json"]
    loaded = _run_loaded(populated_copy.node, args, tmp_path)
    assert "node.ops._retention" in loaded and "node.repo._gc" in loaded  # it did run
    wrong = [m for m in _matching(loaded, _ONLY_FOR) if "forget" not in _ONLY_FOR[m]]
    # no other owner's data here: the lease decides nothing, so the config is not read
    wrong += _matching(loaded, [*_HEAVY, "rich", "httpx", "node.p2p._host", "yaml"])
    wrong += _matching(loaded, ["node.config._model", "node.config._load"])
    assert wrong == [], f"`forget --prune` loads {wrong}"


def _hold_for_another_owner(node: Any) -> None:
    """Store one FOREIGN blob held for another owner (as a holder's replication does)."""
    import os

    from node.p2p import MeshState
    from node.repo import BlobKind, HomePaths, open_repository
    from protocol import peer_id_from_public

    repo = open_repository(HomePaths(node.home), node.passphrase)
    try:
        with repo.store.writer() as w:
            blob = w.put(os.urandom(300), BlobKind.FOREIGN, 0)
            w.flush()
        MeshState(repo.store).record_held(peer_id_from_public(os.urandom(32)), [(blob, 300)])
    finally:
        repo.close()


@pytest.mark.parametrize("command", [["gc"], ["forget", "--keep-last", "1", "--prune"]])
def test_an_invalid_config_stops_gc_when_it_holds_other_owners_data(
    populated_copy: Any, command: list[str]
) -> None:
    # The lease (gc.owner_lease) decides when other owners' data may go: with such data
    # here, a config that does not load is an error, never a silent default.
    node = populated_copy.node
    _hold_for_another_owner(node)
    (node.home / "config.yaml").write_text("gc:\n  owner_lease: soon\n")
    result = node.run(*command, expect=1)
    assert "gc.owner_lease" in result.stderr
