"""`shadowvault key export` and `shadowvault recover`: a lost machine, back from its peers.

The kit holds the master secret, the identity and the peers that keep copies, sealed
under the node's passphrase. `recover` builds a new home from it, dials the peers, and
puts back every snapshot record they announce for us; the data follows on demand when
`restore` runs under `node run`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from config import example_config_text
from node.config import load_config
from node.repo import (
    HomePaths,
    Kit,
    init_home_from_kit,
    kdf_params_from_env,
    open_kit,
    open_repository,
    resolve_home,
    unlock_master,
    write_kit,
)

from ._cmd_init import key_app
from ._common import HomeOpt, PasswordFileOpt, opened
from ._errors import EXIT_USAGE, CliError, user_errors
from ._passphrase import get_passphrase
from ._remote import call_daemon

RECOVER_TIMEOUT = 120.0


def _peers_for_kit(home: HomeOpt, password_file: Path | None) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] | None = call_daemon(resolve_home(home), "GET", "/api/v1/peers")
    if peers is None:
        from node.p2p import PeerBook

        with opened(home, password_file) as repo:
            peers = [rec.to_json() for rec in PeerBook(repo.store).all()]
    keep = ("peer_id", "name", "addrs", "store_for", "store_at", "quota")
    return [{k: p[k] for k in keep if k in p} for p in peers]


def _store_meta(home: HomeOpt, password_file: Path | None) -> tuple[str, Any, int]:
    """The store's fixed settings (repo id, chunker, compression), from the daemon if one
    owns the store."""
    facts = call_daemon(resolve_home(home), "GET", "/api/v1/store")
    if facts is None:
        with opened(home, password_file) as repo:
            meta = repo.store.meta
            return meta.repo_id, meta.chunker, meta.compression
    from node.repo import ChunkerParams

    lo, avg, hi = facts["chunker"]
    return str(facts["repo_id"]), ChunkerParams(lo, avg, hi), int(facts["compression"])


@key_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Write the recovery kit here (mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Write the recovery kit: with it and the passphrase, a new machine becomes this node.

    Keep it offline, away from this machine. Exit codes: 0 written; 1 wrong passphrase or
    no node; 2 the file exists (use --force).
    """
    with user_errors():
        if out.exists() and not force:
            raise CliError(f"{out} exists; pass --force to replace it", EXIT_USAGE)
        paths = resolve_home(home)
        passphrase = get_passphrase(password_file, paths)
        master = unlock_master(paths, passphrase)
        from node.repo import identity_of

        repo_id, chunker, compression = _store_meta(home, password_file)
        kit = Kit(
            master=master,
            identity_seed=bytes(identity_of(paths)),
            repo_id=repo_id,
            chunker=chunker,
            compression=compression,
            peers=_peers_for_kit(home, password_file),
        )
        write_kit(out, kit, passphrase, kdf_params_from_env())
        print(
            f"recovery kit written to {out} ({len(kit.peers)} peers): keep it offline, with "
            "the passphrase; together they restore this node on a new machine"
        )


def recover(
    kit_file: Annotated[Path, typer.Option("--kit", help="The recovery kit file.")],
    home: Annotated[Path, typer.Option("--home", help="The new node home to create.")],
    peer: Annotated[
        list[str] | None,
        typer.Option(
            "--peer", help="A peer keeping our copies: multiaddr ending /p2p/ID (repeatable)."
        ),
    ] = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Become this node again on a new machine: keys from the kit, snapshots from peers.

    Creates HOME with the kit's keys and identity, adds the kit's peers and every --peer
    (as keeping our copies), pulls our announcements from them and puts back each
    snapshot record. Then `shadowvault node run` and `shadowvault restore` fetch the data
    from the peers. Exit codes: 0 recovered; 1 wrong passphrase, damaged kit, existing
    home, or no peer answered.
    """
    import trio

    from node.p2p import MeshError, MeshSettings, PeerBook, open_mesh, strip_p2p
    from protocol import WireError, parse_peer_id, peer_id_from_public

    with user_errors():
        paths = HomePaths(home.expanduser().absolute())
        passphrase = get_passphrase(password_file, paths)
        kit = open_kit(kit_file, passphrase)
        extra: list[tuple[str, str]] = []
        for addr in peer or []:
            try:
                _, _, tail = addr.rpartition("/p2p/")
                parse_peer_id(tail)
                extra.append((tail, strip_p2p(addr)))
            except (WireError, ValueError):
                raise CliError(
                    f"--peer {addr!r}: expected a multiaddr ending in /p2p/<peer id>", EXIT_USAGE
                ) from None
        init_home_from_kit(paths, kit, passphrase, kdf_params_from_env(), example_config_text())
        repo = open_repository(paths, passphrase)
        try:
            local = peer_id_from_public(bytes(repo.identity.verify_key))
            book = PeerBook(repo.store)
            for p in kit.peers:
                book.add(
                    local,
                    p["peer_id"],
                    addrs=p.get("addrs", []),
                    name=p.get("name", ""),
                    store_for=bool(p.get("store_for")),
                    store_at=bool(p.get("store_at")),
                    quota=int(p.get("quota", 0)),
                )
            for peer_id, addr in extra:
                old = book.get(parse_peer_id(peer_id))
                book.add(
                    local,
                    peer_id,
                    addrs=[addr],
                    store_for=bool(old and old.store_for),
                    store_at=True,
                    quota=old.quota if old else 0,
                )
            if not any(r.store_at for r in book.all()):
                raise CliError("no peer keeps our copies: give one with --peer", EXIT_USAGE)
            cfg = load_config(paths.config, env=os.environ).config

            async def pull() -> int:
                settings = MeshSettings(
                    listen=("/ip4/0.0.0.0/tcp/0",), dht=cfg.p2p.dht, gossip=False
                )
                async with open_mesh(repo, settings) as mesh:
                    with trio.move_on_after(RECOVER_TIMEOUT):
                        # The peer book's addresses are not in the fresh host's peerstore:
                        # dial each holder through Mesh.connect, which puts them there.
                        for rec in mesh.peers.all():
                            if rec.store_at:
                                try:
                                    await mesh.connect(rec.peer_id)
                                except MeshError as exc:
                                    print(f"warning: {exc}", file=sys.stderr)
                        return len(await mesh.recover_snapshots())
                return 0

            count = trio.run(pull)
        finally:
            repo.close()
        if count == 0:
            raise CliError(
                f"{paths.root} was created with the kit's keys, but no peer gave back a "
                "snapshot: check the peers are running and keep copies for this node, then "
                "run `shadowvault node run` (it keeps pulling)"
            )
        print(
            f"recovered {count} snapshot{'s' if count != 1 else ''} into {paths.root}; "
            "start the node (`shadowvault node run`) and `shadowvault restore`: the data "
            "comes from the peers"
        )
