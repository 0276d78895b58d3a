"""User-level operations: each takes an open repository and options, and returns a result.

Operations never print; they report through small Protocols (``BackupProgress``,
``RestoreProgress``) and return dataclasses that the CLI (and later the API) render.
"""

from typing import TYPE_CHECKING

from node._lazy import lazy_getattr

if TYPE_CHECKING:
    from ._backup import BackupError as BackupError
    from ._backup import BackupOptions as BackupOptions
    from ._backup import BackupProgress as BackupProgress
    from ._backup import BackupSummary as BackupSummary
    from ._backup import run_backup as run_backup
    from ._browse import Change as Change
    from ._browse import diff as diff
    from ._browse import dump as dump
    from ._browse import filter_snapshots as filter_snapshots
    from ._browse import find as find
    from ._browse import find_node as find_node
    from ._browse import list_dir as list_dir
    from ._browse import node_json as node_json
    from ._browse import snapshot_json as snapshot_json
    from ._check import run_check as run_check
    from ._compliance import FRAMEWORKS as FRAMEWORKS
    from ._compliance import ComplianceReport as ComplianceReport
    from ._compliance import ControlResult as ControlResult
    from ._compliance import Evidence as Evidence
    from ._compliance import compliance_report as compliance_report
    from ._compliance import gather_evidence as gather_evidence
    from ._control import Cancelled as Cancelled
    from ._control import LocalControl as LocalControl
    from ._control import Progress as Progress
    from ._drill import DrillCheck as DrillCheck
    from ._drill import DrillError as DrillError
    from ._drill import DrillOptions as DrillOptions
    from ._drill import DrillResult as DrillResult
    from ._drill import DrillStep as DrillStep
    from ._drill import OffsiteFetch as OffsiteFetch
    from ._drill import compare_tree as compare_tree
    from ._drill import list_drills as list_drills
    from ._drill import run_drill as run_drill
    from ._drill import save_drill as save_drill
    from ._policy import Decision as Decision
    from ._policy import Duration as Duration
    from ._policy import Group as Group
    from ._policy import Policy as Policy
    from ._policy import PolicyError as PolicyError
    from ._policy import SnapshotInfo as SnapshotInfo
    from ._policy import apply_policy as apply_policy
    from ._policy import parse_group_by as parse_group_by
    from ._policy import parse_tag_lists as parse_tag_lists
    from ._requests import BackupRequest as BackupRequest
    from ._requests import CheckRequest as CheckRequest
    from ._requests import DrillRequest as DrillRequest
    from ._requests import ForgetRequest as ForgetRequest
    from ._requests import GcRequest as GcRequest
    from ._requests import HoldRequest as HoldRequest
    from ._requests import RestoreRequest as RestoreRequest
    from ._restore import RestoreError as RestoreError
    from ._restore import RestoreOptions as RestoreOptions
    from ._restore import RestoreProgress as RestoreProgress
    from ._restore import RestoreSummary as RestoreSummary
    from ._restore import run_restore as run_restore
    from ._retention import ForgetOptions as ForgetOptions
    from ._retention import ForgetResult as ForgetResult
    from ._retention import HoldResult as HoldResult
    from ._retention import hold_snapshot as hold_snapshot
    from ._retention import parse_span as parse_span
    from ._retention import parse_until as parse_until
    from ._retention import record_key_change as record_key_change
    from ._retention import release_snapshot as release_snapshot
    from ._retention import run_forget as run_forget
    from ._retention import run_gc as run_gc
    from ._retention import snapshot_holds as snapshot_holds
    from ._stats import StoreStats as StoreStats
    from ._stats import run_stats as run_stats

