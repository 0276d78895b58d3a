"""The node daemon: a trio process holding the store and serving the HTTP API.

Terms:
    owner token: the admin bearer token written at first start to ``<home>/api.token``.
"""

from ._jobs import JOB_PREFIX as JOB_PREFIX
from ._peer_id import peer_id_of as peer_id_of
from ._service import DEFAULT_API as DEFAULT_API
from ._service import run_daemon as run_daemon
from ._tokens import ROLES as ROLES
from ._tokens import create_token as create_token
from ._tokens import ensure_owner_token as ensure_owner_token
from ._tokens import list_tokens as list_tokens
from ._tokens import revoke_token as revoke_token

__all__ = [
    "DEFAULT_API",
    "JOB_PREFIX",
    "ROLES",
    "create_token",
    "ensure_owner_token",
    "list_tokens",
    "peer_id_of",
    "revoke_token",
    "run_daemon",
]
