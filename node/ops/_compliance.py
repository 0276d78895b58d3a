"""Compliance evidence: which controls of a framework this node's own records support.

This is an evidence report, not an attestation. For each control that a backup node can
speak to, it lists what the node can show (drills and their results, encryption at rest,
integrity-check coverage, access tokens and roles, replication, audit trail) and says plainly what is
missing. It never states that a system is certified or compliant: that is an auditor's
judgement over far more than one node.

The evidence kinds are computed once (``gather_evidence``) and mapped onto each
framework's controls (``FRAMEWORKS``). A control is ``evidenced`` when every kind it
needs is present and good, ``partial`` when some are, ``not evidenced`` otherwise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from node.repo import Repository, list_snapshots

from ._drill import DrillResult

DRILL_WINDOW_DAYS = 90
"""A passing drill within this many days evidences recovery testing (quarterly)."""
CHECK_WINDOW_DAYS = 30
BACKUP_WINDOW_DAYS = 7
JOB_PREFIX = b"j"
"""The daemon's job history records (node/daemon/_jobs.py): JSON with kind/state/finished."""
TOKENS_FILE = "api-tokens.json"
"""The daemon's token roles (node/daemon/_tokens.py): {digest: {name, role}}, no secrets."""

DISCLAIMER = (
    "This report lists evidence kept by one ShadowVault node. It is not a certification, "
    "an attestation or a statement of compliance; whether a control is met is decided by "
    "your auditor over the whole system."
)


@dataclass(slots=True)
class Evidence:
    """One kind of evidence and whether it is present and good."""

    kind: str
    present: bool
    statement: str


@dataclass(frozen=True, slots=True)
class Control:
    id: str
    title: str
    needs: tuple[str, ...]


@dataclass(slots=True)
class ControlResult:
    id: str
    title: str
    status: str
    """``evidenced``, ``partial`` or ``not evidenced``"""
    evidence: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ComplianceReport:
    framework: str
    generated_ns: int
    disclaimer: str
    controls: list[ControlResult]
    evidence: list[Evidence]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FRAMEWORKS: dict[str, tuple[Control, ...]] = {
    "SOC2": (
        Control("A1.2", "Backup processes and recovery infrastructure", ("backups", "replication")),
        Control("A1.3", "Recovery plan procedures are tested", ("drills",)),
        Control(
            "CC6.1", "Logical access security; protection of data at rest", ("encryption", "access")
        ),
        Control(
            "CC7.1",
            "Detection of changes that introduce vulnerabilities or damage",
            ("integrity_checks",),
        ),
    ),
    "HIPAA": (
        Control("164.308(a)(7)(ii)(A)", "Data backup plan", ("backups",)),
        Control("164.308(a)(7)(ii)(B)", "Disaster recovery plan", ("drills", "replication")),
        Control("164.308(a)(7)(ii)(D)", "Testing and revision procedures", ("drills",)),
        Control("164.312(a)(1)", "Access control", ("access",)),
        Control("164.312(a)(2)(iv)", "Encryption and decryption", ("encryption",)),
        Control("164.312(b)", "Audit controls", ("audit_trail",)),
        Control("164.312(c)(1)", "Integrity", ("integrity_checks",)),
    ),
    "GDPR": (
        Control("Art. 32(1)(a)", "Encryption of personal data", ("encryption",)),
        Control(
            "Art. 32(1)(b)",
            "Ongoing integrity, availability and resilience",
            ("integrity_checks", "replication"),
        ),
        Control(
            "Art. 32(1)(c)",
            "Ability to restore availability and access in a timely manner",
            ("drills", "backups"),
        ),
        Control("Art. 32(1)(d)", "Regular testing and evaluation of the measures", ("drills",)),
    ),
    "ISO27001": (
        Control("A.5.15", "Access control", ("access",)),
        Control("A.5.30", "ICT readiness for business continuity", ("drills",)),
        Control("A.8.13", "Information backup (copies tested)", ("backups", "drills")),
        Control("A.8.14", "Redundancy of information processing facilities", ("replication",)),
        Control("A.8.15", "Logging", ("audit_trail",)),
        Control("A.8.24", "Use of cryptography", ("encryption",)),
    ),
    "NIST": (
        Control("CP-4", "Contingency plan testing", ("drills",)),
        Control("CP-6", "Alternate storage site", ("replication",)),
        Control("CP-9", "System backup", ("backups",)),
        Control(
            "CP-9(1)",
            "System backup: testing for reliability and integrity",
            ("drills", "integrity_checks"),
        ),
        Control("CP-10", "System recovery and reconstitution", ("drills",)),
        Control("AC-3", "Access enforcement", ("access",)),
        Control("AU-9", "Protection of audit information", ("audit_trail",)),
        Control("SC-28", "Protection of information at rest", ("encryption",)),
    ),
}


