"""The chunk exchange on real hosts: every bad request refused with its code and counted,
and the node still serves an honest peer afterwards."""

from __future__ import annotations

import os
import time

import nacl.signing
import pytest
import trio
from libp2p.peer.id import ID
from prometheus_client import REGISTRY

from node.p2p import PeerRefused, open_host
from node.repo import BlobKind
from protocol import (
    EXCHANGE_PROTOCOL,
    MAX_REQUEST_FRAME,
    Announcement,
    AnnouncementsReply,
    BlobId,
    BlobsReply,
    ErrorCode,
    ErrorReply,
    HaveQuery,
    HaveReply,
    WantBlobs,
    blob_id_of,
    decode_reply,
    encode_map,
    encode_reply,
    sign_request,
)
from tests.p2p.helpers import link, repo_at, running, snapshot_of


def _refused(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("shadowvault_p2p_requests_refused_total", {"reason": reason})
        or 0.0
    )


async def _read_reply(stream) -> ErrorReply | object:
    head = b""
    while len(head) < 4:
        chunk = await stream.read(4 - len(head))
        assert chunk, "stream closed before a reply"
        head += chunk
    n = int.from_bytes(head, "big")
    body = b""
    while len(body) < n:
        chunk = await stream.read(n - len(body))
        assert chunk
        body += chunk
    return decode_reply(body)


async def _raw(host, peer: ID, frame_body: bytes, *, header: bytes | None = None):
    """Send one hand-made frame on a fresh stream; return the decoded reply."""
    stream = await host.new_stream(peer, EXCHANGE_PROTOCOL)
    head = header if header is not None else len(frame_body).to_bytes(4, "big")
    await stream.write(head + frame_body)
    try:
        return await _read_reply(stream)
    finally:
        await stream.close()


def _signed(key, frm: bytes, to: bytes, body, t: int | None = None, nonce: bytes | None = None):
    return sign_request(
        key,
        protocol=EXCHANGE_PROTOCOL,
        requester=frm,
        responder=to,
        time=int(time.time()) if t is None else t,
        nonce=nonce or os.urandom(16),
        body=body,
    )


async def test_exchange_refuses_bad_requests_and_keeps_serving(tmp_path):
    repo_a, repo_b, repo_x = (repo_at(tmp_path / n) for n in ("a", "b", "x"))
    snap = snapshot_of(repo_a, tmp_path / "src")
    a_id = BlobId(snap)
    try:
        async with running(repo_a) as a, running(repo_b) as b, running(repo_x) as x:
            link(a, b)  # b stores for a: b is authorised at a
            b_raw, a_raw = b.host.peer_id.to_bytes(), a.host.peer_id.to_bytes()
            a_peer = a.host.peer_id
            b.host.add_addrs(a_peer, [s.rsplit("/p2p/", 1)[0] for s in a.addrs])
            x.host.add_addrs(a_peer, [s.rsplit("/p2p/", 1)[0] for s in a.addrs])
            want = WantBlobs((a_id,))
            before = {c.value: _refused(c.value) for c in ErrorCode}

            cases = []
            # forged: b sends a request signed by another key, claiming to be b
            forger = nacl.signing.SigningKey.generate()
            cases.append(("forged", _signed(forger, b_raw, a_raw, want), ErrorCode.BAD_SIGNATURE))
            # impersonation: signed by x's key and claiming x, sent over b's connection
            cases.append(
                (
                    "other-peer",
                    _signed(repo_x.identity, x.host.peer_id.to_bytes(), a_raw, want),
                    ErrorCode.BAD_SIGNATURE,
                )
            )
            cases.append(
                (
                    "stale",
                    _signed(repo_b.identity, b_raw, a_raw, want, t=int(time.time()) - 3600),
                    ErrorCode.STALE,
                )
            )
            cases.append(
                ("wrong-responder", _signed(repo_b.identity, b_raw, b_raw, want), ErrorCode.STALE)
            )
            cases.append(("malformed", b"\x93garbage", ErrorCode.MALFORMED))
            cases.append(
                (
                    "malformed-body",
                    encode_map({"v": 1, "from": b_raw, "body": b"x"}),
                    ErrorCode.MALFORMED,
                )
            )
            for name, frame, code in cases:
                reply = await _raw(b.host, a_peer, frame)
                assert reply == ErrorReply(code, reply.message), name

            # replayed: the same signed frame twice
            frame = _signed(repo_b.identity, b_raw, a_raw, want, nonce=b"r" * 16)
            first = await _raw(b.host, a_peer, frame)
            assert isinstance(first, BlobsReply)
            again = await _raw(b.host, a_peer, frame)
            assert isinstance(again, ErrorReply) and again.code is ErrorCode.REPLAYED

            # oversized: a frame header announcing more than the cap
            big = await _raw(b.host, a_peer, b"", header=(MAX_REQUEST_FRAME + 1).to_bytes(4, "big"))
            assert isinstance(big, ErrorReply) and big.code is ErrorCode.TOO_LARGE

            # unauthorised: x is a valid, correctly signed peer that a does not know
            x_req = _signed(repo_x.identity, x.host.peer_id.to_bytes(), a_raw, want)
            denied = await _raw(x.host, a_peer, x_req)
            assert isinstance(denied, ErrorReply) and denied.code is ErrorCode.NOT_AUTHORISED
            with pytest.raises(PeerRefused) as err:
                await x.client.request(a_peer, HaveQuery((a_id,)), HaveReply)
            assert err.value.code is ErrorCode.NOT_AUTHORISED

            expected = {
                "bad_signature": 2,
                "stale": 2,
                "malformed": 2,
                "replayed": 1,
                "too_large": 1,
                "not_authorised": 2,
            }
            for reason, n in expected.items():
                assert _refused(reason) - before[reason] == n, reason

            # ... and the honest peer is still served, on its long-lived stream.
            have = await b.client.request(a_peer, HaveQuery((a_id, BlobId(b"\0" * 32))), HaveReply)
            assert have == HaveReply((a_id,))
            got = await b.client.request(a_peer, WantBlobs((a_id, BlobId(b"\1" * 32))), BlobsReply)
            assert isinstance(got, BlobsReply)
            assert [i for i, _ in got.blobs] == [a_id]
            assert blob_id_of(got.blobs[0][1]) == a_id
            assert got.missing == (BlobId(b"\1" * 32),)
    finally:
        for r in (repo_a, repo_b, repo_x):
            r.close()


