"""The libp2p host, owned by one context manager (libp2p-field-notes.md sections 2 and 7).

py-libp2p 0.8.1 works but has measured traps, each handled here:

* the default host also accepts ``/plaintext/2.0.0`` (an unauthenticated peer id): we pass
  Noise as the only security transport and Yamux as the only muxer (Mplex wedges);
* every dial waits a fixed 250 ms unless ``max_connections_per_peer=1``;
* leaving ``host.run()`` does not close listeners or sockets: we disconnect every peer in
  parallel and call ``host.close()`` ourselves, shielded, inside it;
* an exception escaping a stream handler (even ``StreamEOF``) kills the host or wedges the
  connection: every handler registered on the host (ours, GossipSub's, the DHT's) is
  guarded;
* a cancelled Yamux frame write leaves a half-written Noise frame and kills the
  connection: ``Yamux._write_frame`` is shielded (the fix measured in section 7.4);
* libp2p logs to its own logger with ``propagate=False``: we route it to the root logger
  (structlog's stdlib handler, where the daemon's logging config sets libp2p's level).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import multiaddr  # type: ignore[import-untyped]
import nacl.signing
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

log = logging.getLogger("shadowvault.p2p")

CLOSE_TIMEOUT = 10.0
"""Seconds the host gets to disconnect its peers and close (each connection takes ~200 ms)."""

StreamHandler = Callable[[INetStream], Awaitable[None]]


def _shield_yamux_writes() -> None:
    """Make Yamux frame writes uncancellable (idempotent; field notes 7.4)."""
    if getattr(Yamux, "_shadowvault_shielded", False):
        return
    original = Yamux._write_frame

    async def _write_frame(self: Yamux, data: bytes) -> None:
        with trio.CancelScope(shield=True):
            await original(self, data)

    Yamux._write_frame = _write_frame  # type: ignore[method-assign]
    Yamux._shadowvault_shielded = True  # type: ignore[attr-defined]


def _route_libp2p_logging() -> None:
    """Undo what ``import libp2p`` does to its top logger (``propagate=False``, level
    WARNING), so its records reach the root handler and the level set there (the
    daemon's logging config filters libp2p's records by its own level) decides."""
    top = logging.getLogger("libp2p")
    top.propagate = True
    top.setLevel(logging.NOTSET)


_route_libp2p_logging()  # at import: libp2p was just imported above


def guard(handler: StreamHandler, protocol: str) -> StreamHandler:
    """Wrap a stream handler so that nothing it raises reaches libp2p.

    An ordinary exception escaping a handler cancels the whole swarm, and an escaping
    ``StreamEOF``/``StreamReset`` silently stops the connection accepting streams (field
    notes 7.2, 7.2b). The guard logs, resets the stream and returns. Cancellation still
    propagates: it comes from our own shutdown.
    """

    async def guarded(stream: INetStream) -> None:
        try:
            await handler(stream)
        except Exception as exc:
            log.debug("stream handler for %s ended: %r", protocol, exc)
            try:
                await stream.reset()
            except Exception as reset_exc:  # the connection may be gone already
                log.debug("stream reset failed: %r", reset_exc)

    return guarded


class MeshHost:
    """A running libp2p host. Created only by ``open_host``; closed when it exits.

    Ownership: the host (listeners, connections, streams) belongs to the ``open_host``
    context; nothing outlives it.
    """

    def __init__(self, host: IHost) -> None:
        self.host = host
        self.peer_id: ID = host.get_id()

    @property
    def addrs(self) -> list[str]:
        """Listen addresses with ``/p2p/<peer id>``, as given to other nodes."""
        return [str(a) for a in self.host.get_addrs()]

    def set_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol`` with a guarded handler (``open_host`` guards every one)."""
        self.host.set_stream_handler(TProtocol(protocol), handler)

    def add_addrs(self, peer: ID, addrs: Sequence[str]) -> None:
        """Tell the peerstore where ``peer`` listens (ignores unparsable addresses)."""
        parsed = []
        for a in addrs:
            try:
                parsed.append(multiaddr.Multiaddr(a))
            except Exception as exc:
                log.warning("ignoring bad address %r for %s: %s", a, peer, exc)
        if parsed:
            self.host.get_peerstore().add_addrs(peer, parsed, 10**9)

    def is_connected(self, peer: ID) -> bool:
        return peer in self.host.get_connected_peers()

    async def connect(self, peer: ID) -> None:
        """Dial ``peer`` at its known addresses (no-op if connected).

        Raises:
            Exception: libp2p's dial errors (``SwarmException`` and relatives).
        """
        if self.is_connected(peer):
            return
        # A peer that failed before is refused for 60 s by libp2p's negative cache,
        # even if it is back now; we decide ourselves when to retry.
        self.host.get_network().unblock_peer(peer)  # type: ignore[attr-defined]
        addrs = self.host.get_peerstore().addrs(peer)
        await self.host.connect(PeerInfo(peer, addrs))

    async def new_stream(self, peer: ID, protocol: str) -> INetStream:
        return await self.host.new_stream(peer, [TProtocol(protocol)])

    async def disconnect(self, peer: ID) -> None:
        try:
            await self.host.disconnect(peer)
        except Exception as exc:
            log.debug("disconnect %s: %r", peer, exc)


