"""Pure wire and storage formats shared by every ShadowVault node.

This package holds the byte layouts that two parties must agree on: the sealed-blob
envelope, blob identifiers, and the limits a decoder enforces. It performs no I/O, needs
no event loop and reads no clock, so any layer (and any peer) can use it to validate data.

Terms:
    blob: a sealed (compressed, then encrypted) chunk, tree or record, as stored and sent.
    blob id: BLAKE3-256 of a blob's sealed bytes; anyone can verify it without a key.
"""

from ._blob import (
    BLOB_FORMAT_VERSION as BLOB_FORMAT_VERSION,
)
from ._blob import (
    BLOB_HEADER_SIZE as BLOB_HEADER_SIZE,
)
from ._blob import (
    BLOB_NONCE_SIZE as BLOB_NONCE_SIZE,
)
from ._blob import (
    BLOB_OVERHEAD as BLOB_OVERHEAD,
)
from ._blob import (
    BLOB_TAG_SIZE as BLOB_TAG_SIZE,
)
from ._blob import (
    FLAG_ZSTD as FLAG_ZSTD,
)
from ._blob import (
    MAX_BLOB_SIZE as MAX_BLOB_SIZE,
)
from ._blob import (
    BlobFormatError as BlobFormatError,
)
from ._blob import (
    BlobHeader as BlobHeader,
)
from ._blob import (
    parse_blob_header as parse_blob_header,
)
from ._ids import (
    ID_SIZE as ID_SIZE,
)
from ._ids import (
    BlobId as BlobId,
)
from ._ids import (
    blob_id_of as blob_id_of,
)
from ._ids import (
    parse_hex_id as parse_hex_id,
)

__all__ = [
    "BLOB_FORMAT_VERSION",
    "BLOB_HEADER_SIZE",
    "BLOB_NONCE_SIZE",
    "BLOB_OVERHEAD",
    "BLOB_TAG_SIZE",
    "BlobFormatError",
    "BlobHeader",
    "BlobId",
    "FLAG_ZSTD",
    "ID_SIZE",
    "MAX_BLOB_SIZE",
    "blob_id_of",
    "parse_blob_header",
    "parse_hex_id",
]
