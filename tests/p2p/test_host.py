"""The host wrapper: identity, Noise-only, guarded handlers, and no leaks over many runs."""

from __future__ import annotations

import contextlib
import os
import threading

import nacl.signing
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from multiaddr import Multiaddr

from node.p2p import PeerBook, PeerRecord, open_host
from node.repo import HomePaths, open_repository
from protocol import parse_peer_id, peer_id_from_public, peer_id_text
from tests.ops.helpers import make_repo

LOOP = ["/ip4/127.0.0.1/tcp/0"]


def _trio_tasks() -> int:
    root = trio.lowlevel.current_root_task()
    count = 0
    stack = [root]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _one_round(key_a, key_b) -> None:
    async with open_host(key_a, LOOP) as a, open_host(key_b, LOOP) as b:

        async def echo(stream):
            data = await stream.read(100)
            await stream.write(data)
            await stream.close()

        b.set_handler("/test/echo/1", echo)
        a.add_addrs(b.peer_id, [addr.rsplit("/p2p/", 1)[0] for addr in b.addrs])
        s = await a.new_stream(b.peer_id, "/test/echo/1")
        await s.write(b"ping")
        assert await s.read(100) == b"ping"
        await s.close()


async def test_host_peer_id_is_the_identity_key():
    key = nacl.signing.SigningKey.generate()
    async with open_host(key, LOOP) as host:
        assert host.peer_id.to_bytes() == peer_id_from_public(bytes(key.verify_key))
        assert host.addrs and all(
            a.endswith("/p2p/" + host.peer_id.to_base58()) for a in host.addrs
        )


async def test_host_start_stop_many_times_leaks_no_fds_or_tasks():
    key_a, key_b = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    await _one_round(key_a, key_b)  # warm-up: imports, lazily created loggers
    fds, tasks = _fds(), _trio_tasks()
    for _ in range(12):
        await _one_round(key_a, key_b)
    assert _fds() <= fds
    assert _trio_tasks() <= tasks


async def test_host_offers_noise_only():
    key_a, key_b = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    async with open_host(key_a, LOOP) as a, open_host(key_b, LOOP) as b:
        a.add_addrs(b.peer_id, [addr.rsplit("/p2p/", 1)[0] for addr in b.addrs])
        await a.connect(b.peer_id)
        conn = a.host.get_network().get_connections(b.peer_id)[0]
        assert type(conn.muxed_conn).__name__ == "Yamux"
    # A dialer offering only plaintext (unauthenticated peer ids) gets no connection.
    plain_kp = create_new_key_pair(os.urandom(32))
    plain = new_host(
        key_pair=plain_kp,
        sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(plain_kp)},
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )
    async with open_host(key_b, LOOP) as b, plain.run(listen_addrs=[Multiaddr(LOOP[0])]):
        try:
            with pytest.raises(Exception, match=r"(?i)unable to connect|secur|negotiat"):
                await plain.connect(info_from_p2p_addr(Multiaddr(b.addrs[0])))
            assert not b.host.get_connected_peers()
        finally:
            with trio.CancelScope(shield=True):
                await plain.close()


async def test_handler_exception_does_not_kill_the_host():
    key_a, key_b = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    async with open_host(key_a, LOOP) as a, open_host(key_b, LOOP) as b:

        async def broken(stream):
            await stream.read(10)
            raise RuntimeError("handler bug")

        async def eof_escapes(stream):
            await stream.read(10)
            raise StreamEOF("escaping EOF wedges a connection unless guarded")

        async def echo(stream):
            await stream.write(await stream.read(100))
            await stream.close()

        b.set_handler("/test/broken/1", broken)
        b.set_handler("/test/eof/1", eof_escapes)
        b.set_handler("/test/echo/1", echo)
        a.add_addrs(b.peer_id, [addr.rsplit("/p2p/", 1)[0] for addr in b.addrs])
        for proto in ("/test/broken/1", "/test/eof/1", "/test/broken/1"):
            s = await a.new_stream(b.peer_id, proto)
            await s.write(b"x")
            with contextlib.suppress(StreamEOF, StreamReset):
                assert await s.read(10) == b""
        s = await a.new_stream(b.peer_id, "/test/echo/1")
        await s.write(b"still here")
        assert await s.read(100) == b"still here"


def test_peer_book_add_list_remove_survives_reopen(tmp_path):
    repo = make_repo(tmp_path / "home")
    other = nacl.signing.SigningKey.generate()
    pid = peer_id_text(peer_id_from_public(bytes(other.verify_key)))
    book = PeerBook(repo.store)
    book.put(
        PeerRecord(pid, name="bob", addrs=("/ip4/10.0.0.2/tcp/4001",), store_for=True, quota=10)
    )
    repo.close()
    repo = open_repository(HomePaths(tmp_path / "home"), "test passphrase")
    try:
        book = PeerBook(repo.store)
        [rec] = book.all()
        assert (rec.peer_id, rec.name, rec.store_for, rec.store_at, rec.quota) == (
            pid,
            "bob",
            True,
            False,
            10,
        )
        assert rec.addrs == ("/ip4/10.0.0.2/tcp/4001",)
        assert book.remove(parse_peer_id(pid))
        assert not book.remove(parse_peer_id(pid))
        assert book.all() == []
    finally:
        repo.close()


async def test_mesh_start_stop_leaks_no_fds_tasks_or_threads(tmp_path):
    from tests.p2p.helpers import link, running

    repo_a, repo_b = make_repo(tmp_path / "a"), make_repo(tmp_path / "b")

    def cleanup_threads() -> int:  # pubsub's cache sweeper, one per running mesh
        return sum("_background_cleanup" in t.name for t in threading.enumerate())

    async def round_trip() -> None:
        async with running(repo_a) as a, running(repo_b) as b:
            assert cleanup_threads() == 2
            link(a, b)
            await b.sync()

    try:
        await round_trip()
        fds, tasks = _fds(), _trio_tasks()
        for _ in range(5):
            await round_trip()
        assert _fds() <= fds
        assert _trio_tasks() <= tasks
        assert cleanup_threads() == 0
    finally:
        repo_a.close()
        repo_b.close()


async def test_dht_finds_a_known_peer_whose_address_is_unknown(tmp_path):
    """c knows a's peer id but no address; b (which c bootstraps from) knows a. c finds a
    through the DHT, connects, and keeps the address in its peer list."""
    from tests.p2p.helpers import know, running, wait_until

    repos = [make_repo(tmp_path / n) for n in ("a", "b", "c")]
    try:
        async with running(repos[0]) as a, running(repos[1]) as b, running(repos[2]) as c:
            know(a, b)
            know(b, c)
            c.add_peer(a.peer_id, store_for=True)  # no address
            await b.connect(a.peer_id)
            await c.connect(b.peer_id)
            await wait_until(
                lambda: (
                    b._discovery.routing_table_size >= 2 and c._discovery.routing_table_size >= 1
                )
            )
            await c.connect(a.peer_id)
            [rec] = [p for p in c.list_peers() if p["peer_id"] == a.peer_id]
            assert rec["connected"]
            assert rec["addrs"] and all(
                addr.startswith("/ip4/127.0.0.1/tcp/") for addr in rec["addrs"]
            )
    finally:
        for r in repos:
            r.close()
