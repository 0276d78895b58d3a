"""Loading the config: precedence, sources, and the exact messages for bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import example_config_text
from node.config import (
    ConfigError,
    Duration,
    NodeConfig,
    Size,
    config_keys,
    load_config,
    load_config_text,
)

PEER = "12D3KooWGzBnqiBXnqHjs7iR1bTsQK8Ds5mLzf7fD8y5ocdwXyMY"


def errors_of(text: str | None, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, **kw)  # type: ignore[arg-type]
    return info.value.messages


def test_example_parses_to_exactly_the_defaults() -> None:
    loaded = load_config_text(example_config_text())
    assert loaded.config == NodeConfig()
    assert loaded.config.model_dump(mode="json") == NodeConfig().model_dump(mode="json")


def test_example_documents_every_key() -> None:
    text = example_config_text()
    missing = [
        key
        for key in config_keys()
        if not re.search(
            rf"^\s*(#\s*)?(- )?{re.escape(key.split('.')[-1].rstrip('[]'))}:", text, re.M
        )
    ]
    assert missing == []
    assert len(config_keys()) > 60


def test_no_file_means_defaults() -> None:
    assert load_config(None).config == NodeConfig()
    assert load_config(Path("/nonexistent/config.yaml")).config == NodeConfig()


MESSAGES = [
    (
        "p2p:\n  listen: [/ip4/0.0.0.0/tcp/4001, 'localhost:4001']\n",
        "config.yaml: p2p.listen[1]: expected a multiaddr like /ip4/0.0.0.0/tcp/4001, "
        "found 'localhost:4001'",
    ),
    ("api:\n  lisen: 1.2.3.4:5\n", "config.yaml: api.lisen: unknown key; did you mean 'listen'?"),
    ("apii: {}\n", "config.yaml: apii: unknown key; did you mean 'api'?"),
    (
        "logging: {level: loud}\n",
        "config.yaml: logging.level: expected one of 'debug', 'info', 'warning', 'error' "
        "or 'critical', found 'loud'",
    ),
    (
        "api: {listen: localhost}\n",
        "config.yaml: api.listen: expected HOST:PORT like 127.0.0.1:8734 or [::1]:8734, "
        "found 'localhost'",
    ),
    (
        "gc: {grace: soon}\n",
        "config.yaml: gc.grace: expected a duration like 30s, 5m, 24h or 7d, found 'soon'",
    ),
    (
        f"peers: [{{id: {PEER}, quota: lots}}]\n",
        "config.yaml: peers[0].quota: expected a size like 512KiB, 50GiB or 1TB, found 'lots'",
    ),
    (
        "peers: [{id: nope}]\n",
        "config.yaml: peers[0].id: expected a libp2p peer id like 12D3KooW... (base58), "
        "found 'nope'",
    ),
    (
        f"peers: [{{id: {PEER}}}, {{id: {PEER}}}]\n",
        f"config.yaml: peers: expected each peer once, found '{PEER}' twice",
    ),
    (
        "p2p: {bootstrap: [/ip4/1.2.3.4/tcp/4001]}\n",
        "config.yaml: p2p.bootstrap[0]: expected a multiaddr with the peer id, like "
        "/ip4/192.0.2.7/tcp/4001/p2p/12D3KooW..., found '/ip4/1.2.3.4/tcp/4001'",
    ),
    (
        "check: {cron: '61 * * * *'}\n",
        "config.yaml: check.cron: expected a cron expression like '0 3 * * *' (minute hour "
        "day month weekday), '@daily', or '' for off, found '61 * * * *'",
    ),
    (
        "store: {compression: 25}\n",
        "config.yaml: store.compression: expected 'off' or a zstd level 1-19, found 25",
    ),
    (
        "store: {chunk_min: 2MiB}\n",
        "config.yaml: store: expected chunk_min between 64B and 1MiB, found 2MiB",
    ),
    (
        "retention: {cron: '@daily'}\n",
        "config.yaml: retention: expected at least one keep_* rule when retention.cron is "
        "set (a policy that keeps nothing would forget every snapshot), found none",
    ),
    (
        "backups: [{name: home, cron: '@daily'}]\n",
        "config.yaml: backups[0].paths: expected this key (it has no default)",
    ),
    (
        "scheduler: {retries: many}\n",
        "config.yaml: scheduler.retries: expected a whole number, found 'many'",
    ),
    (
        "scheduler: {enabled: maybe}\n",
        "config.yaml: scheduler.enabled: expected true or false, found 'maybe'",
    ),
    (
        "p2p: {fetch_concurrency: 0}\n",
        "config.yaml: p2p.fetch_concurrency: expected a number >= 1, found 0",
    ),
    ("api: 5\n", "config.yaml: api: expected a section (a mapping of keys), found 5"),
    ("a: 1\na: 2\n", "config.yaml: line 2, column 1: key 'a' appears twice"),
    ("- x\n", "config.yaml: expected a mapping of sections (api:, p2p:, ...), found ['x']"),
    (
        "metrics: {token: hunter2}\n",
        "config.yaml: metrics.token: secrets don't belong in a config file; set "
        "SHADOWVAULT_METRICS__TOKEN (for example from a Docker secret) instead",
    ),
]


@pytest.mark.parametrize(("text", "message"), MESSAGES, ids=[m[1].split(":")[1] for m in MESSAGES])
def test_bad_file_gets_exact_message(text: str, message: str) -> None:
    assert errors_of(text) == [message]


def test_every_problem_is_reported_not_only_the_first() -> None:
    messages = errors_of("api: {listen: x}\nlogging: {format: xml}\ngc: {grace: never}\n")
    assert [m.split(": ")[1] for m in messages] == ["api.listen", "logging.format", "gc.grace"]


def test_secret_never_echoed_back_in_messages() -> None:
    assert not any("hunter2" in m for m in errors_of("metrics: {token: hunter2}\n"))


def test_precedence_defaults_file_env_flags() -> None:
    text = "api: {listen: 127.0.0.1:1001}\nlogging: {level: debug, format: json}\n"
    env = {
        "SHADOWVAULT_API__LISTEN": "127.0.0.1:1002",
        "SHADOWVAULT_LOGGING__LEVEL": "error",
        "SHADOWVAULT_HOME": "/not/config",
        "PATH": "/bin",
    }
    loaded = load_config_text(text, env=env, flags={"api.listen": "127.0.0.1:1003"})
    cfg = loaded.config
    assert cfg.api.listen == "127.0.0.1:1003"
    assert cfg.logging.level == "error"
    assert cfg.logging.format == "json"
    assert cfg.gc.grace == Duration(0)
    sources = {path: source for path, _, source in loaded.flat()}
    assert sources["api.listen"] == "command line"
    assert sources["logging.level"] == "SHADOWVAULT_LOGGING__LEVEL"
    assert sources["logging.format"] == "config.yaml"
    assert sources["gc.grace"] == "default"


def test_env_sets_lists_items_and_sections() -> None:
    env = {
        "SHADOWVAULT_P2P__LISTEN": "/ip4/0.0.0.0/tcp/4001, /ip6/::/tcp/4001",
        "SHADOWVAULT_P2P__ANNOUNCE": "[/dns4/node1/tcp/4001]",
        "SHADOWVAULT_BACKUPS__0__NAME": "home",
        "SHADOWVAULT_BACKUPS__0__CRON": "*/5 * * * *",
        "SHADOWVAULT_BACKUPS__0__PATHS": "/home/a,/home/b",
        "SHADOWVAULT_PEERS": f'[{{"id": "{PEER}", "quota": "50GiB", "store_for": true}}]',
        "SHADOWVAULT_STORE__COMPRESSION": "off",
        "SHADOWVAULT_SCHEDULER__ENABLED": "false",
        "SHADOWVAULT_GC__GRACE": "1h30m",
    }
    cfg = load_config_text(None, env=env).config
    assert cfg.p2p.listen == ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"]
    assert cfg.p2p.announce == ["/dns4/node1/tcp/4001"]
    assert cfg.backups[0].cron == "*/5 * * * *"
    assert cfg.backups[0].paths == ["/home/a", "/home/b"]
    assert cfg.peers[0].quota == Size(50 << 30)
    assert cfg.peers[0].store_for is True
    assert cfg.store.compression == 0
    assert cfg.scheduler.enabled is False
    assert cfg.gc.grace.seconds == 5400


def test_env_item_of_a_list_from_the_file() -> None:
    text = f"peers:\n  - id: {PEER}\n    name: office\n"
    cfg = load_config_text(text, env={"SHADOWVAULT_PEERS__0__NAME": "home"}).config
    assert cfg.peers[0].name == "home"
    assert cfg.peers[0].id == PEER


ENV_MESSAGES = [
    (
        {"SHADOWVAULT_API__LISTN": "127.0.0.1:1"},
        "SHADOWVAULT_API__LISTN: api.listn: unknown key; did you mean SHADOWVAULT_API__LISTEN?",
    ),
    (
        {"SHADOWVAULT_API_LISTEN": "127.0.0.1:1"},
        "SHADOWVAULT_API_LISTEN: not a config variable; nested keys are separated by '__': "
        "did you mean SHADOWVAULT_API__LISTEN?",
    ),
    (
        {"SHADOWVAULT_P2P__LISTEN": "/ip4/0.0.0.0/tcp/1,localhost:4001"},
        "SHADOWVAULT_P2P__LISTEN: p2p.listen[1]: expected a multiaddr like "
        "/ip4/0.0.0.0/tcp/4001, found 'localhost:4001'",
    ),
    (
        {"SHADOWVAULT_BACKUPS__3__CRON": "@daily"},
        "SHADOWVAULT_BACKUPS__3__CRON: backups[3].cron: expected a list index 0..0 (the list "
        "has 0 items), found 3",
    ),
    (
        {"SHADOWVAULT_LOGGING__LEVEL": "LOUD"},
        "SHADOWVAULT_LOGGING__LEVEL: logging.level: expected one of 'debug', 'info', "
        "'warning', 'error' or 'critical', found 'LOUD'",
    ),
]


@pytest.mark.parametrize(
    ("env", "message"), ENV_MESSAGES, ids=[next(iter(e[0])) for e in ENV_MESSAGES]
)
def test_bad_env_gets_exact_message(env: dict[str, str], message: str) -> None:
    assert errors_of(None, env=env) == [message]


def test_bad_flag_names_the_command_line() -> None:
    assert errors_of(None, flags={"api.listen": "nowhere"}) == [
        "command line: api.listen: expected HOST:PORT like 127.0.0.1:8734 or [::1]:8734, "
        "found 'nowhere'"
    ]


def test_secret_from_env_is_masked_in_show() -> None:
    loaded = load_config_text(None, env={"SHADOWVAULT_METRICS__TOKEN": "tok-s3cret-123"})
    assert loaded.config.metrics.token is not None
    assert loaded.config.metrics.token.get_secret_value() == "tok-s3cret-123"
    shown = {path: (value, source) for path, value, source in loaded.flat()}
    assert shown["metrics.token"] == ("**********", "SHADOWVAULT_METRICS__TOKEN")
    assert "tok-s3cret-123" not in repr(loaded.config)
    assert "tok-s3cret-123" not in str(loaded.flat())


def test_required_file_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", required=True)
    assert info.value.messages == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_empty_keys_keep_their_defaults() -> None:
    cfg = load_config_text("backups:\npeers:\napi:\n  listen:\n").config
    assert cfg == NodeConfig()


_YAMLISH = st.text(
    alphabet=st.sampled_from(list("apilstenm2:{}[]-'\"\n #.,_0123456789/@*")), max_size=80
)


@settings(max_examples=300)
@given(_YAMLISH)
def test_any_file_text_gives_config_or_config_error(text: str) -> None:
    try:
        load_config_text(text)
    except ConfigError as exc:
        assert exc.messages and all(m.startswith("config.yaml: ") for m in exc.messages)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "SHADOWVAULT_API__LISTEN",
                "SHADOWVAULT_P2P__LISTEN",
                "SHADOWVAULT_PEERS",
                "SHADOWVAULT_BACKUPS__0__CRON",
                "SHADOWVAULT_GC__GRACE",
                "SHADOWVAULT_X__Y",
                "SHADOWVAULT_STORE__CHUNK_MIN",
                "SHADOWVAULT_API",
            ]
        ),
        st.text(max_size=20),
        max_size=4,
    )
)
def test_any_environment_gives_config_or_config_error(env: dict[str, str]) -> None:
    try:
        load_config_text(None, env=env)
    except ConfigError as exc:
        assert exc.messages and all(m.startswith("SHADOWVAULT_") for m in exc.messages)


HOSTILE_YAML = [
    ("? [a]\n: b\n", "config.yaml: line 1, column 3: a key must be a name, not a list or mapping"),
    ("&a [*a]\n", "config.yaml: nested deeper than 16 levels (a recursive alias?)"),
    ("1: 2\n", "config.yaml: [1]: expected a key name, found 1"),
    (
        "x: !!python/object:os.system ls\n",
        "config.yaml: line 1, column 4: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system'",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), HOSTILE_YAML, ids=["list-key", "cycle", "int-key", "tag"]
)
def test_hostile_yaml_gets_a_message_not_a_crash(text: str, message: str) -> None:
    assert errors_of(text) == [message]


def test_hostile_yaml_in_environment() -> None:
    assert errors_of(None, env={"SHADOWVAULT_PEERS": "&a [{x: *a}]"}) == [
        "SHADOWVAULT_PEERS: peers: nested deeper than 16 levels (a recursive alias?)"
    ]
