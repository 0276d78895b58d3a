"""A wrong passphrase on every kind of command, and `shadowvault key passwd`."""

from __future__ import annotations

import stat

import pytest

WRONG = "definitely-not-the-passphrase"


def _commands(p, target):
    src = str(p.src)
    return {
        "snapshots": ["snapshots"],
        "backup": ["backup", src],
        "restore": ["restore", "latest", "--target", str(target)],
        "check": ["check", "--read-data"],
        "key-passwd": ["key", "passwd"],
    }


@pytest.mark.parametrize(
    "command",
    ["snapshots", "backup", "restore", "check", "key-passwd"],
    ids=["snapshots", "backup", "restore", "check", "key-passwd"],
)
def test_command_wrong_passphrase_refused_store_untouched(populated, fs, tmp_path, command):
    node = populated.node
    target = tmp_path / "target"
    args = _commands(populated, target)[command]
    before = fs.file_state(node.home)
    result = node.run(
        *args, passphrase=WRONG, env={"SHADOWVAULT_NEW_PASSWORD": "another-new-one"}, expect=1
    )
    assert "wrong passphrase" in result.stderr
    assert result.stdout == ""
    assert fs.file_state(node.home) == before  # keys, store, config: nothing changed
    assert not target.exists()


def test_key_passwd_changes_passphrase(populated_copy, tmp_path):
    p = populated_copy
    node = p.node
    new = "the-new-passphrase-" + node.passphrase[-8:]
    node.secrets.append(new)
    result = node.run("key", "passwd", env={"SHADOWVAULT_NEW_PASSWORD": new})
    assert "passphrase changed" in result.stdout
    assert stat.S_IMODE((node.home / "keys" / "master.key").stat().st_mode) == 0o600

    old = node.run("snapshots", expect=1)
    assert "wrong passphrase" in old.stderr

    node.passphrase = new
    assert [s["id"] for s in node.snapshots()] == [p.s1, p.s2, p.s3]
    target = tmp_path / "target"
    node.run("restore", p.s1, "--target", target, "--include", "notes.txt")
    restored = target / str(p.src).lstrip("/") / "notes.txt"
    assert restored.read_bytes() == p.notes_v1


def test_key_passwd_without_new_passphrase_fails(populated, fs):
    node = populated.node
    before = fs.file_state(node.home / "keys")
    result = node.run("key", "passwd", expect=1)
    assert "SHADOWVAULT_NEW_PASSWORD" in result.stderr
    assert "passphrase changed" not in result.stdout
    assert fs.file_state(node.home / "keys") == before


def test_key_passwd_from_generated_passphrase(new_home):
    init = new_home.json("init", "--generate-passphrase", passphrase=None)
    generated = (new_home.home / "passphrase").read_text().strip()
    new_home.secrets.append(generated)
    new_home.passphrase = None
    new = "replacement-passphrase-for-generated"
    new_home.secrets.append(new)

    result = new_home.run("key", "passwd", env={"SHADOWVAULT_NEW_PASSWORD": new})
    assert f"removed the old generated passphrase file {init['passphrase_file']}" in result.stdout
    assert "passphrase changed" in result.stdout
    assert not (new_home.home / "passphrase").exists()

    missing = new_home.run("snapshots", expect=1)
    assert "no passphrase" in missing.stderr
    assert new_home.json("snapshots", passphrase=new) == []
