"""Render a drill (and an optional compliance section) as Markdown or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ._compliance import ComplianceReport
from ._drill import DrillResult


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report_json(result: DrillResult, compliance: ComplianceReport | None) -> str:
    doc: dict[str, Any] = {"drill": result.to_dict()}
    if compliance is not None:
        doc["compliance"] = compliance.to_dict()
    return json.dumps(doc, indent=2) + "\n"


def report_markdown(result: DrillResult, compliance: ComplianceReport | None) -> str:
    verdict = "PASSED" if result.ok else "FAILED"
    out = [
        f"# Recovery drill {result.id}: {verdict}",
        "",
        f"- Started: {_when(result.started_ns)}",
        f"- Source: {result.source}",
        f"- Snapshot: {result.snapshot_id[:16]} taken {_when(result.snapshot_time_ns)} "
        f"({', '.join(result.snapshot_paths)})",
        f"- Restored: {result.files} files, {result.bytes_restored} bytes; "
        f"{result.verified} files re-read and verified",
        f"- Recovery time (RTO): {_secs(result.rto_seconds)} (target {_secs(result.max_rto)})",
        f"- Recovery point (RPO, snapshot age): {_secs(result.rpo_seconds)} "
        f"(target {_secs(result.max_rpo)})",
        "",
        "## Steps",
        "",
        "| step | time | ok | detail |",
        "|---|---|---|---|",
    ]
    for step in result.steps:
        out.append(
            f"| {step.name} | {step.seconds:.2f} s | {'yes' if step.ok else 'NO'} | "
            f"{step.detail.replace('|', '/')} |"
        )
    if result.peers:
        out += [
            "",
            "## Peers",
            "",
            "| peer | name | blobs served | bytes served | error |",
            "|---|---|---|---|---|",
        ]
        for peer in result.peers:
            error = str(peer.get("error") or "").replace("|", "/")
            out.append(
                f"| {peer.get('peer_id', '?')} | {peer.get('name') or '-'} | "
                f"{peer.get('blobs', 0)} | {peer.get('bytes', 0)} | {error or '-'} |"
            )
    out += ["", "## Checks", "", "| check | result | measured |", "|---|---|---|"]
    for check in result.checks:
        out.append(f"| {check.name} | {'pass' if check.ok else 'FAIL'} | {check.summary} |")
    failed = [c for c in result.checks if not c.ok]
    if failed:
        out += ["", "## What to do", ""]
        for check in failed:
            out.append(f"- **{check.name}**: {check.remedy}")
            for problem in check.problems:
                out.append(f"  - {problem}")
            if check.problem_count > len(check.problems):
                out.append(f"  - ... and {check.problem_count - len(check.problems)} more")
    if compliance is not None:
        out += [
            "",
            f"## Compliance evidence: {compliance.framework}",
            "",
            f"> {compliance.disclaimer}",
            "",
            "| control | title | status |",
            "|---|---|---|",
        ]
        for control in compliance.controls:
            out.append(f"| {control.id} | {control.title} | {control.status} |")
        out.append("")
        for control in compliance.controls:
            out.append(f"### {control.id} ({control.status})")
            out += [f"- evidence: {line}" for line in control.evidence]
            out += [f"- missing: {line}" for line in control.gaps]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
