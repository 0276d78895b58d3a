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
from ._retain import owner_view as owner_view
from ._server import BlobSource as BlobSource
from ._server import ReplayCache as ReplayCache
from ._state import MeshState as MeshState
from ._state import QState as QState

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
    "owner_view",
    "peer_change",
    "record_notices",
    "replicas_of",
    "settings_from_config",
    "strip_p2p",
]
