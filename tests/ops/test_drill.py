"""Recovery drills on a real store: restore, verify, judge, clean up, keep the record."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from node.ops import (
    FRAMEWORKS,
    BackupOptions,
    DrillCheck,
    DrillError,
    DrillOptions,
    DrillResult,
    RestoreOptions,
    compare_tree,
    compliance_report,
    gather_evidence,
    list_drills,
    run_backup,
    run_drill,
    run_restore,
    save_drill,
)
from node.repo import (
    RepoError,
    Repository,
    load_tree,
    open_repository,
    resolve_snapshot,
    resolve_snapshot_id,
)
from tests.ops.helpers import make_repo

DAY_NS = 86400 * 10**9


def make_source(src: Path) -> None:
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "big.bin").write_bytes(os.urandom(100_000))
    (src / "sub" / "deep" / "c.txt").write_bytes(b"gamma\n" * 500)
    (src / "link").symlink_to("a.txt")
    (src / "ro").mkdir()
    (src / "ro" / "inside.txt").write_bytes(b"in a read-only dir\n")
    (src / "ro").chmod(0o555)


@pytest.fixture
def backed_up(tmp_path: Path, repo: Repository) -> tuple[Repository, int]:
    src = tmp_path / "src"
    make_source(src)
    summary = run_backup(repo, BackupOptions(paths=[src]))
    (src / "ro").chmod(0o755)  # so tmp_path can be removed
    return repo, resolve_snapshot(repo, summary.snapshot_id).time_ns


def test_drill_restores_verifies_and_removes_scratch(
    tmp_path: Path, backed_up: tuple[Repository, int]
) -> None:
    repo, snap_ns = backed_up
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = run_drill(
        repo,
        DrillOptions(scratch_parent=scratch, max_rto=3600, max_rpo=2 * 3600),
        now_ns=snap_ns + 3600 * 10**9,
    )
    assert result.ok, result.checks
    assert [c.name for c in result.checks] == ["restore", "verify", "rto", "rpo", "cleanup"]
    assert [s.name for s in result.steps] == [
        "select snapshot",
        "restore",
        "verify against snapshot",
        "clean up",
    ]
    assert result.files == 5  # a.txt, big.bin, c.txt, link, inside.txt
    assert result.verified == 4  # regular files re-read and hashed
    assert result.rpo_seconds == 3600
    assert list(scratch.iterdir()) == []  # read-only directory included


def test_drill_rpo_target_missed_fails_with_remedy(backed_up: tuple[Repository, int]) -> None:
    repo, snap_ns = backed_up
    result = run_drill(repo, DrillOptions(max_rpo=86400), now_ns=snap_ns + 2 * DAY_NS)
    assert not result.ok
    failed = [c for c in result.checks if not c.ok]
    assert [c.name for c in failed] == ["rpo"]
    assert "back up more often" in failed[0].remedy
    assert result.rpo_seconds == 2 * 86400


def test_drill_damaged_blob_fails_naming_the_file(
    tmp_path: Path, backed_up: tuple[Repository, int]
) -> None:
    repo, _ = backed_up
    snap = resolve_snapshot(repo, "latest")
    # Find big.bin's first chunk in the snapshot's trees, then damage it in its pack.
    nodes = {n.name: n for n in load_tree(repo, snap.tree)}
    while b"big.bin" not in nodes:
        (only,) = [n for n in nodes.values() if n.subtree is not None]
        nodes = {n.name: n for n in load_tree(repo, only.subtree)}
    chunk = nodes[b"big.bin"].chunks[0]
    loc = repo.store.location(chunk)
    pack = repo.store.pack_path(loc.pack)
    home = repo.home
    repo.close()
    with open(pack, "r+b") as f:
        f.seek(loc.offset + loc.stored_len // 2)
        f.write(b"\xff" * 64)
    repo = open_repository(home, "test passphrase")
    try:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        result = run_drill(repo, DrillOptions(scratch_parent=scratch))
    finally:
        repo.close()
    assert not result.ok
    restore = next(c for c in result.checks if c.name == "restore")
    assert not restore.ok and restore.problem_count == 1
    assert "big.bin" in restore.problems[0]
    assert "check --read-data" in restore.remedy
    verify = next(c for c in result.checks if c.name == "verify")
    assert not verify.ok and any("big.bin: missing" in p for p in verify.problems)
    assert list(scratch.iterdir()) == []


def test_compare_tree_reports_missing_and_changed_entries(
    tmp_path: Path, backed_up: tuple[Repository, int]
) -> None:
    repo, _ = backed_up
    snap = resolve_snapshot(repo, "latest")
    target = tmp_path / "restored"
    run_restore(repo, snap, RestoreOptions(target=target))
    matched, problems = compare_tree(repo, snap, target)
    assert problems == []
    src_root = target / str(tmp_path / "src").lstrip("/")
    (src_root / "a.txt").unlink()
    (src_root / "sub" / "deep" / "c.txt").write_bytes(b"short")
    (src_root / "link").unlink()
    (src_root / "link").symlink_to("elsewhere")
    again, problems = compare_tree(repo, snap, target)
    assert again == matched - 3
    assert sorted(p.rsplit("/", 1)[-1] for p in problems) == [
        "a.txt: missing from the restore",
        "c.txt: 5 bytes, snapshot has 3000",
        "link: symlink target differs from the snapshot",
    ]
    (src_root / "ro").chmod(0o755)


def test_drill_unknown_snapshot_raises_and_makes_no_scratch(
    tmp_path: Path, backed_up: tuple[Repository, int]
) -> None:
    repo, _ = backed_up
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(DrillError, match="deadbeef"):
        run_drill(repo, DrillOptions(snapshot="deadbeef00", scratch_parent=scratch))
    assert list(scratch.iterdir()) == []


def test_drill_no_snapshots_raises(repo: Repository) -> None:
    with pytest.raises(DrillError, match="no snapshots"):
        run_drill(repo, DrillOptions())


def test_drill_history_newest_first_survives_reopen(
    tmp_path: Path, backed_up: tuple[Repository, int]
) -> None:
    repo, snap_ns = backed_up
    first = run_drill(repo, DrillOptions(), now_ns=snap_ns + 10**9)
    second = run_drill(repo, DrillOptions(max_rpo=0.5), now_ns=snap_ns + 2 * 10**9)
    save_drill(repo, first)
    save_drill(repo, second)
    home = repo.home
    repo.close()
    reopened = open_repository(home, "test passphrase")
    try:
        drills = list_drills(reopened)
        assert [d.id for d in drills] == [second.id, first.id]
        assert [d.ok for d in drills] == [False, True]
        assert drills[1].to_dict() == first.to_dict()
        assert list_drills(reopened, limit=1)[0].id == second.id
    finally:
        reopened.close()


def test_compliance_controls_follow_the_evidence(backed_up: tuple[Repository, int]) -> None:
    repo, snap_ns = backed_up
    now = snap_ns + DAY_NS
    none_yet = compliance_report("soc2", gather_evidence(repo, [], now_ns=now, tokens={}))
    status = {c.id: c.status for c in none_yet.controls}
    assert status["A1.3"] == "not evidenced"
    assert status["A1.2"] == "partial"  # backups yes, replication not available
    assert status["CC6.1"] == "partial"  # encryption yes, no tokens

    failed = run_drill(repo, DrillOptions(max_rpo=1), now_ns=now)
    passed = run_drill(repo, DrillOptions(), now_ns=now)
    only_failed = gather_evidence(repo, [failed], now_ns=now)
    assert compliance_report("SOC2", only_failed).controls[1].status == "not evidenced"

    evidence = gather_evidence(
        repo,
        [passed, failed],
        now_ns=now,
        tokens={"admin": 1, "viewer": 2},
        check_runs=[
            {
                "kind": "check",
                "state": "succeeded",
                "finished": now / 1e9 - 3600,
                "params": {"read_data": True},
            },
        ],
        replication=(2, 2),
        audit_trail="hash chain of 12 entries verified",
    )
    for framework in FRAMEWORKS:
        report = compliance_report(framework, evidence, now_ns=now)
        assert "not a certification" in report.disclaimer
        assert {c.status for c in report.controls} == {"evidenced"}, framework
    old_check = [{"kind": "check", "state": "succeeded", "finished": now / 1e9 - 31 * 86400}]
    stale = gather_evidence(repo, [passed], now_ns=now, tokens={"admin": 1}, check_runs=old_check)
    hipaa = {c.id: c for c in compliance_report("HIPAA", stale).controls}
    assert hipaa["164.312(c)(1)"].status == "not evidenced"
    assert "replication" in hipaa["164.308(a)(7)(ii)(B)"].gaps[0]


def test_compliance_unknown_framework(repo: Repository) -> None:
    with pytest.raises(ValueError, match="framework must be one of"):
        compliance_report("PCI", [])


def test_compliance_encryption_evidence_reads_the_key_file(tmp_path: Path) -> None:
    r = make_repo(tmp_path / "h")
    try:
        (enc,) = [e for e in gather_evidence(r, [], tokens={}) if e.kind == "encryption"]
        assert enc.present and "argon2id" in enc.statement
    finally:
        r.close()


def test_a_passing_drill_from_peers_evidences_offsite_copies(
    backed_up: tuple[Repository, int],
) -> None:
    repo, snap_ns = backed_up
    now = snap_ns + DAY_NS
    local = run_drill(repo, DrillOptions(), now_ns=now)
    holder = {"peer_id": "12D3KooWHolder", "name": "vault", "blobs": 9, "bytes": 1, "error": ""}
    offsite = dataclasses.replace(local, source="peers", peers=[holder])
    failed = dataclasses.replace(offsite, checks=[*offsite.checks, DrillCheck("peers", False, "")])
    stale = dataclasses.replace(offsite, started_ns=now - 91 * DAY_NS)

    def replication(drills: list[DrillResult], **kw: object) -> tuple[bool, str]:
        evidence = gather_evidence(repo, drills, now_ns=now, **kw)  # type: ignore[arg-type]
        (ev,) = [e for e in evidence if e.kind == "replication"]
        return ev.present, ev.statement

    for drills in ([local], [failed], [stale], []):
        present, statement = replication(drills)
        assert not present and "no offsite copy shown" in statement
    present, statement = replication([failed, offsite, local])
    assert present and "offsite recovery proven" in statement and "vault" in statement
    assert f"drill {offsite.id}" in statement
    # With the mesh's figures as well, both are stated; the factor still decides.
    present, statement = replication([offsite], replication=(1, 2))
    assert not present and "target replication factor 2" in statement and "vault" in statement
    # The record keeps the peers (and reads back records written before they existed).
    doc = offsite.to_dict()
    assert DrillResult.from_dict(doc).peers == [holder]
    del doc["peers"]
    assert DrillResult.from_dict(doc).peers == []


def test_snapshot_id_resolved_from_the_index_alone(backed_up: tuple[Repository, int]) -> None:
    repo, snap_ns = backed_up
    snap = resolve_snapshot(repo, "latest")
    assert snap.id is not None
    assert resolve_snapshot_id(repo, "latest") == (snap.id, snap_ns)
    assert resolve_snapshot_id(repo, snap.id.hex()[:10]) == (snap.id, snap_ns)
    with pytest.raises(RepoError, match="no snapshot matches"):
        resolve_snapshot_id(repo, "00000000aa")
    with pytest.raises(RepoError, match="8 or more hex digits"):
        resolve_snapshot_id(repo, "abc")
