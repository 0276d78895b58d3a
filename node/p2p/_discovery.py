"""Finding the current addresses of known peers through the Kademlia DHT.

A peer whose stored addresses no longer work (a new IP, a new port after a restart) is
looked up by peer id in the DHT that the mesh's nodes form among themselves (field notes
section 4). Only peer routing is used: value and provider records are off, so strangers
cannot make this node store anything, and the record validator is strict (public keys
only) should values ever be turned on.

Quirks handled: the DHT does not add connected peers to its routing table by itself, so
``Discovery.add`` is called for each peer that connects; its protocol id is fixed
(``/ipfs/kad/1.0.0``), so the mesh stays private only by never dialling IPFS nodes; its
many benign warnings are silenced.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.records.pubkey import PublicKeyValidator
from libp2p.records.validator import NamespacedValidator
from libp2p.tools.anyio_service import background_trio_service

from ._host import MeshHost

log = logging.getLogger("shadowvault.p2p")

LOOKUP_TIMEOUT = 15.0
"""Seconds a peer lookup may take."""


class Discovery:
    """The DHT of one running node."""

    def __init__(self, dht: KadDHT) -> None:
        self._dht = dht

    async def add(self, peer: ID) -> None:
        """Put a connected peer into the routing table (best effort)."""
        try:
            await self._dht.add_peer(peer)
        except Exception as exc:
            log.debug("dht add_peer %s: %r", peer, exc)

    async def find(self, peer: ID) -> list[str]:
        """Addresses of ``peer`` as the DHT knows them (empty if not found)."""
        try:
            with trio.move_on_after(LOOKUP_TIMEOUT):
                info = await self._dht.find_peer(peer)
                if info is not None:
                    return [str(a) for a in info.addrs]
        except Exception as exc:
            log.info("dht lookup of %s failed: %r", peer.to_base58()[-8:], exc)
        return []

    @property
    def routing_table_size(self) -> int:
        return int(self._dht.get_routing_table_size())


@asynccontextmanager
async def open_discovery(host: MeshHost) -> AsyncIterator[Discovery]:
    """Run a DHT server on ``host`` until the block exits."""
    logging.getLogger("libp2p.kad_dht").setLevel(logging.ERROR)
    validator = NamespacedValidator({"pk": PublicKeyValidator()}, strict_validation=True)
    dht = KadDHT(
        host.host,
        DHTMode.SERVER,
        validator=validator,
        validator_changed=True,
        enable_providers=False,
        enable_values=False,
        strict_validation=True,
    )
    async with background_trio_service(dht):
        yield Discovery(dht)
