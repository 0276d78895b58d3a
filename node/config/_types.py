"""Value types of the config: addresses, peer ids, cron expressions, compression.

Each validator raises ``PydanticCustomError("expected", "expected ...")``: the loader
adds the key path, where the value came from and what was found, so a message reads
``config.yaml: p2p.listen[1]: expected a multiaddr like /ip4/0.0.0.0/tcp/4001, found
'localhost:4001'``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

import multiaddr  # type: ignore[import-untyped]
from pydantic import AfterValidator, PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]{40,60}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_TRANSPORTS = ("ip4", "ip6", "dns", "dns4", "dns6")


def expected(what: str) -> PydanticCustomError:
    """The error every config type raises: the loader adds path, source and found value."""
    return PydanticCustomError("expected", what)


def rule(message: str) -> PydanticCustomError:
    """An error whose message is complete (it already says what was found)."""
    return PydanticCustomError("rule", message)


def _host_port(value: str) -> str:
    what = "expected HOST:PORT like 127.0.0.1:8734 or [::1]:8734"
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise expected(what)
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise expected(what) from None
    elif not _HOSTNAME.fullmatch(host):
        raise expected(what)
    return value


def _host_port_or_empty(value: str) -> str:
    return value if value == "" else _host_port(value)


def _parse_multiaddr(value: str, what: str) -> Any:
    if not value.startswith("/"):
        raise expected(what)
    try:
        addr = multiaddr.Multiaddr(value)
    except (ValueError, TypeError):
        raise expected(what) from None
    names = [p.name for p in addr.protocols()]
    if len(names) < 2 or names[0] not in _TRANSPORTS or names[1] != "tcp":
        raise expected(what)
    return addr


def _listen_addr(value: str) -> str:
    what = "expected a multiaddr like /ip4/0.0.0.0/tcp/4001"
    addr = _parse_multiaddr(value, what)
    if "p2p" in [p.name for p in addr.protocols()]:
        raise expected(what + " (without /p2p/...)")
    return value


def _peer_addr(value: str) -> str:
    what = "expected a multiaddr with the peer id, like /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW..."
    addr = _parse_multiaddr(value, what)
    if [p.name for p in addr.protocols()][-1] != "p2p":
        raise expected(what)
    return value


def _peer_id(value: str) -> str:
    what = "expected a libp2p peer id like 12D3KooW... (base58)"
    if not _BASE58.fullmatch(value):
        raise expected(what)
    try:
        multiaddr.Multiaddr(f"/p2p/{value}")
    except (ValueError, TypeError):
        raise expected(what) from None
    return value


def _cron(value: str) -> str:
    if not value:
        return value
    # Imported here: croniter's import runs `file` on the interpreter (a subprocess, via
    # platform.architecture), which every command paid for, with or without a cron set.
    from croniter import croniter

    if not croniter.is_valid(value):
        raise expected(
            "expected a cron expression like '0 3 * * *' (minute hour day month weekday), "
            "'@daily', or '' for off"
        )
    return value


def _compression(value: Any) -> int:
    what = "expected 'off' or a zstd level 1-19"
    if isinstance(value, bool):
        raise expected(what)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("off", "none", "0"):
            return 0
        if not text.isdigit():
            raise expected(what)
        value = int(text)
    if not isinstance(value, int) or not 0 <= value <= 19:
        raise expected(what)
    return value


def _name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", value):
        raise expected("expected a short name of a-z, 0-9, '-' and '_'")
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]
"""``HOST:PORT`` of a TCP listener (IPv6 hosts in brackets)."""

OptionalHostPort = Annotated[str, AfterValidator(_host_port_or_empty)]
"""``HOST:PORT``, or ``""`` for "not a listener of its own"."""

ListenAddr = Annotated[str, AfterValidator(_listen_addr)]
"""A TCP multiaddr to listen on or announce, without a peer id."""

PeerAddr = Annotated[str, AfterValidator(_peer_addr)]
"""A TCP multiaddr ending in ``/p2p/<peer id>`` (bootstrap peers)."""

PeerId = Annotated[str, AfterValidator(_peer_id)]
"""A libp2p peer id (base58, as ``shadowvault id`` prints it)."""

Cron = Annotated[str, AfterValidator(_cron)]
"""A 5-field cron expression (croniter syntax), or ``""`` for never."""

Compression = Annotated[
    int,
    PlainValidator(_compression),
    PlainSerializer(lambda level: "off" if level == 0 else level),
]
"""A zstd level 1-19; 0 (written ``off``) stores blobs uncompressed."""

Name = Annotated[str, AfterValidator(_name)]
"""A short identifier (schedule names)."""
