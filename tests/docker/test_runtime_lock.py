"""docker/runtime-lock.py: the image gets the run-time closure of the lock, hashes intact."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def runtime_lock(*extra: str) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docker" / "runtime-lock.py"),
            "requirements.lock",
            "pyproject.toml",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, flags=re.M))


def test_runtime_lock_keeps_runtime_closure_and_drops_dev_tools() -> None:
    full = pins((ROOT / "requirements.lock").read_text())
    runtime = pins(runtime_lock())
    for name in ("libp2p", "trio", "plyvel", "fastapi", "pynacl", "fastecdsa", "setuptools"):
        assert runtime[name] == full[name]
    for dev in (
        "mypy",
        "ruff",
        "pytest",
        "pytest-trio",
        "hypothesis",
        "import-linter",
        "schemathesis",
    ):
        assert dev not in runtime


def test_runtime_lock_blocks_keep_every_hash() -> None:
    full = (ROOT / "requirements.lock").read_text()
    text = runtime_lock()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.strip()):
        assert "--hash=sha256:" in block
        assert block in full  # copied verbatim


def test_runtime_lock_without_hashes_is_plain_pins() -> None:
    lines = runtime_lock("--no-hashes").splitlines()
    assert lines and all(re.fullmatch(r"[A-Za-z0-9._-]+==\S+", line) for line in lines)
    assert pins("\n".join(lines)) == pins(runtime_lock())
