"""The mesh: the libp2p host, signed requests, chunk exchange and replication.

Sits between the operations and the repository: it stores and serves blobs through
``node.repo`` and is driven by the daemon (``open_mesh``) and by operations (restore from
peers, healing). Wire formats live in ``protocol``; this package does the I/O.

Terms:
    owner: the node whose snapshots these are (it alone can decrypt them).
    holder: a node keeping an owner's sealed blobs for it ("store for" that owner).
    store-for / store-at: the two roles of a peer in our peer list; a peer in neither
        role is refused every request (``not_authorised``).
    announcement: an owner's signed "snapshot N is X, its manifest is M".
    receipt: a holder's signed "I hold a complete copy of X".
    notice: an owner's signed forget, hold or release of snapshots it announced; with
        the announcements it forms the owner's stream, which holders honour
        (``_retain``: what a holder keeps, and the owner's lease).
"""

from typing import TYPE_CHECKING

from node._lazy import lazy_getattr

if TYPE_CHECKING:
    from ._errors import MeshError as MeshError
    from ._errors import PeerMisbehaved as PeerMisbehaved
    from ._errors import PeerRefused as PeerRefused
    from ._errors import PeerUnreachable as PeerUnreachable
    from ._errors import UnknownPeer as UnknownPeer
    from ._fetch import FetchResult as FetchResult
    from ._fetch import QuotaExceeded as QuotaExceeded
    from ._heal import BlobFetcher as BlobFetcher
    from ._heal import FetchReport as FetchReport
    from ._heal import HealReport as HealReport
    from ._heal import MissingBlob as MissingBlob
    from ._heal import fetch_snapshot as fetch_snapshot
    from ._heal import heal_blobs as heal_blobs
    from ._heal import heal_problems as heal_problems
    from ._heal import missing_blobs as missing_blobs
    from ._host import MeshHost as MeshHost
    from ._host import open_host as open_host
    from ._mesh import Mesh as Mesh
    from ._mesh import MeshSettings as MeshSettings
    from ._mesh import RepoBlobSource as RepoBlobSource
    from ._mesh import open_mesh as open_mesh
    from ._mesh import replicas_of as replicas_of
    from ._mesh import settings_from_config as settings_from_config
    from ._notice import announce_retention as announce_retention
    from ._notice import record_notices as record_notices
    from ._offsite import OffsiteCopy as OffsiteCopy
    from ._offsite import fetch_offsite_copy as fetch_offsite_copy
    from ._peers import PeerBook as PeerBook
    from ._peers import PeerRecord as PeerRecord
    from ._peers import peer_change as peer_change
    from ._peers import strip_p2p as strip_p2p
    from ._retain import DEFAULT_OWNER_LEASE as DEFAULT_OWNER_LEASE
    from ._retain import ForeignReport as ForeignReport
    from ._retain import ForeignRetention as ForeignRetention
    from ._retain import OwnerView as OwnerView
    from ._retain import other_owners as other_owners
    from ._retain import owner_view as owner_view
    from ._server import BlobSource as BlobSource
    from ._server import ReplayCache as ReplayCache
    from ._state import MeshState as MeshState
    from ._state import QState as QState

# Loaded on first use (PEP 562), not here: most of this package needs libp2p (about 1 s
# and 50 MB to import), while a CLI command that only forgets or collects garbage needs
# just the retention modules (``_retain``, ``_notice``), which do not.
_HOME = {
    "MeshError": "_errors",
    "PeerMisbehaved": "_errors",
    "PeerRefused": "_errors",
    "PeerUnreachable": "_errors",
    "UnknownPeer": "_errors",
    "FetchResult": "_fetch",
    "QuotaExceeded": "_fetch",
    "BlobFetcher": "_heal",
    "FetchReport": "_heal",
    "HealReport": "_heal",
    "MissingBlob": "_heal",
    "fetch_snapshot": "_heal",
    "heal_blobs": "_heal",
    "heal_problems": "_heal",
    "missing_blobs": "_heal",
    "MeshHost": "_host",
    "open_host": "_host",
    "Mesh": "_mesh",
    "MeshSettings": "_mesh",
    "RepoBlobSource": "_mesh",
    "open_mesh": "_mesh",
    "replicas_of": "_mesh",
    "settings_from_config": "_mesh",
    "announce_retention": "_notice",
    "record_notices": "_notice",
    "OffsiteCopy": "_offsite",
    "fetch_offsite_copy": "_offsite",
    "PeerBook": "_peers",
    "PeerRecord": "_peers",
    "peer_change": "_peers",
    "strip_p2p": "_peers",
    "DEFAULT_OWNER_LEASE": "_retain",
    "ForeignReport": "_retain",
    "ForeignRetention": "_retain",
    "OwnerView": "_retain",
    "other_owners": "_retain",
    "owner_view": "_retain",
    "BlobSource": "_server",
    "ReplayCache": "_server",
    "MeshState": "_state",
    "QState": "_state",
}


__getattr__ = lazy_getattr(__name__, _HOME, globals())


__all__ = [
    "BlobFetcher",
    "BlobSource",
    "DEFAULT_OWNER_LEASE",
    "FetchReport",
    "FetchResult",
    "ForeignReport",
    "ForeignRetention",
    "HealReport",
    "Mesh",
    "MeshError",
    "MeshHost",
    "MeshSettings",
    "MeshState",
    "MissingBlob",
    "OffsiteCopy",
    "OwnerView",
    "PeerBook",
    "PeerMisbehaved",
    "PeerRecord",
    "PeerRefused",
    "PeerUnreachable",
    "QState",
    "QuotaExceeded",
    "ReplayCache",
    "RepoBlobSource",
    "UnknownPeer",
    "announce_retention",
    "fetch_offsite_copy",
    "fetch_snapshot",
    "heal_blobs",
    "heal_problems",
    "missing_blobs",
    "open_host",
    "open_mesh",
    "other_owners",
    "owner_view",
    "peer_change",
    "record_notices",
    "replicas_of",
    "settings_from_config",
    "strip_p2p",
]
