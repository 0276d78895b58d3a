"""`shadowvault repair index`."""

from __future__ import annotations

import dataclasses

import typer

from node.repo import repair_index, resolve_home

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, print_json
from ._errors import CliError, user_errors
from ._passphrase import get_passphrase
from ._remote import find_daemon

repair_app = typer.Typer(help="Repair a damaged store.", no_args_is_help=True)


@repair_app.command("index")
def index(
    home: HomeOpt = None, password_file: PasswordFileOpt = None, json_out: JsonOpt = False
) -> None:
    """Rebuild the index from the packs (after `check` reports a damaged index).

    Exit codes: 0 rebuilt; 1 the store cannot be repaired or is in use.
    """
    with user_errors():
        paths = resolve_home(home)
        daemon = find_daemon(paths)
        if daemon is not None:
            # Rebuilding the index replaces it wholesale: it needs the store to itself.
            raise CliError(
                f"the node daemon (pid {daemon.pid}) has the store open: stop it "
                "(`shadowvault node stop`), run `repair index`, then start it again"
            )
        report = repair_index(paths, get_passphrase(password_file, paths))
        if json_out:
            print_json(dataclasses.asdict(report))
            return
        print(
            f"rebuilt the index from {report.packs} packs: {report.blobs} blobs, "
            f"{report.stale_records_removed} stale records removed, "
            f"{report.snapshots_resigned} snapshot records restored, "
            f"{report.damaged_tails} damaged pack tails skipped"
        )
        print("run `shadowvault check --read-data` to verify the data")
