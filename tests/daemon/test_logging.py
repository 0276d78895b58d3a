"""Logs: structlog from the config, stdlib records routed in, secrets never in the output."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator

import pytest
import structlog

from node.config import LoggingConfig
from node.daemon import REDACTED, add_secret, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def _log_everything(token: str) -> None:
    log = structlog.get_logger("shadowvault.test")
    log.info("token created", token=token, role="viewer")
    log.info("request", headers={"Authorization": f"Bearer {token}", "Accept": "*/*"})
    log.info(f"owner token is {token}")  # a careless f-string: the value is registered
    log.info("login", api_key=token, nested=[{"passphrase": token}])
    logging.getLogger("hypercorn.error").warning("bad header Authorization: Bearer %s", token)
    logging.getLogger("libp2p.network").error("dial failed token=%s", token)
    try:
        raise RuntimeError(f"auth failed with {token}")
    except RuntimeError:
        log.exception("crash")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_logging_token_never_reaches_output(fmt: str) -> None:
    token = "sv-" + secrets.token_urlsafe(24)
    add_secret(token)
    out = io.StringIO()
    configure_logging(LoggingConfig(level="debug", format=fmt), stream=out)  # type: ignore[arg-type]
    _log_everything(token)
    text = out.getvalue()
    assert token not in text
    assert token[3:15] not in text
    assert text.count(REDACTED) >= 7
    assert "token created" in text and "auth failed with" in text and "RuntimeError" in text
    assert "dial failed" in text and "bad header" in text


def test_logging_unregistered_token_masked_by_key_and_pattern() -> None:
    token = "unregistered-" + secrets.token_hex(16)
    out = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=out)
    log = structlog.get_logger("shadowvault.test")
    log.info("a", token=token)
    log.info("b", headers={"authorization": f"Bearer {token}"})
    log.info("c", url=f"http://x/?token={token}")
    logging.getLogger("hypercorn.error").warning("Authorization: Bearer %s", token)
    assert token not in out.getvalue()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines[:3]] == ["a", "b", "c"]
    assert lines[0]["token"] == REDACTED
    assert lines[1]["headers"] == {"authorization": REDACTED}


def test_logging_json_lines_level_and_stdlib_routed() -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(level="info", format="json"), stream=out)
    structlog.get_logger("shadowvault.jobs").debug("hidden")
    structlog.get_logger("shadowvault.jobs").info("job started", job="abc", kind="backup")
    logging.getLogger("hypercorn.error").info("Running on http://127.0.0.1:8734")
    logging.getLogger("libp2p.network.auto_connector").info("initiating 200 new dials")
    logging.getLogger("libp2p.network.swarm").warning("peer went away")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["logger"], line["level"], line["event"]) for line in lines] == [
        ("shadowvault.jobs", "info", "job started"),
        ("hypercorn.error", "info", "Running on http://127.0.0.1:8734"),
        ("libp2p.network.swarm", "warning", "peer went away"),
    ]
    assert lines[0]["job"] == "abc" and lines[0]["timestamp"].endswith("Z")


def test_logging_libp2p_propagation_restored() -> None:
    lib = logging.getLogger("libp2p")
    lib.propagate = False  # what libp2p does at import
    lib.addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("libp2p.network.auto_connector").setLevel(logging.INFO)
    out = io.StringIO()
    configure_logging(LoggingConfig(format="json", libp2p_level="info"), stream=out)
    logging.getLogger("libp2p.network.auto_connector").info("initiating dials")
    assert lib.propagate is True and lib.handlers == []
    assert "initiating dials" in out.getvalue()
