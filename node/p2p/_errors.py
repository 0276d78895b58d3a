"""Mesh errors; names say whose fault it is.

::

    MeshError                  base of everything this package raises
    ├── PeerRefused            the peer answered with an error code (``code``)
    ├── PeerMisbehaved         the peer broke the protocol (bad frame, wrong blob, ...)
    ├── PeerUnreachable        no connection or stream to the peer could be made
    └── UnknownPeer            a peer id that is not in the peer list (our caller's input)
"""

from __future__ import annotations

from protocol import ErrorCode


class MeshError(Exception):
    """Something on the mesh failed."""


class PeerRefused(MeshError):
    """The peer refused a request; ``code`` is the wire code (what to show the user)."""

    def __init__(self, peer: str, code: ErrorCode, message: str = "") -> None:
        super().__init__(
            f"peer {peer[-8:]} refused: {code.value}" + (f" ({message})" if message else "")
        )
        self.peer = peer
        self.code = code


class PeerMisbehaved(MeshError):
    """The peer sent something the protocol forbids; it is scored down."""


class PeerUnreachable(MeshError):
    """No connection or stream to the peer (offline, wrong address, closed)."""


class UnknownPeer(MeshError):
    """The peer id is not in this node's peer list."""
