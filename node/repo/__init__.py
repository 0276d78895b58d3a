"""The encrypted, deduplicating store of one node.

Chunk -> seal -> pack -> index: files are cut into content-defined chunks, each chunk is
compressed and encrypted into a blob, blobs are appended to pack files, and LevelDB maps
each blob id to its place. Trees and snapshot records are blobs too, so the whole index
can be rebuilt from the packs. This package knows nothing of the network or the API.

Terms:
    node home: the directory holding one node's keys, config and store.
    store: packs + LevelDB index, owned by one process at a time.
    repository: a store opened with the keys that decrypt it.
"""

from ._audit import AuditEntry as AuditEntry
from ._audit import AuditVerifyReport as AuditVerifyReport
from ._audit import append_audit as append_audit
from ._audit import append_audit_to as append_audit_to
from ._audit import audit_without_unlock as audit_without_unlock
from ._audit import key_file_digest as key_file_digest
from ._audit import list_audit as list_audit
from ._audit import verify_audit as verify_audit
from ._check import check_store as check_store
from ._check_report import CheckReport as CheckReport
from ._check_report import Problem as Problem
from ._check_report import ProgressFn as ProgressFn
from ._check_report import Subset as Subset
from ._chunker import Chunker as Chunker
from ._chunker import ChunkerParams as ChunkerParams
from ._errors import BlobNotFound as BlobNotFound
from ._errors import CorruptBlob as CorruptBlob
from ._errors import FormatError as FormatError
from ._errors import HomeError as HomeError
from ._errors import PassphraseError as PassphraseError
from ._errors import RepoError as RepoError
from ._errors import StoreFull as StoreFull
from ._errors import StoreLocked as StoreLocked
from ._errors import WrongPassphrase as WrongPassphrase
from ._gc import DEFAULT_REWRITE_BELOW as DEFAULT_REWRITE_BELOW
from ._gc import GcError as GcError
from ._gc import GcReport as GcReport
from ._gc import collect_garbage as collect_garbage
from ._gc import last_gc as last_gc
from ._holds import Hold as Hold
from ._holds import SnapshotHeld as SnapshotHeld
from ._holds import get_hold as get_hold
from ._holds import list_holds as list_holds
from ._holds import release_hold as release_hold
from ._holds import set_hold as set_hold
from ._home import HomePaths as HomePaths
from ._home import resolve_home as resolve_home
from ._keys import KDF_PROFILES as KDF_PROFILES
from ._keys import KdfParams as KdfParams
from ._keys import kdf_params_from_env as kdf_params_from_env
from ._kit import Kit as Kit
from ._kit import init_home_from_kit as init_home_from_kit
from ._kit import open_kit as open_kit
from ._kit import write_kit as write_kit
from ._pack import BlobKind as BlobKind
from ._pins import PinSet as PinSet
from ._refusals import RefusalAudit as RefusalAudit
from ._repair import RepairReport as RepairReport
from ._repair import repair_index as repair_index
from ._repository import InitOptions as InitOptions
from ._repository import Repository as Repository
from ._repository import change_passphrase as change_passphrase
from ._repository import identity_of as identity_of
from ._repository import init_home as init_home
from ._repository import open_repository as open_repository
from ._repository import open_scratch_repository as open_scratch_repository
from ._repository import unlock_master as unlock_master
from ._seal import COMPRESSION_OFF as COMPRESSION_OFF
from ._seal import Sealer as Sealer
from ._seal import parse_compression as parse_compression
from ._snapshot import Snapshot as Snapshot
from ._snapshot import delete_snapshot_record as delete_snapshot_record
from ._snapshot import list_snapshots as list_snapshots
from ._snapshot import load_snapshot as load_snapshot
from ._snapshot import resolve_snapshot as resolve_snapshot
from ._snapshot import resolve_snapshot_id as resolve_snapshot_id
from ._snapshot import save_snapshot as save_snapshot
from ._store import BlobWriter as BlobWriter
from ._store import RecoveryReport as RecoveryReport
from ._store import Store as Store
from ._tree import DIR as DIR
from ._tree import FILE as FILE
from ._tree import SYMLINK as SYMLINK
from ._tree import Node as Node
from ._tree import TreeFormatError as TreeFormatError
from ._tree import decode_tree as decode_tree
from ._tree import encode_tree as encode_tree
from ._tree import valid_name as valid_name
from ._walk import Reference as Reference
from ._walk import load_tree as load_tree
from ._walk import walk_references as walk_references

__all__ = [
    "AuditEntry",
    "AuditVerifyReport",
    "BlobKind",
    "BlobNotFound",
    "BlobWriter",
    "COMPRESSION_OFF",
    "CheckReport",
    "Chunker",
    "ChunkerParams",
    "CorruptBlob",
    "DEFAULT_REWRITE_BELOW",
    "DIR",
    "FILE",
    "FormatError",
    "GcError",
    "GcReport",
    "Hold",
    "HomeError",
    "HomePaths",
    "InitOptions",
    "KDF_PROFILES",
    "KdfParams",
    "Kit",
    "Node",
    "PassphraseError",
    "PinSet",
    "Problem",
    "ProgressFn",
    "RecoveryReport",
    "Reference",
    "RefusalAudit",
    "RepairReport",
    "RepoError",
    "Repository",
    "SYMLINK",
    "Sealer",
    "Snapshot",
    "SnapshotHeld",
    "Store",
    "StoreFull",
    "StoreLocked",
    "Subset",
    "TreeFormatError",
    "WrongPassphrase",
    "append_audit",
    "append_audit_to",
    "audit_without_unlock",
    "change_passphrase",
    "check_store",
    "collect_garbage",
    "decode_tree",
    "delete_snapshot_record",
    "encode_tree",
    "get_hold",
    "identity_of",
    "init_home",
    "init_home_from_kit",
    "kdf_params_from_env",
    "key_file_digest",
    "last_gc",
    "list_audit",
    "list_holds",
    "list_snapshots",
    "load_snapshot",
    "load_tree",
    "open_kit",
    "open_repository",
    "open_scratch_repository",
    "parse_compression",
    "release_hold",
    "repair_index",
    "resolve_home",
    "resolve_snapshot",
    "resolve_snapshot_id",
    "save_snapshot",
    "set_hold",
    "unlock_master",
    "valid_name",
    "verify_audit",
    "walk_references",
    "write_kit",
]
