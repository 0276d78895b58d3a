"""Token and peer changes and refused API calls reach the audit log (real CLI, real daemon)."""

from __future__ import annotations

from typing import Any

PEER = "12D3KooWKuQ8NB8dX3T8eYuVjk7y5x5B3sWcWTjhM6TJmb9m7Lmd"


def _audit(node: Any) -> list[dict[str, Any]]:
    return list(node.json("audit"))


def test_token_and_peer_changes_are_audited_offline(node) -> None:
    node.run("token", "create", "--role", "viewer", "--name", "grafana")
    node.run("token", "revoke", "grafana")
    node.run("peers", "add", PEER, "--store-for", "--quota", "1GiB")
    node.run("peers", "add", PEER, "--store-for", "--quota", "1GiB", "--name", "same trust")
    node.run("peers", "add", PEER, "--store-for", "--store-at", "--quota", "1GiB")
    node.run("peers", "remove", PEER)
    entries = _audit(node)
    got = [(e["action"], e["details"].get("peer") or e["details"].get("name")) for e in entries]
    assert got == [
        ("token_create", "grafana"),
        ("token_revoke", "grafana"),
        ("peer_add", PEER),
        ("peer_change", PEER),  # the name-only update before it changed no trust: no entry
        ("peer_remove", PEER),
    ]
    change = entries[3]["details"]
    assert change["before"]["store_at"] is False and change["after"]["store_at"] is True
    assert node.json("audit", "verify")["ok"]


def test_token_changes_and_refused_api_calls_are_audited_through_the_daemon(
    node, daemon_for
) -> None:
    d = daemon_for(node)
    viewer = node.json("token", "create", "--role", "viewer", "--name", "dash")["token"]
    for _ in range(7):
        assert d.api("GET", "/api/v1/snapshots", "svt_wrong").status_code == 401
    assert d.api("POST", "/api/v1/gc", viewer, json={}).status_code == 403
    node.run("token", "revoke", "dash")
    assert d.api("GET", "/api/v1/snapshots", viewer).status_code == 401
    # A passphrase change while the daemon owns the store is logged by the daemon, once.
    new = "the-new-passphrase-" + node.passphrase[-8:]
    node.secrets.append(new)
    changed = node.run("key", "passwd", env={"SHADOWVAULT_NEW_PASSWORD": new})
    assert "does not record" not in changed.stdout
    assert d.api("POST", "/api/v1/audit/key-change").status_code == 409  # nothing new
    node.passphrase = new
    assert d.stop() == 0  # the current minute's refusals are written at shutdown
    entries = _audit(node)
    actions = [e["action"] for e in entries]
    assert actions.index("token_create") < actions.index("token_revoke")
    [key] = [e["details"] for e in entries if e["action"] == "key_change"]
    assert key["via"] == "daemon"
    create = next(e for e in entries if e["action"] == "token_create")
    assert create["details"] == {"name": "dash", "role": "viewer", "by": "owner"}
    refused = [e["details"] for e in entries if e["action"] == "refused"]
    assert {d["via"] for d in refused} == {"api"}
    by_reason: dict[str, int] = {}
    for r in refused:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["count"]
    assert by_reason == {"unauthenticated": 8, "forbidden:viewer": 1}
    assert len(refused) <= 4  # aggregated per source and reason per minute
    assert node.json("audit", "verify")["ok"]
