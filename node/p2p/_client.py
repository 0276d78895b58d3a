"""The requester side of the chunk exchange: long-lived streams, up to 3 per peer.

A small request on an open stream costs ~1 ms, against 4-7 ms for a new stream per
request (field notes section 3), so streams are kept open, each used by one request at a
time (a lock) and reopened after any failure. A peer gets up to ``STREAMS_PER_PEER``
of them, opened as requests to it overlap: with one stream, the wire from a single
holder sat idle while the holder read and packed the next reply and we checked the last
one; a second request in flight keeps it busy. A request is signed afresh each time
(new nonce, current time), so a retry is never a replay.

Cancellation: a timeout or cancel in the middle of an exchange resets that stream (its
state is unknown); Yamux writes are shielded by ``open_host``, so the connection itself
survives.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

import nacl.signing
import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from protocol import (
    EXCHANGE_PROTOCOL,
    MAX_RESPONSE_FRAME,
    NONCE_SIZE,
    ErrorReply,
    Reply,
    RequestBody,
    WireError,
    decode_reply,
    sign_request,
)

from ._errors import PeerMisbehaved, PeerRefused, PeerUnreachable
from ._framing import read_frame, write_frame
from ._host import MeshHost

log = logging.getLogger("shadowvault.p2p")

R = TypeVar("R", bound=Reply)

REQUEST_TIMEOUT = 120.0
"""Seconds one request may take, reply included (a reply holds up to 8 MiB of blobs, or
one 64 MiB blob)."""
STREAMS_PER_PEER = 3
"""Requests in flight to one peer at once, each on a stream of its own (replies of up to
8 MiB each, so this also bounds what one peer's replies hold in memory)."""


class _Session:
    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.stream: INetStream | None = None


class ExchangeClient:
    """Sends signed requests to peers. One per node; safe to use from many tasks."""

    def __init__(
        self,
        host: MeshHost,
        identity: nacl.signing.SigningKey,
        timeout: float = REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.time,
        streams_per_peer: int = STREAMS_PER_PEER,
    ) -> None:
        self._host = host
        self._identity = identity
        self._local = host.peer_id.to_bytes()
        self._clock = clock
        self._timeout = timeout
        self._streams_per_peer = streams_per_peer
        self._sessions: dict[bytes, list[_Session]] = {}
        self._dials: dict[bytes, trio.Lock] = {}
        self._turn = 0

    async def request(self, peer: ID, body: RequestBody, expect: type[R]) -> R:
        """Send one request and return the peer's reply, of type ``expect``.

        Raises:
            PeerRefused: the peer answered with an error code.
            PeerMisbehaved: the reply is not a valid message, or not of type ``expect``.
            PeerUnreachable: no stream could be opened, or it failed twice.
        """
        session = self._session(peer)
        async with session.lock:
            for attempt in (1, 2):
                try:
                    reply = await self._exchange(session, peer, body)
                except (PeerUnreachable, PeerMisbehaved):
                    await self._drop(session)
                    if attempt == 2:
                        raise
                    continue
                if isinstance(reply, ErrorReply):
                    raise PeerRefused(peer.to_base58(), reply.code, reply.message)
                if not isinstance(reply, expect):
                    await self._drop(session)
                    raise PeerMisbehaved(
                        f"peer {peer.to_base58()[-8:]} answered {type(body).__name__} "
                        f"with {type(reply).__name__}"
                    )
                return reply
        raise AssertionError("unreachable")

    def _session(self, peer: ID) -> _Session:
        """An idle stream of ``peer``'s, a new one while under the limit, else the next
        one in turn (its lock queues us)."""
        pool = self._sessions.setdefault(peer.to_bytes(), [])
        for session in pool:
            if not session.lock.locked():
                return session
        if len(pool) < self._streams_per_peer:
            pool.append(_Session())
            return pool[-1]
        self._turn += 1
        return pool[self._turn % len(pool)]

    async def _exchange(self, session: _Session, peer: ID, body: RequestBody) -> Reply:
        frame = sign_request(
            self._identity,
            protocol=EXCHANGE_PROTOCOL,
            requester=self._local,
            responder=peer.to_bytes(),
            time=int(self._clock()),
            nonce=os.urandom(NONCE_SIZE),
            body=body,
        )
        try:
            with trio.fail_after(self._timeout):
                if session.stream is None:
                    # Streams opened at once must not dial at once: with one connection
                    # per peer, the dial that loses the race fails.
                    async with self._dials.setdefault(peer.to_bytes(), trio.Lock()):
                        await self._host.connect(peer)
                    session.stream = await self._host.new_stream(peer, EXCHANGE_PROTOCOL)
                await write_frame(session.stream, frame)
                raw = await read_frame(session.stream, MAX_RESPONSE_FRAME)
        except WireError as exc:
            raise PeerMisbehaved(f"peer {peer.to_base58()[-8:]}: {exc}") from exc
        except trio.TooSlowError as exc:
            # A stream cut mid-negotiation can leave the connection wedged (field notes
            # 7.4): drop it, so that the next attempt dials afresh.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._host.disconnect(peer)
            raise PeerUnreachable(f"peer {peer.to_base58()[-8:]} did not answer in time") from exc
        except Exception as exc:  # libp2p's dial and stream errors have no common base
            raise PeerUnreachable(f"peer {peer.to_base58()[-8:]}: {exc!r}") from exc
        if raw is None:
            raise PeerUnreachable(f"peer {peer.to_base58()[-8:]} closed the stream")
        try:
            return decode_reply(raw)
        except WireError as exc:
            raise PeerMisbehaved(f"peer {peer.to_base58()[-8:]} sent a bad reply: {exc}") from exc

    async def _drop(self, session: _Session) -> None:
        stream, session.stream = session.stream, None
        if stream is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                try:
                    await stream.reset()
                except Exception as exc:
                    log.debug("stream reset: %r", exc)

    async def close(self) -> None:
        """Close every stream (the host closes the connections)."""
        for session in [s for pool in self._sessions.values() for s in pool]:
            stream, session.stream = session.stream, None
            if stream is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    try:
                        await stream.close()
                    except Exception as exc:
                        log.debug("stream close: %r", exc)
        self._sessions.clear()
