"""`shadowvault id`: the addresses a peer could use, with and without a running node."""

from __future__ import annotations

import socket
from typing import Any

from node.config import interface_addresses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_id_without_a_node_shows_interface_addresses_for_a_wildcard(node: Any) -> None:
    (node.home / "config.yaml").write_text("p2p:\n  listen: [/ip4/0.0.0.0/tcp/4001]\n")
    facts = node.json("id")
    peer_id = facts["peer_id"]
    assert facts["running"] is False
    assert not any("/0.0.0.0/" in a for a in facts["addrs"])
    expected = [f"/ip4/{h}/tcp/4001/p2p/{peer_id}" for h in interface_addresses()["ip4"]]
    assert facts["addrs"] == expected
    assert f"/ip4/127.0.0.1/tcp/4001/p2p/{peer_id}" in facts["addrs"]
    text = node.run("id").stdout
    assert "not running" in text
    assert "0.0.0.0" not in text


def test_id_without_a_node_shows_the_announce_addresses(node: Any) -> None:
    (node.home / "config.yaml").write_text(
        "p2p:\n  listen: [/ip4/0.0.0.0/tcp/4001]\n  announce: [/dns4/vault.example.org/tcp/4001]\n"
    )
    facts = node.json("id")
    assert facts["addrs"] == [f"/dns4/vault.example.org/tcp/4001/p2p/{facts['peer_id']}"]
    assert facts["running"] is False


def test_id_of_a_running_node_shows_its_bound_addresses(node: Any, daemon_for: Any) -> None:
    (node.home / "config.yaml").write_text("p2p:\n  listen: [/ip4/0.0.0.0/tcp/4001]\n")
    listen = f"/ip4/127.0.0.1/tcp/{_free_port()}"
    daemon = daemon_for(node, listen=listen)
    facts = node.json("id")
    assert facts["running"] is True
    assert facts["addrs"] == daemon.addrs == [f"{listen}/p2p/{facts['peer_id']}"]
    assert "not running" not in node.run("id").stdout
