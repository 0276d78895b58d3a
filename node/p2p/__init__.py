"""The mesh: the libp2p host, discovery, signed requests, chunk exchange and replication.

Sits between the operations and the repository: it stores and serves blobs through
``node.repo`` and is driven by the daemon and by operations (restore from peers, healing).
"""
