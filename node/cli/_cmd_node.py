"""`shadowvault node run`: the daemon in the foreground."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from config import example_config_text
from node.config import load_config
from node.repo import InitOptions, init_home, kdf_params_from_env, resolve_home

from ._common import HomeOpt, PasswordFileOpt
from ._errors import CliError, user_errors
from ._passphrase import (
    NoPassphraseSource,
    get_new_passphrase,
    get_passphrase,
    write_generated_passphrase,
)
from ._remote import call_daemon, find_daemon

node_app = typer.Typer(help="Run and inspect the node daemon.", no_args_is_help=True)


@node_app.command("run")
def run(
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    api: Annotated[
        str | None,
        typer.Option("--api", help="HOST:PORT of the HTTP API [config api.listen]."),
    ] = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen", help="libp2p multiaddr to listen on (repeatable) [config p2p.listen]."
        ),
    ] = None,
    bootstrap: Annotated[
        list[str] | None,
        typer.Option(
            "--bootstrap", help="Peer multiaddr ending in /p2p/ID to join through (repeatable)."
        ),
    ] = None,
    init: Annotated[
        bool,
        typer.Option(
            "--init/--no-init",
            help="Create the node home first if there is none (passphrase asked on a "
            "terminal, otherwise generated into <home>/passphrase).",
        ),
    ] = False,
) -> None:
    """Run the node in the foreground until SIGINT or SIGTERM.

    Settings come from flags, then SHADOWVAULT_* variables, then <home>/config.yaml, then
    defaults; an invalid config is refused with every problem named. Exit codes: 0
    stopped cleanly; 1 could not start (no node, bad config, wrong passphrase, in use).
    """
    # Imported here: the web stack costs 0.4 s of start-up that other commands don't need.
    import trio

    from node.daemon import run_daemon

    with user_errors():
        paths = resolve_home(home)
        flags: dict[str, object] = {}
        if api:
            flags["api.listen"] = api
        if listen:
            flags["p2p.listen"] = listen
        if bootstrap:
            flags["p2p.bootstrap"] = bootstrap
        # Validated before anything is created: a bad flag or variable changes nothing.
        load_config(paths.config, env=os.environ, flags=flags)
        if init and not paths.holds_node():
            try:
                passphrase, generated = get_new_passphrase(password_file), False
            except NoPassphraseSource:  # nothing to read and nobody to ask: generate one
                passphrase, generated = secrets.token_urlsafe(32), True
            if generated:
                write_generated_passphrase(paths, passphrase)
            init_home(
                paths, passphrase, InitOptions(kdf=kdf_params_from_env()), example_config_text()
            )
            if generated:
                print(
                    f"initialised {paths.root}; the passphrase was generated into "
                    f"{paths.generated_passphrase} (mode 0600): keep a copy somewhere safe",
                    flush=True,
                )
            else:
                print(f"initialised {paths.root}", flush=True)
        passphrase = get_passphrase(password_file, paths)
        loaded = load_config(paths.config, env=os.environ, flags=flags)
        cfg = loaded.config

        async def main() -> None:
            shutdown = trio.Event()
            async with trio.open_nursery() as nursery:
                facts = await nursery.start(
                    lambda task_status: run_daemon(
                        paths,
                        passphrase,
                        cfg,
                        config_view=loaded.flat(masked=True),
                        shutdown=shutdown,
                        task_status=task_status,
                    )
                )
                print(f"peer id   {facts['peer_id']}", flush=True)
                for i, addr in enumerate(facts["addrs"]):
                    print(f"{'addresses' if i == 0 else '':<9} {addr}", flush=True)
                print(f"api       {facts['api']}/api/v1", flush=True)
                if facts["metrics"]:
                    print(f"metrics   {facts['metrics']}", flush=True)
                print(f"token     {paths.root / 'api.token'}", flush=True)

        trio.run(main)


@node_app.command("stop")
def stop(home: HomeOpt = None) -> None:
    """Stop the running node as SIGTERM would (running jobs stop at their next file).

    Exit codes: 0 stopped (or asked to); 1 no node daemon runs for this home.
    """
    import time

    with user_errors():
        paths = resolve_home(home)
        daemon = find_daemon(paths)
        if daemon is None:
            raise CliError(f"no node daemon runs for {paths.root}")
        call_daemon(paths, "POST", "/api/v1/node/stop")
        deadline = time.monotonic() + 90
        while find_daemon(paths) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"node (pid {daemon.pid}) stopped" if find_daemon(paths) is None else "stopping")
