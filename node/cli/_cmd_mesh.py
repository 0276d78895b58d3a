"""`shadowvault id`, `peers add|remove|list` and `status`: the node in its mesh.

Through a running daemon these use its API (the live host: connections, addresses). Without
one, they read and edit the same records in the store: `peers add` then takes effect at
the next `node run`.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from node.config import Size, dialable_addrs, load_config
from node.repo import identity_of, resolve_home
from protocol import peer_id_from_public, peer_id_text

from ._common import HomeOpt, JsonOpt, PasswordFileOpt, control, opened, print_json
from ._errors import EXIT_ERROR, EXIT_USAGE, CliError, user_errors
from ._remote import call_daemon

peers_app = typer.Typer(help="The peers this node stores for and stores at.", no_args_is_help=True)


def _call(home: HomeOpt, method: str, path: str, **kw: Any) -> Any:
    return call_daemon(resolve_home(home), method, path, **kw)


def _local_peer_id(home: HomeOpt) -> str:
    paths = resolve_home(home)
    paths.require_node()
    return peer_id_text(peer_id_from_public(bytes(identity_of(paths).verify_key)))


def id_(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """This node's peer id and addresses.

    From a running node: the addresses it listens on. Without one: where a peer could
    reach it once it runs (the configured announce addresses, else the listen
    addresses with each interface's address in place of 0.0.0.0 or ::), marked as
    not running.
    """
    with user_errors():
        facts = _call(home, "GET", "/api/v1/id")
        if facts is not None:
            facts = {**facts, "running": True}
        else:
            paths = resolve_home(home)
            cfg = load_config(paths.config, env=os.environ).config
            peer_id = _local_peer_id(home)
            addrs = dialable_addrs(cfg.p2p.listen, cfg.p2p.announce)
            facts = {
                "peer_id": peer_id,
                "addrs": [f"{a}/p2p/{peer_id}" for a in addrs],
                "running": False,
            }
        if json_out:
            print_json(facts)
            return
        print(facts["peer_id"])
        if not facts["running"]:
            print("  (not running: where peers could reach it once it runs)")
        for addr in facts["addrs"]:
            print(f"  {addr}")


@peers_app.command("add")
def add(
    peer_id: Annotated[str, typer.Argument(help="The peer's id (12D3KooW...).")],
    addr: Annotated[
        list[str] | None, typer.Option("--addr", help="Where to reach it (multiaddr, repeatable).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A name for it.")] = "",
    store_for: Annotated[
        bool, typer.Option("--store-for", help="Keep encrypted copies of its snapshots.")
    ] = False,
    store_at: Annotated[
        bool, typer.Option("--store-at", help="Ask it to keep copies of ours.")
    ] = False,
    quota: Annotated[
        str, typer.Option("--quota", help="Most we keep for it, e.g. 50GiB (0B: no limit).")
    ] = "0B",
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add or update a peer. A peer in neither role is refused every request."""
    with user_errors():
        try:
            quota_bytes = Size.parse(quota).bytes
        except ValueError as exc:
            raise CliError(f"--quota: {exc}", EXIT_USAGE) from None
        body = {
            "peer_id": peer_id,
            "addrs": addr or [],
            "name": name,
            "store_for": store_for,
            "store_at": store_at,
            "quota": quota,
        }
        rec = _call(home, "POST", "/api/v1/peers", json=body)
        if rec is None:
            from node.p2p import PeerBook, peer_change
            from node.repo import append_audit
            from protocol import WireError, parse_peer_id

            local = parse_peer_id(_local_peer_id(home))
            with opened(home, password_file) as repo:
                book = PeerBook(repo.store)
                try:
                    before = book.get(parse_peer_id(peer_id))
                    added = book.add(
                        local,
                        peer_id,
                        addrs=addr or [],
                        name=name,
                        store_for=store_for,
                        store_at=store_at,
                        quota=quota_bytes,
                    )
                except (WireError, ValueError) as exc:
                    raise CliError(str(exc), EXIT_USAGE) from None
                change = peer_change(before, added)
                if change is not None:
                    append_audit(repo, *change)
                rec = added.to_json()
        if json_out:
            print_json(rec)
            return
        roles = [
            r for r, on in (("store-for", rec["store_for"]), ("store-at", rec["store_at"])) if on
        ]
        print(f"peer {rec['peer_id']} added ({', '.join(roles) or 'no role: refused everything'})")


@peers_app.command("remove")
def remove(
    peer_id: Annotated[str, typer.Argument(help="The peer's id.")],
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Forget a peer: its requests are refused from now on."""
    with user_errors():
        done = _call(home, "DELETE", f"/api/v1/peers/{peer_id}")
        if done is None:
            from node.p2p import PeerBook, peer_change
            from node.repo import append_audit
            from protocol import WireError, parse_peer_id

            with opened(home, password_file) as repo:
                book = PeerBook(repo.store)
                try:
                    raw = parse_peer_id(peer_id)
                except WireError as exc:
                    raise CliError(str(exc), EXIT_USAGE) from None
                before = book.get(raw)
                known = book.remove(raw)
                change = peer_change(before, None) if known else None
                if change is not None:
                    append_audit(repo, *change)
            if not known:
                raise CliError(f"no peer {peer_id}")
        print(f"peer {peer_id} removed")


def _when(ts: float) -> str:
    if not ts:
        return "never"
    return datetime.fromtimestamp(ts, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@peers_app.command("list")
def list_(
    home: HomeOpt = None, password_file: PasswordFileOpt = None, json_out: JsonOpt = False
) -> None:
    """Known peers: roles, connected, last seen, bytes held for each, our snapshots at each."""
    from ._common import human_bytes

    with user_errors():
        peers = _call(home, "GET", "/api/v1/peers")
        if peers is None:
            from node.p2p import MeshState, PeerBook

            with opened(home, password_file) as repo:
                state = MeshState(repo.store)
                peers = []
                for rec in PeerBook(repo.store).all():
                    doc = rec.to_json()
                    doc["connected"] = False
                    doc["held_for"] = state.held_for(rec.raw_id)[1]
                    peers.append(doc)
        if json_out:
            print_json(peers)
            return
        print(f"{'Peer':<20} {'Name':<12} {'Roles':<18} {'Conn':<5} {'Last seen':<20} Held for it")
        for p in peers:
            roles = ",".join(r for r in ("store_for", "store_at") if p.get(r)) or "-"
            print(
                f"{p['peer_id'][-20:]:<20} {p['name'][:12]:<12} {roles:<18} "
                f"{'yes' if p['connected'] else 'no':<5} {_when(p['last_seen']):<20} "
                f"{human_bytes(p.get('held_for', 0))}"
            )


def _replicas(
    home: HomeOpt, password_file: Any
) -> tuple[list[dict[str, Any]], dict[str, list[str]], bool]:
    """(our snapshots, holders per snapshot id, whether a daemon answered)."""
    status = _call(home, "GET", "/api/v1/status")
    with control(home, password_file) as ctl:
        snaps = ctl.snapshots()
    if status is not None:
        return snaps, status.get("replicas", {}), True
    from node.p2p import MeshState, replicas_of
    from protocol import parse_peer_id

    local = parse_peer_id(_local_peer_id(home))
    with opened(home, password_file) as repo:
        return snaps, replicas_of(MeshState(repo.store), local), False


def status(
    wait_replicated: Annotated[
        int | None,
        typer.Option(
            "--wait-replicated", help="Wait until the latest snapshot is complete on N peers."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait with --wait-replicated.")
    ] = 600.0,
    home: HomeOpt = None,
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """For each snapshot, the peers holding a complete copy (by their signed receipts).

    Exit codes: 0 ok; 1 --wait-replicated timed out (or the node cannot be opened).
    """
    with user_errors():
        if wait_replicated is not None and wait_replicated < 1:
            raise CliError("--wait-replicated must be 1 or more", EXIT_USAGE)
        deadline = time.monotonic() + timeout
        while True:
            snaps, replicas, live = _replicas(home, password_file)
            rows = [
                {
                    "id": s["id"],
                    "short_id": s["short_id"],
                    "time": s["time"],
                    "paths": s["paths"],
                    "announced": s["id"] in replicas,
                    "holders": replicas.get(s["id"], []),
                }
                for s in snaps
            ]
            latest = rows[-1] if rows else None
            if wait_replicated is None:
                break
            if latest is not None and len(latest["holders"]) >= wait_replicated:
                break
            if time.monotonic() >= deadline:
                have = len(latest["holders"]) if latest else 0
                what = f"snapshot {latest['short_id']}" if latest else "no snapshot yet"
                raise CliError(
                    f"timed out after {timeout:g}s: {what} is complete on {have} of "
                    f"{wait_replicated} peers",
                    EXIT_ERROR,
                )
            time.sleep(1.0)
        if json_out:
            print_json({"daemon": live, "snapshots": rows})
            return
        if not live:
            print("(the node is not running: replicas as last recorded)")
        for row in rows:
            holders = ", ".join(h[-8:] for h in row["holders"]) or "-"
            state = f"{len(row['holders'])} peers" if row["announced"] else "not announced"
            print(f"{row['short_id']}  {row['time'][:19]}  {state:<14} {holders}")
