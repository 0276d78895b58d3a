"""API bearer tokens: the owner's token is created at init, stored 0600 in the home.

Tokens are compared in constant time and never logged. Only a BLAKE3 hash of each token
is kept on disk in ``api-tokens.json`` beside the owner token file, so reading that file
does not give access.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import blake3

from node.repo._fsutil import atomic_write

ROLES = ("admin", "operator", "viewer")
TOKEN_FILE = "api.token"  # noqa: S105 - a file name, not a secret
TOKENS_DB = "api-tokens.json"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A known token's role (the token itself is not kept)."""

    name: str
    role: str


def _digest(token: str) -> str:
    return blake3.blake3(token.encode()).hexdigest()


def ensure_owner_token(home: Path) -> str:
    """Return the owner's (admin) token, creating it (mode 0600) on first use."""
    path = home / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = "svt_" + secrets.token_urlsafe(32)
    atomic_write(path, token.encode() + b"\n", mode=0o600)
    _add(home, token, "owner", "admin")
    return token


def _load(home: Path) -> dict[str, dict[str, str]]:
    path = home / TOKENS_DB
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def _add(home: Path, token: str, name: str, role: str) -> None:
    db = _load(home)
    db[_digest(token)] = {"name": name, "role": role}
    atomic_write(home / TOKENS_DB, json.dumps(db, indent=2).encode(), mode=0o600)


def create_token(home: Path, name: str, role: str) -> str:
    """Create a token with ``role``; returns it (shown once).

    Raises:
        ValueError: unknown role.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name or name == "owner":
        raise ValueError("a token needs a name other than 'owner'")
    token = "svt_" + secrets.token_urlsafe(32)
    _add(home, token, name, role)
    return token


def list_tokens(home: Path) -> list[TokenInfo]:
    """Every token's name and role (the tokens themselves are not kept)."""
    return [TokenInfo(v["name"], v["role"]) for v in _load(home).values()]


def revoke_token(home: Path, name: str) -> int:
    """Remove every token called ``name``; returns how many went.

    Raises:
        ValueError: ``name`` is the owner token, which the node needs.
    """
    if name == "owner":
        raise ValueError("the owner token cannot be revoked (it is the node's own)")
    db = _load(home)
    kept = {k: v for k, v in db.items() if v.get("name") != name}
    if len(kept) != len(db):
        atomic_write(home / TOKENS_DB, json.dumps(kept, indent=2).encode(), mode=0o600)
    return len(db) - len(kept)


class TokenVerifier:
    """Checks presented tokens against the stored digests.

    Re-reads the token file when it changes, so a token created or revoked while the
    daemon runs takes effect at the next request.
    """

    def __init__(self, home: Path) -> None:
        self._path = home / TOKENS_DB
        self._home = home
        self._stamp: tuple[int, int] | None = None
        self._db: dict[str, dict[str, str]] = {}
        self._reload()

    def _reload(self) -> None:
        try:
            st = self._path.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._db, self._stamp = _load(self._home), stamp

    def check(self, presented: str) -> TokenInfo | None:
        """The token's info, or None. Constant time in the token's content."""
        self._reload()
        digest = _digest(presented)
        found = None
        for known, info in self._db.items():
            if hmac.compare_digest(known, digest):
                found = TokenInfo(info["name"], info["role"])
        return found
