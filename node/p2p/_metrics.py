"""Prometheus metrics of the mesh, on the default registry (the daemon serves them).

The metrics are created unregistered and join the default registry when the first mesh
opens (``register``), so a process that imports ``node.p2p`` without running a mesh
(a CLI command, the daemon before the mesh is wired in) exports no mesh series.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, Counter, Gauge

REQUESTS_SERVED = Counter(
    "shadowvault_p2p_requests_served_total",
    "Exchange requests from peers that passed every check, by kind.",
    ["kind"],
    registry=None,
)
REQUESTS_REFUSED = Counter(
    "shadowvault_p2p_requests_refused_total",
    "Exchange requests refused, by reason (the error code sent to the peer).",
    ["reason"],
    registry=None,
)
BLOBS_RECEIVED = Counter(
    "shadowvault_p2p_blobs_received_total",
    "Blobs received from peers that matched their id and were stored.",
    registry=None,
)
BLOBS_REJECTED = Counter(
    "shadowvault_p2p_blobs_rejected_total",
    "Blobs received from peers that were dropped: wrong bytes for the id, or never asked for.",
    registry=None,
)
BYTES_SENT = Counter(
    "shadowvault_p2p_blob_bytes_sent_total", "Blob bytes sent to peers.", registry=None
)
BYTES_RECEIVED = Counter(
    "shadowvault_p2p_blob_bytes_received_total",
    "Blob bytes received from peers and stored.",
    registry=None,
)
ANNOUNCEMENTS = Counter(
    "shadowvault_p2p_announcements_total",
    "Snapshot announcements: made by this node (sent) and new ones accepted from owners "
    "we store for (received).",
    ["direction"],
    registry=None,
)
OWNER_BYTES_STORED = Counter(
    "shadowvault_p2p_owner_bytes_stored_total",
    "Bytes of other owners' blobs stored here by replication, by owner peer id.",
    ["owner"],
    registry=None,
)
CONNECTED_PEERS = Gauge(
    "shadowvault_p2p_connected_peers", "Peers with an open connection.", registry=None
)

_ALL = (
    REQUESTS_SERVED,
    REQUESTS_REFUSED,
    BLOBS_RECEIVED,
    BLOBS_REJECTED,
    BYTES_SENT,
    BYTES_RECEIVED,
    ANNOUNCEMENTS,
    OWNER_BYTES_STORED,
    CONNECTED_PEERS,
)
_registered = False
_lock = threading.Lock()


def register() -> None:
    """Add the mesh's metrics to the default registry (once per process)."""
    global _registered
    with _lock:
        if not _registered:
            for metric in _ALL:
                REGISTRY.register(metric)
            _registered = True
