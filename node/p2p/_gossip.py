"""Announcements and notices by GossipSub: fast fan-out, never the only path.

GossipSub delivers a new announcement to every subscribed node within milliseconds,
relayed by nodes that are not its owner's direct peers. It is lossy by design (a node
that is offline misses messages forever; field notes section 5), so it only speeds
things up: the "since N" pull on every (re)connect stays the source of truth.

Settings, per the field notes: spam protection off (it rate-limits even our own
publishes and drops silently), a 1 s heartbeat (the default 120 s repairs the mesh far
too slowly), messages signed and verified by libp2p (``strict_signing``). On top, each
message must be a record of an owner's stream (announcement or notice) signed by its
owner, published by that owner: a relayed message keeps its original ``from_id``, so the
check holds across hops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from protocol import OwnerRecord, WireError, decode_owner_record

from ._host import MeshHost

log = logging.getLogger("shadowvault.p2p")

ANNOUNCE_TOPIC = "/shadowvault/announce/1"


class Gossip:
    """The running announcement topic of one node."""

    def __init__(self, pubsub: Pubsub) -> None:
        self._pubsub = pubsub

    async def publish(self, ann: OwnerRecord) -> None:
        """Publish one of our records (best effort)."""
        try:
            await self._pubsub.publish(ANNOUNCE_TOPIC, ann.raw)
        except Exception as exc:  # no peers subscribed yet, or the router is stopping
            log.info("gossip publish of record %d failed: %r", ann.seq, exc)


@asynccontextmanager
async def open_gossip(
    host: MeshHost, on_announcement: Callable[[OwnerRecord], object]
) -> AsyncIterator[Gossip]:
    """Join the announcement topic until the block exits.

    Args:
        host: the running host.
        on_announcement: called with each verified announcement or notice whose
            publisher is its owner (the caller decides whether it stores for that owner).

    Ownership: the pubsub services and the subscription task live in the block; on exit
    the pubsub's cleanup thread (which libp2p never stops itself) is stopped.
    """
    router = GossipSub(
        [TProtocol(PROTOCOL_ID_V11)],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=1,
        spam_protection_enabled=False,
    )
    pubsub = Pubsub(host.host, router)
    try:
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            subscription = await pubsub.subscribe(ANNOUNCE_TOPIC)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_receive, subscription, on_announcement)
                try:
                    yield Gossip(pubsub)
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        pubsub.seen_messages.stop()


async def _receive(subscription: object, on_announcement: Callable[[OwnerRecord], object]) -> None:
    while True:
        msg = await subscription.get()  # type: ignore[attr-defined]
        try:
            ann = decode_owner_record(bytes(msg.data))
            if ID(bytes(msg.from_id)).to_bytes() != ann.owner:
                raise WireError("announcement published by someone other than its owner")
        except (WireError, ValueError) as exc:
            log.info("ignoring a gossip message: %s", exc)
            continue
        try:
            on_announcement(ann)
        except Exception:
            log.exception("handling a gossiped announcement failed")