# Loaded on first use (PEP 562), not here: a command runs one operation, and importing
# them all (backup's walker and pathspec, restore, drills, compliance, the mesh's state
# for retention) cost every CLI command about 0.1 s before it started.
_HOME = {
    "BackupError": "_backup",
    "BackupOptions": "_backup",
    "BackupProgress": "_backup",
    "BackupSummary": "_backup",
    "run_backup": "_backup",
    "Change": "_browse",
    "diff": "_browse",
    "dump": "_browse",
    "filter_snapshots": "_browse",
    "find": "_browse",
    "find_node": "_browse",
    "list_dir": "_browse",
    "node_json": "_browse",
    "snapshot_json": "_browse",
    "run_check": "_check",
    "FRAMEWORKS": "_compliance",
    "ComplianceReport": "_compliance",
    "ControlResult": "_compliance",
    "Evidence": "_compliance",
    "compliance_report": "_compliance",
    "gather_evidence": "_compliance",
    "Cancelled": "_control",
    "LocalControl": "_control",
    "Progress": "_control",
    "DrillCheck": "_drill",
    "DrillError": "_drill",
    "DrillOptions": "_drill",
    "DrillResult": "_drill",
    "DrillStep": "_drill",
    "OffsiteFetch": "_drill",
    "compare_tree": "_drill",
    "list_drills": "_drill",
    "run_drill": "_drill",
    "save_drill": "_drill",
    "Decision": "_policy",
    "Duration": "_policy",
    "Group": "_policy",
    "Policy": "_policy",
    "PolicyError": "_policy",
    "SnapshotInfo": "_policy",
    "apply_policy": "_policy",
    "parse_group_by": "_policy",
    "parse_tag_lists": "_policy",
    "RestoreError": "_restore",
    "RestoreOptions": "_restore",
    "RestoreProgress": "_restore",
    "RestoreSummary": "_restore",
    "run_restore": "_restore",
    "BackupRequest": "_requests",
    "CheckRequest": "_requests",
    "DrillRequest": "_requests",
    "ForgetRequest": "_requests",
    "GcRequest": "_requests",
    "HoldRequest": "_requests",
    "RestoreRequest": "_requests",
    "ForgetOptions": "_retention",
    "ForgetResult": "_retention",
    "HoldResult": "_retention",
    "hold_snapshot": "_retention",
    "parse_span": "_retention",
    "parse_until": "_retention",
    "record_key_change": "_retention",
    "release_snapshot": "_retention",
    "run_forget": "_retention",
    "run_gc": "_retention",
    "snapshot_holds": "_retention",
    "StoreStats": "_stats",
    "run_stats": "_stats",
}


__getattr__ = lazy_getattr(__name__, _HOME, globals())


__all__ = [
    "BackupError",
    "BackupOptions",
    "BackupProgress",
    "BackupRequest",
    "BackupSummary",
    "Cancelled",
    "Change",
    "CheckRequest",
    "ComplianceReport",
    "ControlResult",
    "Decision",
    "DrillCheck",
    "DrillError",
    "DrillOptions",
    "DrillRequest",
    "DrillResult",
    "DrillStep",
    "Duration",
    "Evidence",
    "FRAMEWORKS",
    "ForgetOptions",
    "ForgetRequest",
    "ForgetResult",
    "GcRequest",
    "Group",
    "HoldRequest",
    "HoldResult",
    "LocalControl",
    "OffsiteFetch",
    "Policy",
    "PolicyError",
    "Progress",
    "RestoreError",
    "RestoreOptions",
    "RestoreProgress",
    "RestoreRequest",
    "RestoreSummary",
    "SnapshotInfo",
    "StoreStats",
    "apply_policy",
    "compare_tree",
    "compliance_report",
    "diff",
    "dump",
    "filter_snapshots",
    "find",
    "find_node",
    "gather_evidence",
    "hold_snapshot",
    "list_dir",
    "list_drills",
    "node_json",
    "parse_group_by",
    "parse_span",
    "parse_tag_lists",
    "parse_until",
    "record_key_change",
    "release_snapshot",
    "run_backup",
    "run_check",
    "run_drill",
    "run_forget",
    "run_gc",
    "run_restore",
    "run_stats",
    "save_drill",
    "snapshot_holds",
    "snapshot_json",
]