def _days(ns: int, now_ns: int) -> float:
    return (now_ns - ns) / 86400e9


def _drills(drills: Sequence[DrillResult], now_ns: int) -> Evidence:
    recent = [d for d in drills if _days(d.started_ns, now_ns) <= DRILL_WINDOW_DAYS]
    passed = [d for d in recent if d.ok]
    if not drills:
        return Evidence("drills", False, "no recovery drill has been run on this node")
    if not passed:
        last = drills[0]
        return Evidence(
            "drills",
            False,
            f"no passing drill in the last {DRILL_WINDOW_DAYS} days ({len(recent)} run, "
            f"latest {last.id} {'passed' if last.ok else 'failed'})",
        )
    best = passed[0]
    return Evidence(
        "drills",
        True,
        f"{len(passed)} of {len(recent)} drills in the last {DRILL_WINDOW_DAYS} days passed; "
        f"latest passing drill {best.id}: snapshot {best.snapshot_id[:8]} restored and "
        f"verified ({best.files} files) in {best.rto_seconds:.1f} s, recovery point "
        f"{best.rpo_seconds / 3600:.1f} h",
    )


def _backups(repo: Repository, now_ns: int) -> Evidence:
    snaps = list_snapshots(repo)
    if not snaps:
        return Evidence("backups", False, "no snapshots in the store")
    newest = max(s.time_ns for s in snaps)
    age = _days(newest, now_ns)
    return Evidence(
        "backups",
        age <= BACKUP_WINDOW_DAYS,
        f"{len(snaps)} snapshots; the newest is {age:.1f} days old "
        f"(window {BACKUP_WINDOW_DAYS} days)",
    )


def _encryption(repo: Repository) -> Evidence:
    try:
        kdf = json.loads(repo.home.master_key.read_text())["kdf"]
        wrapping = f"{kdf['algorithm']} (opslimit {kdf['opslimit']}, memlimit {kdf['memlimit']})"
    except (OSError, ValueError, KeyError, TypeError):
        wrapping = "a passphrase (key file unreadable: its parameters are not shown)"
    return Evidence(
        "encryption",
        True,
        "every stored blob (file data, trees, snapshot records) is sealed with "
        "XChaCha20-Poly1305 under keys derived from a random master secret, itself wrapped "
        f"by {wrapping}; the store holds no plaintext",
    )


def _integrity(repo: Repository, now_ns: int, check_runs: list[dict[str, Any]] | None) -> Evidence:
    if check_runs is None:
        check_runs = []
        for _, raw in repo.store.iter_records(JOB_PREFIX):
            try:
                job = json.loads(raw)
            except ValueError:
                continue
            if isinstance(job, dict) and job.get("kind") == "check":
                check_runs.append(job)
    window = [
        j
        for j in check_runs
        if isinstance(j.get("finished"), int | float)
        and (now_ns / 1e9 - float(j["finished"])) <= CHECK_WINDOW_DAYS * 86400
    ]
    good = [j for j in window if j.get("state") == "succeeded"]
    full = [j for j in good if (j.get("params") or {}).get("read_data")]
    if not good:
        return Evidence(
            "integrity_checks",
            False,
            f"no successful integrity check recorded in the last {CHECK_WINDOW_DAYS} days "
            "(checks run by the daemon are recorded; run `shadowvault check --read-data` "
            "through it on a schedule)",
        )
    return Evidence(
        "integrity_checks",
        True,
        f"{len(good)} successful checks in the last {CHECK_WINDOW_DAYS} days, {len(full)} of "
        f"them reading all data ({len(window) - len(good)} failed or cancelled)",
    )


def _access(repo: Repository, tokens: dict[str, int] | None) -> Evidence:
    if tokens is None:
        try:
            db = json.loads((repo.home.root / TOKENS_FILE).read_text())
        except (OSError, ValueError):
            db = {}
        tokens = {}
        for entry in db.values() if isinstance(db, dict) else []:
            role = str(entry.get("role", "?")) if isinstance(entry, dict) else "?"
            tokens[role] = tokens.get(role, 0) + 1
    if not tokens:
        return Evidence(
            "access",
            False,
            "no API tokens recorded (the daemon creates the owner token on first start)",
        )
    roles = ", ".join(f"{n} {role}" for role, n in sorted(tokens.items()))
    return Evidence(
        "access",
        True,
        f"the API needs a bearer token on every data route; tokens by role: {roles}; only "
        "hashes of tokens are stored",
    )


