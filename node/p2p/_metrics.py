"""Prometheus metrics of the mesh, on the default registry (the daemon serves them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUESTS_SERVED = Counter(
    "shadowvault_p2p_requests_served_total",
    "Exchange requests from peers that passed every check, by kind.",
    ["kind"],
)
REQUESTS_REFUSED = Counter(
    "shadowvault_p2p_requests_refused_total",
    "Exchange requests refused, by reason (the error code sent to the peer).",
    ["reason"],
)
BLOBS_RECEIVED = Counter(
    "shadowvault_p2p_blobs_received_total",
    "Blobs received from peers that matched their id and were stored.",
)
BLOBS_REJECTED = Counter(
    "shadowvault_p2p_blobs_rejected_total",
    "Blobs received from peers that were dropped: wrong bytes for the id, or never asked for.",
)
BYTES_SENT = Counter("shadowvault_p2p_blob_bytes_sent_total", "Blob bytes sent to peers.")
BYTES_RECEIVED = Counter(
    "shadowvault_p2p_blob_bytes_received_total", "Blob bytes received from peers and stored."
)
CONNECTED_PEERS = Gauge("shadowvault_p2p_connected_peers", "Peers with an open connection.")