def _guard_every_handler(host: IHost) -> None:
    """Guard the handlers libp2p's own services register too (GossipSub, the DHT): a
    pubsub stream that delivers a message while its service is stopping raised
    "Nursery is closed to new arrivals" out of the handler, which took the host down
    as the mesh closed."""
    register = host.set_stream_handler

    def set_guarded(protocol: TProtocol, handler: StreamHandler) -> None:
        register(protocol, guard(handler, str(protocol)))

    host.set_stream_handler = set_guarded  # type: ignore[method-assign,assignment]


@contextmanager
def single_exceptions() -> Iterator[None]:
    """Re-raise a one-exception group (from nested nurseries) as that exception.

    The body of ``open_host``/``open_mesh`` runs inside libp2p's and our nurseries, and
    trio wraps whatever escapes a nursery in an ``ExceptionGroup``. A caller of a context
    manager expects the exception its own block raised; true multi-error groups are
    kept as they are.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is group:
            raise
        raise leaf from leaf.__cause__


def host_key_pair(identity: nacl.signing.SigningKey) -> Any:
    """The libp2p key pair of the node's identity (the same Ed25519 key, same peer id)."""
    return create_new_key_pair(bytes(identity))


@asynccontextmanager
async def open_host(
    identity: nacl.signing.SigningKey,
    listen: Sequence[str],
    announce: Sequence[str] = (),
) -> AsyncIterator[MeshHost]:
    """Run a TCP + Noise + Yamux host with the node's identity until the block exits.

    Args:
        identity: the node's Ed25519 key (``Repository.identity``); the peer id is derived
            from it.
        listen: multiaddrs to listen on, e.g. ``/ip4/127.0.0.1/tcp/0`` (port 0: any).
        announce: addresses to advertise instead of the listen addresses (NAT, 0.0.0.0).

    Raises:
        ValueError: a listen or announce address does not parse.

    Cancellation: on exit (also when cancelled) every connection is closed and the
    listeners released, within ``CLOSE_TIMEOUT``.
    """
    _shield_yamux_writes()
    _route_libp2p_logging()
    listen_addrs = [multiaddr.Multiaddr(a) for a in listen]
    announce_addrs = [multiaddr.Multiaddr(a) for a in announce] or None
    key_pair = host_key_pair(identity)
    host = new_host(
        key_pair=key_pair,
        sec_opt={
            NOISE_PROTOCOL_ID: NoiseTransport(
                key_pair, noise_privkey=create_x25519_key_pair().private_key
            )
        },
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        # One connection per peer removes libp2p's fixed 250 ms dial delay; the
        # auto-connector (which would dial up to 200 peerstore entries) is off because
        # the mesh dials its own peer list.
        connection_config=ConnectionConfig(
            max_connections_per_peer=1, min_connections=0, low_watermark=0
        ),
        announce_addrs=announce_addrs,
    )
    _guard_every_handler(host)
    with single_exceptions():
        async with host.run(listen_addrs=listen_addrs):
            try:
                yield MeshHost(host)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    async with trio.open_nursery() as nursery:
                        for peer in list(host.get_connected_peers()):
                            nursery.start_soon(_quiet_disconnect, host, peer)
                    await host.close()


async def _quiet_disconnect(host: IHost, peer: ID) -> None:
    try:
        await host.disconnect(peer)
    except Exception as exc:
        log.debug("disconnect %s at close: %r", peer, exc)
