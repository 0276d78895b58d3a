"""The mesh of one node: host, peer list, exchange, replication. Entry point: ``open_mesh``.

The daemon runs it in its nursery::

    async with open_mesh(repo, MeshSettings(listen=[...], bootstrap=[...])) as mesh:
        mesh.peer_id, mesh.addrs, mesh.add_peer(...), await mesh.announce(snapshot_id), ...

Background work, all owned by the ``open_mesh`` block: a pull of announcements from each
peer that connects (the notifee only queues the peer; the pull runs in our own task), a
replication pass when an announcement arrives, and every ``sync_interval`` seconds a
round that dials known peers, pulls from them and retries the queue.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import multiaddr  # type: ignore[import-untyped]
import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from node.config import P2PConfig, PeerConfig
from node.repo import (
    BlobKind,
    BlobNotFound,
    CorruptBlob,
    RefusalAudit,
    Repository,
    append_audit,
)
from protocol import (
    EXCHANGE_PROTOCOL,
    MAX_SKEW,
    MAX_WANT,
    Ack,
    Announcement,
    BlobId,
    BlobsReply,
    OwnerRecord,
    PushAnnouncement,
    WantBlobs,
    blob_id_of,
    parse_peer_id,
    peer_id_text,
)

from . import _metrics as metrics
from ._client import ExchangeClient
from ._discovery import Discovery, open_discovery
from ._errors import MeshError, UnknownPeer
from ._fetch import Fetcher, FetchResult, Scores
from ._gossip import Gossip, open_gossip
from ._host import MeshHost, open_host, single_exceptions
from ._peers import PeerBook, PeerRecord, peer_change, strip_p2p
from ._recover import restore_snapshot_record
from ._replicate import Replicator, build_announcement
from ._retain import LeaseClock, owner_view
from ._server import BlobSource, ExchangeServer
from ._state import MeshState

log = logging.getLogger("shadowvault.p2p")

REFUSAL_FLUSH_EVERY = 15.0
"""Seconds between writes of ended refusal windows to the audit log."""


@dataclass(frozen=True, slots=True)
class MeshSettings:
    """Where the node listens and whom it dials first."""

    listen: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",)
    """Multiaddrs to listen on (loopback by default; port 0 picks a free port)."""
    announce: Sequence[str] = ()
    """Addresses to advertise instead of the listen addresses."""
    bootstrap: Sequence[str] = ()
    """``/ip4/.../tcp/N/p2p/<peer id>`` addresses dialled at start. Dialling grants no
    trust: a peer is served only once added with a role."""
    sync_interval: float = 30.0
    """Seconds between rounds of dialling known peers, pulling, and retrying replication."""
    request_window: float = float(MAX_SKEW)
    """Seconds a signed request's time may be off our clock (clock skew included)."""
    request_timeout: float = 120.0
    """Seconds one whole request to a peer may take (send, wait, receive)."""
    fetch_concurrency: int = 3
    """Blob batches fetched at once, from different holders when there are several."""
    retry_base: float = 5.0
    """Seconds before the first retry of an incomplete replication; doubles each time."""
    retry_max: float = 600.0
    """Longest wait between retries (seconds)."""
    dht: bool = True
    """Run a Kademlia DHT server to find known peers whose addresses changed."""
    gossip: bool = True
    """Also spread announcements by GossipSub (the pull on connect stays the source of
    truth; off saves a thread and some traffic)."""


def settings_from_config(p2p: P2PConfig, *, sync_interval: float = 30.0) -> MeshSettings:
    """The mesh settings of the ``p2p`` section of the node config."""
    return MeshSettings(
        listen=tuple(p2p.listen),
        announce=tuple(p2p.announce),
        bootstrap=tuple(p2p.bootstrap),
        sync_interval=sync_interval,
        request_window=p2p.request_window.seconds,
        request_timeout=p2p.request_timeout.seconds,
        fetch_concurrency=p2p.fetch_concurrency,
        dht=p2p.dht,
    )


