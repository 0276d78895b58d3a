"""`shadowvault init` and `shadowvault key passwd`."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from config import example_config_text
from node.config import load_config
from node.repo import (
    ChunkerParams,
    HomeError,
    HomePaths,
    InitOptions,
    change_passphrase,
    identity_of,
    init_home,
    kdf_params_from_env,
    parse_compression,
    resolve_home,
)

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, print_json
from ._errors import CliError, user_errors
from ._passphrase import get_new_passphrase, get_passphrase, write_generated_passphrase
from ._remote import RemoteError, call_daemon
from ._sizes import parse_size


def init(
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    generate_passphrase: Annotated[
        bool,
        typer.Option(
            "--generate-passphrase",
            help="Generate a random passphrase into <home>/passphrase (mode 0600).",
        ),
    ] = False,
    chunk_min: Annotated[
        str | None, typer.Option(help="Smallest chunk [default: store.chunk_min, 512KiB].")
    ] = None,
    chunk_avg: Annotated[
        str | None, typer.Option(help="Average chunk [default: store.chunk_avg, 1MiB].")
    ] = None,
    chunk_max: Annotated[
        str | None, typer.Option(help="Largest chunk [default: store.chunk_max, 8MiB].")
    ] = None,
    compression: Annotated[
        str | None,
        typer.Option(help="zstd level 1-19 or 'off' [default: store.compression, 3]."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a node home: keys, identity, store and config.

    The store settings not given as flags come from the config: a config.yaml already in
    the home, then SHADOWVAULT_STORE__* variables; they are fixed for the store's life.

    Exit codes: 0 created; 1 the home already holds a node, no passphrase, or an invalid
    config; 2 a bad flag.
    """
    with user_errors():
        paths = resolve_home(home)
        if paths.holds_node():
            raise HomeError(f"{paths.root} already holds a node; refusing to overwrite it")
        store = load_config(paths.config, env=os.environ).config.store
        try:
            chunker = ChunkerParams(
                parse_size(chunk_min) if chunk_min is not None else store.chunk_min.bytes,
                parse_size(chunk_avg) if chunk_avg is not None else store.chunk_avg.bytes,
                parse_size(chunk_max) if chunk_max is not None else store.chunk_max.bytes,
            )
            chunker.validate()
            level = parse_compression(compression) if compression is not None else store.compression
            kdf = kdf_params_from_env()
        except ValueError as exc:
            raise CliError(str(exc), 2) from exc
        generated = False
        if generate_passphrase:
            passphrase = secrets.token_urlsafe(32)
            generated = True
            # Written first, so a leftover file stops init before anything is created.
            write_generated_passphrase(paths, passphrase)
        else:
            passphrase = get_new_passphrase(password_file)
        options = InitOptions(chunker=chunker, compression=level, kdf=kdf)
        try:
            repo_id = init_home(paths, passphrase, options, example_config_text())
        except BaseException:
            if generated:
                paths.generated_passphrase.unlink(missing_ok=True)
            raise
        pub = bytes(identity_of(paths).verify_key).hex()
        if json_out:
            print_json(
                {
                    "home": str(paths.root),
                    "repo_id": repo_id,
                    "identity": pub,
                    "passphrase_file": str(paths.generated_passphrase) if generated else None,
                }
            )
            return
        print(f"created node home {paths.root}")
        print(f"  store    {paths.store}  (repo id {repo_id})")
        print(f"  identity ed25519:{pub}")
        if generated:
            print(
                f"  passphrase generated into {paths.generated_passphrase} (mode 0600): "
                "copy it somewhere safe; without it the backups cannot be read",
                file=sys.stderr,
            )


key_app = typer.Typer(help="Manage the key that protects the node's data.", no_args_is_help=True)


@key_app.command("passwd")
def passwd(
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    new_password_file: Annotated[
        Path | None,
        typer.Option(
            "--new-password-file",
            help="Read the new passphrase from this file (else $SHADOWVAULT_NEW_PASSWORD or a prompt).",
        ),
    ] = None,
) -> None:
    """Change the passphrase. The master key is re-wrapped; no data is re-encrypted.

    Exit codes: 0 changed; 1 wrong current passphrase or no new one (nothing changed).
    """
    from node.ops import record_key_change  # retention and the mesh's state: only here

    with user_errors():
        paths = resolve_home(home)
        old = get_passphrase(password_file, paths)
        new = get_new_passphrase(new_password_file, env_prefix="SHADOWVAULT_NEW")
        change_passphrase(paths, old, new)
        if not record_key_change(paths, new) and not _key_change_via_daemon(paths):
            print("note: the store is busy, so the audit log does not record this change")
        if paths.generated_passphrase.exists():
            paths.generated_passphrase.unlink()
            print(f"removed the old generated passphrase file {paths.generated_passphrase}")
        print("passphrase changed")


def _key_change_via_daemon(paths: HomePaths) -> bool:
    """Have the running daemon, which owns the store, log the change (it checks that
    the key file really changed). False if no daemon answers."""
    try:
        return call_daemon(paths, "POST", "/api/v1/audit/key-change") is not None
    except RemoteError:
        return False