def _offsite_drill(drills: Sequence[DrillResult], now_ns: int) -> str | None:
    """A statement of the newest passing drill from peers in the window, if any."""
    for d in drills:  # newest first
        if d.source == "peers" and d.ok and _days(d.started_ns, now_ns) <= DRILL_WINDOW_DAYS:
            served = [p for p in d.peers if p.get("blobs")]
            names = ", ".join(str(p.get("name") or p.get("peer_id", "?"))[-12:] for p in served)
            return (
                f"drill {d.id} restored snapshot {d.snapshot_id[:8]} ({d.files} files) from "
                f"the copies held by {len(served)} peers ({names}) alone, none read locally, "
                f"and verified it in {d.rto_seconds:.1f} s"
            )
    return None


def _replication(
    replication: tuple[int, int] | None, drills: Sequence[DrillResult], now_ns: int
) -> Evidence:
    """Offsite copies: the peers holding the snapshots, or a passing drill from peers
    (which proves more than a receipt: the copies restored)."""
    offsite = _offsite_drill(drills, now_ns)
    if replication is None:
        if offsite is not None:
            return Evidence("replication", True, f"offsite recovery proven: {offsite}")
        return Evidence(
            "replication",
            False,
            "no offsite copy shown: no passing drill from peers (`shadowvault drill "
            f"--from-peers`) in the last {DRILL_WINDOW_DAYS} days and no replication figures "
            "given",
        )
    have, want = replication
    statement = f"snapshots held by {have} peers; target replication factor {want}"
    if offsite is not None:
        statement += f"; offsite recovery proven: {offsite}"
    return Evidence("replication", have >= want, statement)


def _audit(audit_trail: str | None) -> Evidence:
    if audit_trail is None:
        return Evidence(
            "audit_trail",
            False,
            "no tamper-evident audit trail is kept in this version (the job history records "
            "what ran, but is not protected against edits)",
        )
    return Evidence("audit_trail", True, audit_trail)


def gather_evidence(
    repo: Repository,
    drills: Sequence[DrillResult],
    *,
    now_ns: int | None = None,
    tokens: dict[str, int] | None = None,
    check_runs: list[dict[str, Any]] | None = None,
    replication: tuple[int, int] | None = None,
    audit_trail: str | None = None,
) -> list[Evidence]:
    """Every kind of evidence this node has, each present or not with a statement.

    Args:
        repo: the open repository.
        drills: kept drill results, newest first (``list_drills``).
        now_ns: the report time (Unix ns); default now.
        tokens: API tokens by role; None reads the daemon's token file in the home.
        check_runs: finished check jobs (the daemon's job records); None reads them
            from the store.
        replication: (peers holding the snapshots, target factor); None: not given (a
            passing drill from peers in the window still evidences offsite copies).
        audit_trail: a statement of a verified audit trail (e.g. "hash chain of 812
            entries verified"), from whoever keeps one; None: not evidenced.
    """
    now = now_ns if now_ns is not None else time.time_ns()
    return [
        _drills(drills, now),
        _backups(repo, now),
        _encryption(repo),
        _integrity(repo, now, check_runs),
        _access(repo, tokens),
        _replication(replication, drills, now),
        _audit(audit_trail),
    ]


def compliance_report(
    framework: str, evidence: list[Evidence], *, now_ns: int | None = None
) -> ComplianceReport:
    """Map the evidence onto one framework's controls.

    Raises:
        ValueError: unknown framework.
    """
    key = framework.upper()
    if key not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    by_kind = {e.kind: e for e in evidence}
    results = []
    for control in FRAMEWORKS[key]:
        have = [by_kind[k] for k in control.needs if k in by_kind and by_kind[k].present]
        missing = [by_kind[k] for k in control.needs if k in by_kind and not by_kind[k].present]
        status = "evidenced" if not missing else ("partial" if have else "not evidenced")
        results.append(
            ControlResult(
                control.id,
                control.title,
                status,
                [f"{e.kind}: {e.statement}" for e in have],
                [f"{e.kind}: {e.statement}" for e in missing],
            )
        )
    return ComplianceReport(
        key, now_ns if now_ns is not None else time.time_ns(), DISCLAIMER, results, evidence
    )
