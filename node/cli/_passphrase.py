"""Where the passphrase comes from. Never from argv: it would show in `ps` and shell history.

Order: ``--password-file`` flag, then ``SHADOWVAULT_PASSWORD``, then
``SHADOWVAULT_PASSWORD_FILE``, then a passphrase file generated into the home by
``init --generate-passphrase``, then a prompt on the terminal.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from node.repo import HomePaths, PassphraseError


class NoPassphraseSource(PassphraseError):
    """No flag, no environment variable, no generated file and no terminal to ask on."""


def _read_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PassphraseError(f"cannot read passphrase file {path}: {exc.strerror}") from exc
    value = text.rstrip("\r\n")
    if not value:
        raise PassphraseError(f"passphrase file {path} is empty")
    return value


def _from_sources(password_file: Path | None, prefix: str, home: HomePaths | None) -> str | None:
    if password_file is not None:
        return _read_file(password_file)
    if os.environ.get(f"{prefix}_PASSWORD"):
        return os.environ[f"{prefix}_PASSWORD"]
    if os.environ.get(f"{prefix}_PASSWORD_FILE"):
        return _read_file(Path(os.environ[f"{prefix}_PASSWORD_FILE"]))
    if home is not None and home.generated_passphrase.exists():
        return _read_file(home.generated_passphrase)
    return None


def _tty() -> bool:
    return sys.stdin.isatty()


def get_passphrase(password_file: Path | None, home: HomePaths | None) -> str:
    """The passphrase to unlock an existing node.

    Raises:
        PassphraseError: no source and no terminal to ask on.
    """
    value = _from_sources(password_file, "SHADOWVAULT", home)
    if value is not None:
        return value
    if not _tty():
        raise NoPassphraseSource(
            "no passphrase: set SHADOWVAULT_PASSWORD or SHADOWVAULT_PASSWORD_FILE, "
            "pass --password-file, or run on a terminal"
        )
    return getpass.getpass("passphrase: ")


def get_new_passphrase(password_file: Path | None, *, env_prefix: str = "SHADOWVAULT") -> str:
    """A new passphrase (init, key passwd): from the sources, or asked twice on a terminal.

    Raises:
        PassphraseError: no source and no terminal, or the two entries differ.
    """
    value = _from_sources(password_file, env_prefix, None)
    if value is not None:
        return value
    if not _tty():
        raise NoPassphraseSource(
            f"no passphrase: set {env_prefix}_PASSWORD or {env_prefix}_PASSWORD_FILE, "
            "pass a password file, or run on a terminal"
        )
    first = getpass.getpass("new passphrase: ")
    if not first:
        raise PassphraseError("the passphrase must not be empty")
    if getpass.getpass("repeat passphrase: ") != first:
        raise PassphraseError("the passphrases differ; nothing was changed")
    return first


def write_generated_passphrase(home: HomePaths, passphrase: str) -> None:
    """Write a generated passphrase to ``<home>/passphrase`` (0600, never overwriting).

    Raises:
        PassphraseError: the file already exists (nothing is written).
    """
    home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(home.generated_passphrase, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PassphraseError(
            f"{home.generated_passphrase} already exists; move it away or use it with "
            "--password-file"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(passphrase + "\n")
