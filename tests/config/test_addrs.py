"""Where a peer could dial a node that is not running (``dialable_addrs``)."""

from __future__ import annotations

import pytest

from node.config import dialable_addrs, interface_addresses

IFACES = {"ip4": ["192.0.2.7", "10.1.2.3", "127.0.0.1"], "ip6": ["2001:db8::5", "::1"]}


@pytest.mark.parametrize(
    ("listen", "announce", "expected"),
    [
        (
            ["/ip4/0.0.0.0/tcp/4001"],
            [],
            ["/ip4/192.0.2.7/tcp/4001", "/ip4/10.1.2.3/tcp/4001", "/ip4/127.0.0.1/tcp/4001"],
        ),
        (["/ip6/::/tcp/4001"], [], ["/ip6/2001:db8::5/tcp/4001", "/ip6/::1/tcp/4001"]),
        (["/ip4/127.0.0.1/tcp/4001"], [], ["/ip4/127.0.0.1/tcp/4001"]),
        (
            ["/ip4/10.1.2.3/tcp/4001", "/ip4/0.0.0.0/tcp/4001"],
            [],
            ["/ip4/10.1.2.3/tcp/4001", "/ip4/192.0.2.7/tcp/4001", "/ip4/127.0.0.1/tcp/4001"],
        ),
        (
            ["/ip4/0.0.0.0/tcp/4001"],
            ["/dns4/vault.example.org/tcp/4001"],
            ["/dns4/vault.example.org/tcp/4001"],
        ),
    ],
    ids=["ip4-wildcard", "ip6-wildcard", "specific-kept", "no-duplicates", "announce-wins"],
)
def test_dialable_addrs_replace_wildcards(
    listen: list[str], announce: list[str], expected: list[str]
) -> None:
    assert dialable_addrs(listen, announce, IFACES) == expected


def test_a_wildcard_of_a_family_without_interfaces_is_kept() -> None:
    assert dialable_addrs(["/ip6/::/tcp/1"], (), {"ip4": ["192.0.2.7"], "ip6": []}) == [
        "/ip6/::/tcp/1"
    ]


def test_interface_addresses_of_this_machine_have_loopback_last() -> None:
    found = interface_addresses()
    assert "127.0.0.1" in found["ip4"]
    assert found["ip4"][-1] == "127.0.0.1"
    assert "0.0.0.0" not in found["ip4"]
    assert not any(a.startswith("fe80") for a in found["ip6"])
