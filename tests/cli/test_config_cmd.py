"""`shadowvault config show|validate`, and `init` taking store settings from the config (real CLI)."""

from __future__ import annotations

import yaml

from node.repo import HomePaths, open_repository

PEER = "12D3KooWGzBnqiBXnqHjs7iR1bTsQK8Ds5mLzf7fD8y5ocdwXyMY"


def test_config_validate_init_written_config_is_valid(node):
    result = node.run("config", "validate")
    assert result.stdout == f"configuration OK: {node.home / 'config.yaml'}\n"


def test_config_validate_reports_every_problem_and_exits_1(node, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "p2p:\n  listen: [/ip4/0.0.0.0/tcp/4001, 'localhost:4001']\napi:\n  lisen: 127.0.0.1:1\n"
    )
    result = node.run("config", "validate", "--file", bad, expect=1)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {bad}: api.lisen: unknown key; did you mean 'listen'?",
        f"error: {bad}: p2p.listen[1]: expected a multiaddr like /ip4/0.0.0.0/tcp/4001, "
        "found 'localhost:4001'",
    ]


def test_config_validate_missing_file_exits_1(node, tmp_path):
    result = node.run("config", "validate", "--file", tmp_path / "nope.yaml", expect=1)
    assert result.stderr == f"error: {tmp_path / 'nope.yaml'}: no such file\n"


def test_config_validate_checks_the_environment_too(node):
    env = {"SHADOWVAULT_LOGGING__LEVEL": "loud"}
    result = node.run("config", "validate", env=env, expect=1)
    assert "error: SHADOWVAULT_LOGGING__LEVEL: logging.level: expected one of" in result.stderr
    node.run("config", "validate", "--no-env", "--file", node.home / "config.yaml", env=env)


def test_config_show_sources_and_masked_secret(node):
    (node.home / "config.yaml").write_text(
        yaml.safe_dump({"logging": {"format": "json"}, "peers": [{"id": PEER, "quota": "50GiB"}]})
    )
    secret = "scrape-token-9f8e7d"
    node.secrets.append(secret)  # the Node helper fails the run if it is ever printed
    env = {"SHADOWVAULT_API__LISTEN": "127.0.0.1:9999", "SHADOWVAULT_METRICS__TOKEN": secret}
    shown = node.json("config", "show", env=env)
    assert shown["config"]["api"]["listen"] == "127.0.0.1:9999"
    assert shown["config"]["logging"]["format"] == "json"
    assert shown["config"]["peers"][0]["quota"] == "50GiB"
    assert shown["config"]["metrics"]["token"] == "**********"
    assert shown["sources"]["api.listen"] == "SHADOWVAULT_API__LISTEN"
    assert shown["sources"]["logging.format"] == "config.yaml"
    assert shown["sources"]["peers[0].quota"] == "config.yaml"
    assert shown["sources"]["gc.grace"] == "default"
    text = node.run("config", "show", env=env).stdout
    assert "api.listen" in text and "127.0.0.1:9999" in text and "SHADOWVAULT_API__LISTEN" in text


def test_config_show_invalid_config_exits_1(node):
    (node.home / "config.yaml").write_text("gc:\n  grace: whenever\n")
    result = node.run("config", "show", expect=1)
    assert result.stderr == (
        "error: config.yaml: gc.grace: expected a duration like 30s, 5m, 24h or 7d, "
        "found 'whenever'\n"
    )


def _store_meta(node):
    repo = open_repository(HomePaths(node.home), node.passphrase)
    try:
        return repo.store.meta
    finally:
        repo.close()


def test_config_store_settings_used_by_init(new_home):
    env = {
        "SHADOWVAULT_STORE__CHUNK_MIN": "64KiB",
        "SHADOWVAULT_STORE__CHUNK_AVG": "256KiB",
        "SHADOWVAULT_STORE__COMPRESSION": "off",
    }
    new_home.run("init", "--chunk-max", "2MiB", env=env)
    meta = _store_meta(new_home)
    assert (meta.chunker.min_size, meta.chunker.avg_size, meta.chunker.max_size) == (
        64 << 10,
        256 << 10,
        2 << 20,
    )
    assert meta.compression == 0


def test_config_placed_before_init_is_kept_and_used(new_home):
    new_home.home.mkdir(mode=0o700)
    text = "store:\n  chunk_avg: 2MiB\n  compression: 9\n"
    (new_home.home / "config.yaml").write_text(text)
    new_home.run("init")
    meta = _store_meta(new_home)
    assert (meta.chunker.avg_size, meta.compression) == (2 << 20, 9)
    assert (new_home.home / "config.yaml").read_text() == text


def test_config_invalid_refuses_init_and_creates_nothing(new_home):
    result = new_home.run("init", env={"SHADOWVAULT_STORE__CHUNK_MIN": "huge"}, expect=1)
    assert result.stderr == (
        "error: SHADOWVAULT_STORE__CHUNK_MIN: store.chunk_min: expected a size like 512KiB, "
        "50GiB or 1TB, found 'huge'\n"
    )
    assert not new_home.home.exists()
