"""`shadowvault init` and where the passphrase comes from."""

from __future__ import annotations

import re
import stat

import pytest
import yaml

INIT_JSON_KEYS = {"home", "repo_id", "identity", "passphrase_file"}


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("json_out", [True, False], ids=["json", "text"])
def test_init_creates_home(new_home, json_out):
    home = new_home.home
    if json_out:
        info = new_home.json("init")
        assert set(info) == INIT_JSON_KEYS
        assert info["home"] == str(home)
        assert re.fullmatch(r"[0-9a-f]{32}", info["repo_id"])
        assert re.fullmatch(r"[0-9a-f]{64}", info["identity"])
        assert info["passphrase_file"] is None
    else:
        result = new_home.run("init")
        assert f"created node home {home}" in result.stdout
        assert re.search(r"identity ed25519:[0-9a-f]{64}", result.stdout)
        assert result.stderr == ""

    assert _mode(home) == 0o700
    assert _mode(home / "keys" / "master.key") == 0o600
    assert _mode(home / "keys" / "identity.key") == 0o600
    assert isinstance(yaml.safe_load((home / "config.yaml").read_text()), dict)
    assert (home / "store" / "index" / "CURRENT").is_file()
    assert (home / "store" / "packs").is_dir()
    assert not (home / "passphrase").exists()
    if json_out:  # the new node opens with the passphrase it was made with, and is empty
        assert new_home.snapshots() == []


@pytest.mark.parametrize(
    "extra",
    [(), ("--generate-passphrase", "--json")],
    ids=["plain", "generate-passphrase"],
)
def test_init_again_refused(node, fs, extra):
    before = fs.file_state(node.home)
    result = node.run("init", *extra, expect=1)
    assert "already holds a node" in result.stderr
    assert str(node.home) in result.stderr
    assert result.stdout == ""
    assert fs.file_state(node.home) == before  # bytes, modes and mtimes
    assert not (node.home / "passphrase").exists()


def test_init_without_passphrase_or_tty_fails(new_home):
    result = new_home.run("init", passphrase=None, expect=1)
    assert "no passphrase" in result.stderr
    assert "SHADOWVAULT_PASSWORD" in result.stderr
    assert not (new_home.home / "keys").exists()
    assert not (new_home.home / "store").exists()


def test_init_generate_passphrase_then_no_env_needed(new_home, small_tree):
    result = new_home.run("init", "--generate-passphrase", passphrase=None)
    pass_file = new_home.home / "passphrase"
    assert _mode(pass_file) == 0o600
    generated = pass_file.read_text().strip()
    assert len(generated) >= 32
    new_home.secrets.append(generated)  # from now on every run checks it is never printed
    assert generated not in result.stdout + result.stderr
    assert f"passphrase generated into {pass_file} (mode 0600)" in result.stderr

    new_home.passphrase = None  # no SHADOWVAULT_PASSWORD at all from here on
    backup = new_home.json("backup", small_tree)
    assert [s["id"] for s in new_home.snapshots()] == [backup["snapshot_id"]]


def test_init_generate_passphrase_json(new_home):
    info = new_home.json("init", "--generate-passphrase", passphrase=None)
    pass_file = new_home.home / "passphrase"
    assert set(info) == INIT_JSON_KEYS
    assert info["passphrase_file"] == str(pass_file)
    new_home.secrets.append(pass_file.read_text().strip())
    new_home.passphrase = None
    assert new_home.snapshots() == []


def test_init_generate_passphrase_refuses_leftover_file(new_home, fs):
    home = new_home.home
    home.mkdir()
    (home / "passphrase").write_text("stale-leftover\n")
    before = fs.file_state(home)
    result = new_home.run("init", "--generate-passphrase", passphrase=None, expect=1)
    assert f"{home / 'passphrase'} already exists" in result.stderr
    assert fs.file_state(home) == before  # no node, and the old file is left alone
    assert not (home / "keys").exists()


def test_init_bad_compression_is_usage_error(new_home):
    result = new_home.run("init", "--compression", "99", expect=2)
    assert "compression level must be 1-19" in result.stderr
    assert not (new_home.home / "keys").exists()


# -- passphrase sources ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["env-file", "flag-file", "flag-file-beats-env"],
    ids=["env-file", "flag-file", "flag-file-beats-env"],
)
def test_snapshots_passphrase_sources(populated, tmp_path, source):
    node = populated.node
    pw_file = tmp_path / "pw"
    pw_file.write_text(node.passphrase + "\n")  # a trailing newline is not part of it
    if source == "env-file":
        got = node.json(
            "snapshots", passphrase=None, env={"SHADOWVAULT_PASSWORD_FILE": str(pw_file)}
        )
    elif source == "flag-file":
        got = node.json("snapshots", "--password-file", pw_file, passphrase=None)
    else:
        got = node.json("snapshots", "--password-file", pw_file, passphrase="not-the-passphrase")
    assert [s["id"] for s in got] == [populated.s1, populated.s2, populated.s3]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read passphrase file"), ("\n", "is empty")],
    ids=["missing-file", "empty-file"],
)
def test_snapshots_bad_password_file(populated, tmp_path, content, message):
    pw_file = tmp_path / "pw"
    if content is not None:
        pw_file.write_text(content)
    result = populated.node.run("snapshots", "--password-file", pw_file, expect=1)
    assert message in result.stderr
    assert str(pw_file) in result.stderr


def test_snapshots_password_not_accepted_in_argv(populated):
    result = populated.node.run("snapshots", "--password", "x", expect=2)
    assert "No such option" in result.stderr


def test_snapshots_without_node_fails(new_home):
    result = new_home.run("snapshots", expect=1)
    assert f"no node at {new_home.home}" in result.stderr
    assert "shadowvault init" in result.stderr
    assert not new_home.home.exists()


@pytest.mark.parametrize("command", [["snapshots"], ["check"], ["backup", "/tmp"]])
def test_command_on_a_home_without_a_node_says_so_before_asking_a_passphrase(new_home, command):
    result = new_home.run(*command, passphrase=None, expect=1)
    assert "no node at" in result.stderr and "shadowvault init" in result.stderr
    assert "passphrase" not in result.stderr
    assert not (new_home.home / "store").exists()