async def test_fetch_stores_only_verified_requested_blobs(tmp_path):
    repo_a, repo_b = repo_at(tmp_path / "a"), repo_at(tmp_path / "b")
    snap = snapshot_of(repo_a, tmp_path / "src")
    try:
        async with running(repo_a) as a, running(repo_b) as b:
            link(a, b)
            a_raw = a.host.peer_id.to_bytes()
            ids = [snap, BlobId(b"\7" * 32)]
            result = await b.fetcher.fetch(ids, [a.host.peer_id], a_raw)
            assert result.fetched == 1 and result.missing == [BlobId(b"\7" * 32)]
            assert repo_b.store.read(snap) == repo_a.store.read(snap)
            assert b.state.held_for(a_raw) == (1, len(repo_a.store.read(snap)))
    finally:
        repo_a.close()
        repo_b.close()


async def test_hostile_replies_are_contained(tmp_path):
    """A peer answering every request with an endless "more" (or the wrong kind of reply)
    neither hangs nor crashes the node, and is scored down."""
    repo_b = repo_at(tmp_path / "b")
    evil_key = nacl.signing.SigningKey.generate()
    old = Announcement.create(
        evil_key,
        seq=1,
        snapshot_id=blob_id_of(b"record"),
        manifest_id=BlobId(b"m" * 32),
        record=b"record",
        record_sig=bytes(64),
        time=int(time.time()),
    )
    try:
        async with (
            open_host(evil_key, ["/ip4/127.0.0.1/tcp/0"]) as evil,
            running(repo_b) as b,
        ):

            async def endless_more(stream):
                while True:
                    await _read_reply_raw(stream)
                    body = encode_reply(AnnouncementsReply((old.raw,), more=True))
                    await stream.write(len(body).to_bytes(4, "big") + body)

            evil.set_handler(EXCHANGE_PROTOCOL, endless_more)
            evil_id = evil.peer_id.to_base58()
            b.add_peer(evil_id, addrs=[evil.addrs[0]], store_for=True, store_at=True)
            # b pulls evil's announcement, then evil repeats it with "more" forever: the
            # pull returns; replicating it fails (evil answers a want with announcements).
            with trio.fail_after(30):  # a regression would loop forever
                await b.sync()
            [(_, _, q)] = list(b.state.queued())
            assert q.state == "pending" and q.tries == 1
            missing = BlobId(b"\5" * 32)
            result = await b.fetch_blobs([missing], kind=BlobKind.FOREIGN, owner=evil_id)
            assert result.missing == [missing] and result.fetched == 0
            assert b.scores.get(evil.peer_id.to_bytes()) < 0
            assert not repo_b.store.has(missing)
    finally:
        repo_b.close()


async def _read_reply_raw(stream) -> bytes:
    head = b""
    while len(head) < 4:
        chunk = await stream.read(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    n = int.from_bytes(head, "big")
    body = b""
    while len(body) < n:
        chunk = await stream.read(n - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return body
