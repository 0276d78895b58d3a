"""The addresses a peer could dial, from the configured listen addresses.

A node configured to listen on ``/ip4/0.0.0.0/tcp/4001`` (every interface) cannot be
dialled at 0.0.0.0. Before the node runs, ``shadowvault id`` shows what a peer could use
instead: each interface's address in place of the wildcard, as libp2p does when it
announces wildcard listeners. Configured ``p2p.announce`` addresses win over all of
this: they say how others reach the node (NAT, a DNS name).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence

_WILDCARDS = {"ip4": "0.0.0.0", "ip6": "::"}  # noqa: S104 (recognised, not bound)


def interface_addresses() -> dict[str, list[str]]:
    """This machine's interface addresses by family (``ip4``, ``ip6``), routable ones
    first and loopback last; IPv6 link-local ones are left out (they need a zone)."""
    import psutil  # type: ignore[import-untyped]  # 20 ms: only `id` and the daemon ask

    out: dict[str, list[str]] = {"ip4": [], "ip6": []}
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET:
                out["ip4"].append(a.address)
            elif a.family == socket.AF_INET6:
                host = a.address.split("%")[0]
                if not ipaddress.IPv6Address(host).is_link_local:
                    out["ip6"].append(host)
    for family, hosts in out.items():
        unique = list(dict.fromkeys(hosts))
        out[family] = sorted(unique, key=lambda h: ipaddress.ip_address(h).is_loopback)
    return out


def dialable_addrs(
    listen: Sequence[str],
    announce: Sequence[str] = (),
    interfaces: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Where peers could reach a node configured with ``listen`` and ``announce``.

    Args:
        listen: TCP multiaddrs to listen on (``/ip4/HOST/tcp/PORT``, ``/ip6/...``).
        announce: addresses to advertise instead; returned as they are if any.
        interfaces: addresses by family (``interface_addresses()`` if None).

    Returns:
        The addresses in order, without duplicates: a wildcard host (``0.0.0.0``,
        ``::``) is replaced by each interface address of its family, any other
        address is kept. A wildcard with no interface of its family stays as it is.
    """
    if announce:
        return list(dict.fromkeys(announce))
    if interfaces is None:
        interfaces = interface_addresses()
    out: list[str] = []
    for addr in listen:
        parts = addr.split("/")
        # ["", "ip4", host, "tcp", port, ...]
        if len(parts) >= 3 and _WILDCARDS.get(parts[1]) == parts[2] and interfaces.get(parts[1]):
            for host in interfaces[parts[1]]:
                out.append("/".join([*parts[:2], host, *parts[3:]]))
        else:
            out.append(addr)
    return list(dict.fromkeys(out))