class RepoBlobSource:
    """Serves blobs from the repository's store, and the owner's manifests."""

    def __init__(self, repo: Repository, state: MeshState) -> None:
        self._repo = repo
        self._state = state

    def read(self, blob_id: BlobId) -> bytes | None:
        try:
            return self._repo.store.read(blob_id)
        except (BlobNotFound, CorruptBlob):
            return self._state.manifest(blob_id)

    def has(self, blob_id: BlobId) -> bool:
        return self._repo.store.has(blob_id) or self._state.manifest(blob_id) is not None


class _ConnectNotifee(INotifee):
    """Queues each newly connected peer for a pull (never blocks libp2p)."""

    def __init__(self, send: trio.MemorySendChannel[ID]) -> None:
        self._send = send

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        # A full or closed channel drops the event: the periodic round pulls anyway.
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
            self._send.send_nowait(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        pass

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass


class Mesh:
    """A running mesh node. Created by ``open_mesh``; valid only inside its block."""

    def __init__(
        self, repo: Repository, host: MeshHost, settings: MeshSettings, blobs: BlobSource
    ) -> None:
        self._repo = repo
        self._host = host
        self._settings = settings
        self.peers = PeerBook(repo.store)
        self.state = MeshState(repo.store)
        self.scores = Scores()
        self.client = ExchangeClient(host, repo.identity, timeout=settings.request_timeout)
        self.fetcher = Fetcher(
            self.client, repo.store, self.state, self.scores, settings.fetch_concurrency
        )
        self.replicator = Replicator(
            repo=repo,
            peers=self.peers,
            state=self.state,
            client=self.client,
            fetcher=self.fetcher,
            sources=self._sources,
            retry_base=settings.retry_base,
            retry_max=settings.retry_max,
        )
        self.lease = LeaseClock(self.state)
        self.refusals = RefusalAudit(
            lambda action, details: append_audit(repo, action, details), via="p2p"
        )
        self.server = ExchangeServer(
            local_peer=host.peer_id.to_bytes(),
            peers=self.peers,
            state=self.state,
            blobs=blobs,
            on_announcement=self._on_pushed,
            max_skew=int(settings.request_window),
            on_refused=lambda peer, code: self.refusals.note(peer_id_text(peer), code),
            on_heard=self._heard,
        )
        self._pushed = self.state.last_seq(host.peer_id.to_bytes())
        self._gossip: Gossip | None = None
        self._discovery: Discovery | None = None

    # -- identity -------------------------------------------------------------------------------

    @property
    def host(self) -> MeshHost:
        """The running libp2p host (owned by ``open_mesh``; do not close it)."""
        return self._host

    @property
    def peer_id(self) -> str:
        """Our peer id (``12D3KooW...``)."""
        return str(self._host.peer_id.to_base58())

    @property
    def addrs(self) -> list[str]:
        """Our listen addresses, each ending in ``/p2p/<peer id>``."""
        return self._host.addrs

    # -- the peer list ----------------------------------------------------------------------------

    def add_peer(
        self,
        peer_id: str,
        *,
        addrs: Sequence[str] = (),
        name: str = "",
        store_for: bool = False,
        store_at: bool = False,
        quota: int = 0,
    ) -> PeerRecord:
        """Add a peer or update its record (addresses are merged, newest first).

        Raises:
            WireError: ``peer_id`` is not an Ed25519 peer id.
            ValueError: it is our own id, or a negative quota.
        """
        before = self.peers.get(parse_peer_id(peer_id))
        rec = self.peers.add(
            self._host.peer_id.to_bytes(),
            peer_id,
            addrs=addrs,
            name=name,
            store_for=store_for,
            store_at=store_at,
            quota=quota,
        )
        self._audit_peer(before, rec)
        self._host.add_addrs(ID(rec.raw_id), rec.addrs)
        return rec

    def _audit_peer(self, before: PeerRecord | None, after: PeerRecord | None) -> None:
        change = peer_change(before, after)
        if change is not None:
            append_audit(self._repo, *change)

    def add_configured_peers(self, peers: Sequence[PeerConfig]) -> list[PeerRecord]:
        """Add (or update) the peers listed in the node config (``peers:``), at start."""
        return [
            self.add_peer(
                p.id,
                addrs=p.addrs,
                name=p.name,
                store_for=p.store_for,
                store_at=p.store_at,
                quota=p.quota.bytes,
            )
            for p in peers
        ]

    def remove_peer(self, peer_id: str) -> bool:
        """Forget a peer (its requests are refused from now on). True if it was known."""
        raw = parse_peer_id(peer_id)
        before = self.peers.get(raw)
        removed = self.peers.remove(raw)
        if removed:
            self._audit_peer(before, None)
        return removed

    def list_peers(self) -> list[dict[str, Any]]:
        """Every known peer as JSON-ready dicts: its record, ``connected``, ``held_for``
        (bytes of its blobs we hold), ``snapshots_held_at`` (how many of our snapshots it
        holds complete copies of, by receipt) and ``score`` (as a blob source)."""
        local = self._host.peer_id.to_bytes()
        holding: dict[bytes, int] = {}
        for rcpt in self.state.receipts():
            if rcpt.owner == local:
                holding[rcpt.holder] = holding.get(rcpt.holder, 0) + 1
        out = []
        for rec in self.peers.all():
            doc = rec.to_json()
            doc["connected"] = self._host.is_connected(ID(rec.raw_id))
            doc["held_for"] = self.state.held_for(rec.raw_id)[1]
            doc["snapshots_held_at"] = holding.get(rec.raw_id, 0)
            doc["score"] = self.scores.get(rec.raw_id)
            out.append(doc)
        return out

    async def connect(self, peer_id: str) -> None:
        """Dial a known peer now.

        Raises:
            UnknownPeer: not in the peer list.
            MeshError: it could not be reached.
        """
        raw = parse_peer_id(peer_id)
        rec = self.peers.get(raw)
        if rec is None:
            raise UnknownPeer(f"{peer_id} is not a known peer; add it first")
        self._host.add_addrs(ID(raw), rec.addrs)
        await self._dial(ID(raw))

    async def _dial(self, peer: ID) -> None:
        """Connect to a known peer; if its stored addresses fail, look it up in the DHT,
        keep what it finds and try once more.

        Raises:
            MeshError: unreachable either way.
        """
        rec = self.peers.get(peer.to_bytes())
        if rec is not None:  # its addresses, newest first (it may be new to the host)
            self._host.add_addrs(peer, rec.addrs)
        try:
            await self._connect_once_more(peer)
        except Exception as exc:  # libp2p's dial errors have no common base
            found = await self._discovery.find(peer) if self._discovery else []
            if not found:
                raise MeshError(f"cannot reach {peer.to_base58()[-8:]}: {exc}") from exc
            rec = self.peers.get(peer.to_bytes())
            merged = tuple(dict.fromkeys([*map(strip_p2p, found), *(rec.addrs if rec else ())]))
            self.peers.update(peer.to_bytes(), addrs=merged)
            self._host.add_addrs(peer, merged)
            try:
                await self._host.connect(peer)
            except Exception as exc2:
                raise MeshError(f"cannot reach {peer.to_base58()[-8:]}: {exc2}") from exc2
        self.peers.update(peer.to_bytes(), last_seen=int(time.time()))

    # -- announcements and replication --------------------------------------------------------------

    async def announce(self, snapshot_id: BlobId) -> Announcement:
        """Announce one of our snapshots: manifest, signed announcement, push to holders.

        Peers that are offline get it by pulling when they reconnect.

        Raises:
            RepoError, ValueError: see ``build_announcement``.
        """
        ann = await trio.to_thread.run_sync(build_announcement, self._repo, self.state, snapshot_id)
        # With it go our records not pushed yet (a hold that follows the announcement).
        local = self._host.peer_id.to_bytes()
        records: list[OwnerRecord] = [ann]
        records += [r for r in self.state.records(local, self._pushed) if r.seq != ann.seq]
        self._pushed = max(r.seq for r in [*records, ann])
        log.info("announcing snapshot %s (seq %d)", snapshot_id.short, ann.seq)
        await self._send_out(records)
        return ann

    async def push_new(self) -> int:
        """Push our records (notices: forget, hold, release) made since the last push to
        every store-at peer; returns how many. Offline peers get them by pulling.

        The daemon calls it after a forget or a hold change; without it they still
        leave with the holders' next pull (on connect and every sync round).
        """
        local = self._host.peer_id.to_bytes()
        records = list(self.state.records(local, self._pushed))
        if not records:
            return 0
        self._pushed = max(self._pushed, records[-1].seq)
        await self._send_out(records)
        return len(records)

    async def _send_out(self, records: list[OwnerRecord]) -> None:
        """Push ``records`` to every store-at peer and publish them by gossip, at once."""
        async with trio.open_nursery() as nursery:
            for rec in self.peers.all():
                if rec.store_at:
                    for record in records:
                        nursery.start_soon(self._push, ID(rec.raw_id), record)
            if self._gossip is not None:
                for record in records:
                    nursery.start_soon(self._gossip.publish, record)

    async def _push(self, peer: ID, ann: OwnerRecord) -> None:
        try:
            await self.client.request(peer, PushAnnouncement(ann.raw), Ack)
        except MeshError as exc:
            log.info("record %d not pushed to %s: %s", ann.seq, peer, exc)

    def _on_pushed(self, ann: OwnerRecord) -> None:
        self.replicator.accept(ann)

    def _heard(self, peer: bytes) -> None:
        """A verified request: from an owner we store for, it renews its lease."""
        rec = self.peers.get(peer)
        if rec is not None and rec.store_for:
            self.lease.heard(peer, time.time())

    async def sync(self) -> None:
        """One round, as the background loop does it: dial known peers, pull
        announcements from each, then one replication pass (tests call this directly)."""
        async with trio.open_nursery() as nursery:
            for rec in self.peers.all():
                if rec.authorised:
                    nursery.start_soon(self._dial_and_pull, ID(rec.raw_id))
        await self.replicator.run_pass()

    async def _dial_known(self) -> None:
        async with trio.open_nursery() as nursery:
            for rec in self.peers.all():
                if rec.authorised and rec.addrs:
                    nursery.start_soon(self._dial_logged, ID(rec.raw_id))

    async def _dial_logged(self, peer: ID) -> None:
        try:
            await self._dial(peer)
        except MeshError as exc:
            log.info("dial of %s at start failed: %s", peer.to_base58()[-8:], exc)

    async def _connect_once_more(self, peer: ID) -> None:
        """Dial; a dial that lost a race with another one to the same peer (which may
        still be trying an old address) is tried once more."""
        try:
            await self._host.connect(peer)
        except Exception:
            if self._host.is_connected(peer):
                return
            await trio.sleep(0.5)
            if not self._host.is_connected(peer):
                await self._host.connect(peer)

    async def _dial_and_pull(self, peer: ID) -> None:
        try:
            await self._dial(peer)
            await self.replicator.pull(peer)
        except MeshError as exc:
            log.info("pull from %s failed: %s", peer.to_base58()[-8:], exc)

    def replicas(self) -> dict[str, list[str]]:
        """For each of our announced snapshots (hex id), the peers holding a complete copy."""
        return replicas_of(self.state, self._host.peer_id.to_bytes())

    def status(self) -> dict[str, Any]:
        """JSON-ready summary: identity, peers, our snapshots' replicas, queue."""
        queue = [
            {
                "owner": peer_id_text(owner),
                "seq": seq,
                "state": q.state,
                "missing": q.missing,
                "tries": q.tries,
                "receipt_sent": q.receipt_sent,
            }
            for owner, seq, q in self.state.queued()
        ]
        return {
            "peer_id": self.peer_id,
            "addrs": self.addrs,
            "connected": len(self._host.host.get_connected_peers()),
            "peers": self.list_peers(),
            "replicas": self.replicas(),
            "replication": queue,
        }

    async def fetch_blobs(
        self,
        ids: Sequence[BlobId],
        *,
        kind: BlobKind,
        owner: str | None = None,
        replace: bool = False,
    ) -> FetchResult:
        """Fetch blobs missing here from the known peers, verified against their ids.

        Args:
            ids: the blobs wanted.
            kind: how to store them. For our own blobs (``owner`` None: healing,
                restore after recovery) the caller knows what each is: DATA, TREE,
                SNAPSHOT. For another owner's blobs it must be FOREIGN.
            owner: the peer id whose blobs these are (None: ours).
            replace: fetch even the ids stored here and make the fetched copies the
                indexed ones (healing corrupt copies, ours or an owner's we hold).

        Returns:
            What was fetched, and the ids no peer could supply.
        """
        if owner is None:
            raw = self._host.peer_id.to_bytes()
        else:
            raw = parse_peer_id(owner)
            if kind is not BlobKind.FOREIGN:
                raise ValueError("another owner's blobs are stored as FOREIGN")
        return await self.fetcher.fetch(ids, self._sources(), raw, kind=kind, replace=replace)

    async def recover_snapshots(self) -> list[BlobId]:
        """After a loss: pull our own announcements from every store-at peer, put
        back each snapshot record not in the store and get the manifests back from the
        holders (so we serve them again). Returns the restored snapshot ids.

        Raises:
            RepoError: a record is not ours (wrong identity or master secret).
        """
        async with trio.open_nursery() as nursery:
            for rec in self.peers.all():
                if rec.store_at:
                    nursery.start_soon(self._dial_and_pull, ID(rec.raw_id))
        restored = []
        local = self._host.peer_id.to_bytes()
        forgotten = owner_view(self.state, local).forgotten
        # A snapshot forgotten on purpose stays forgotten.
        anns = [a for a in self.state.announcements(local) if a.snapshot_id not in forgotten]
        for ann in anns:
            snap = await trio.to_thread.run_sync(restore_snapshot_record, self._repo, ann)
            if snap is not None:
                restored.append(snap)
        await self._recover_manifests(anns)
        return restored

    async def _recover_manifests(self, anns: Sequence[Announcement]) -> None:
        """Get back the manifests of our announcements from our holders (they keep them
        as blobs), so that we serve them again: to a holder healing its copy, or one
        that starts storing for us. One that no holder supplies is left out."""
        pending = {a.manifest_id for a in anns if self.state.manifest(a.manifest_id) is None}
        for peer in self.scores.order(self._sources()):
            if not pending:
                return
            try:
                reply = await self.client.request(
                    peer, WantBlobs(tuple(pending)[:MAX_WANT]), BlobsReply
                )
            except MeshError as exc:
                log.info("manifests from %s: %s", peer.to_base58()[-8:], exc)
                continue
            for blob_id, data in reply.blobs:
                if blob_id in pending and blob_id_of(data) == blob_id:
                    self.state.put_manifest(blob_id, data)
                    pending.discard(blob_id)

    def _sources(self) -> list[ID]:
        return [ID(r.raw_id) for r in self.peers.all() if r.authorised]

    # -- background -------------------------------------------------------------------------------

    async def _background(self, pulls: trio.MemoryReceiveChannel[ID]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pull_on_connect, pulls)
            nursery.start_soon(self._replicate_on_wake)
            # Known peers (also those added while the node was stopped) are dialled at
            # once; each connection is pulled from by the notifee's path.
            nursery.start_soon(self._dial_known)
            nursery.start_soon(self._flush_refusals)
            while True:
                # At start too: known peers are dialled and pulled at once, not after
                # the first interval.
                await trio.sleep(self._settings.sync_interval)
                await _logged(self.sync(), "sync round")

    async def _flush_refusals(self) -> None:
        """Write the aggregated refusals of each ended minute to the audit log; the
        current minute's at exit."""
        try:
            while True:
                await trio.sleep(REFUSAL_FLUSH_EVERY)
                await _logged(trio.to_thread.run_sync(self._flush_refusals_now), "audit")
        finally:
            with trio.CancelScope(shield=True):
                await _logged(trio.to_thread.run_sync(self._flush_refusals_now, True), "audit")

    def _flush_refusals_now(self, force: bool = False) -> None:
        self.refusals.flush(force=force)

    async def _pull_on_connect(self, pulls: trio.MemoryReceiveChannel[ID]) -> None:
        async for peer in pulls:
            if self._discovery is not None:
                await self._discovery.add(peer)
            rec = self.peers.get(peer.to_bytes())
            if rec is None or not rec.authorised:
                continue
            self.peers.update(peer.to_bytes(), last_seen=int(time.time()))
            try:
                new = await self.replicator.pull(peer)
            except MeshError as exc:
                log.info("pull from %s on connect failed: %s", peer.to_base58()[-8:], exc)
                continue
            if new:
                await _logged(self.replicator.run_pass(), "replication pass")

    async def _replicate_on_wake(self) -> None:
        while True:
            # Until woken by a new announcement, or the earliest retry is due.
            due = self.replicator.next_due()
            wait = self._settings.sync_interval if due is None else due - time.time()
            with trio.move_on_after(max(wait, 0.0)):
                await self.replicator.wake.wait()
            await _logged(self.replicator.run_pass(), "replication pass")


def replicas_of(state: MeshState, local: bytes) -> dict[str, list[str]]:
    """For each snapshot ``local`` announced (hex id), the holders that sent receipts."""
    out: dict[str, list[str]] = {}
    for ann in state.announcements(local):
        out[ann.snapshot_id.hex()] = sorted(
            peer_id_text(r.holder) for r in state.receipts(ann.snapshot_id) if r.owner == local
        )
    return out


async def _logged(work: Awaitable[None], what: str) -> None:
    """Run background work; a failure (a full disk, a store error) is logged and the
    next round retries, instead of taking the mesh down."""
    try:
        await work
    except Exception:
        log.exception("%s failed", what)


@asynccontextmanager
async def open_mesh(
    repo: Repository, settings: MeshSettings, *, blobs: BlobSource | None = None
) -> AsyncIterator[Mesh]:
    """Run this node's mesh until the block exits.

    Args:
        repo: the open repository (identity, store); it must outlive the block.
        settings: listen and bootstrap addresses, timing.
        blobs: where served blobs come from (default: the repository, ``RepoBlobSource``).

    Raises:
        ValueError: an address in ``settings`` does not parse.

    Ownership: the host and every background task live inside the block; on exit they
    are cancelled, streams closed, peers disconnected and the host closed.
    """
    metrics.register()
    async with open_host(repo.identity, settings.listen, settings.announce) as host:
        state = MeshState(repo.store)
        mesh = Mesh(repo, host, settings, blobs or RepoBlobSource(repo, state))
        host.set_handler(EXCHANGE_PROTOCOL, mesh.server.handle)
        send, receive = trio.open_memory_channel[ID](64)
        notifee = _ConnectNotifee(send)
        host.host.get_network().register_notifee(notifee)
        metrics.CONNECTED_PEERS.set_function(lambda: len(host.host.get_connected_peers()))
        try:
            with single_exceptions():
                async with contextlib.AsyncExitStack() as stack:
                    if settings.dht:
                        mesh._discovery = await stack.enter_async_context(open_discovery(host))
                    if settings.gossip:
                        mesh._gossip = await stack.enter_async_context(
                            open_gossip(host, mesh._on_pushed)
                        )
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(mesh._background, receive)
                        for addr in settings.bootstrap:
                            nursery.start_soon(_dial_bootstrap, host, addr)
                        try:
                            yield mesh
                        finally:
                            nursery.cancel_scope.cancel()
        finally:
            metrics.CONNECTED_PEERS.set_function(lambda: 0)
            host.host.get_network().remove_notifee(notifee)
            send.close()
            await mesh.client.close()


async def _dial_bootstrap(host: MeshHost, addr: str) -> None:
    try:
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        host.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 10**9)
        await host.connect(info.peer_id)
    except Exception as exc:
        log.warning("bootstrap %s failed: %r", addr, exc)
