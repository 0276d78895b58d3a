"""The recovery kit: same keys and identity on a new home, refused when wrong or damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.repo import (
    KDF_PROFILES,
    BlobKind,
    FormatError,
    HomeError,
    HomePaths,
    Kit,
    WrongPassphrase,
    init_home_from_kit,
    open_kit,
    open_repository,
    unlock_master,
    write_kit,
)
from tests.ops.helpers import make_repo

CHEAP = KDF_PROFILES["testing-only-insecure"]


def _kit_of(root: Path) -> Kit:
    repo = make_repo(root)
    try:
        return Kit(
            master=unlock_master(HomePaths(root), "test passphrase"),
            identity_seed=bytes(repo.identity),
            repo_id=repo.store.meta.repo_id,
            chunker=repo.store.meta.chunker,
            compression=repo.store.meta.compression,
            peers=[
                {
                    "peer_id": "12D3KooWexample",
                    "addrs": ["/ip4/10.0.0.2/tcp/4001"],
                    "store_at": True,
                }
            ],
        )
    finally:
        repo.close()


def test_a_home_from_the_kit_has_the_same_keys_and_identity(tmp_path: Path) -> None:
    kit = _kit_of(tmp_path / "old")
    path = tmp_path / "kit.json"
    write_kit(path, kit, "kit pass", CHEAP)
    assert path.stat().st_mode & 0o777 == 0o600
    assert kit.master.hex() not in path.read_text()

    opened = open_kit(path, "kit pass")
    assert opened == kit
    new = HomePaths(tmp_path / "new")
    init_home_from_kit(new, opened, "new home pass", CHEAP, "")
    old_repo = open_repository(HomePaths(tmp_path / "old"), "test passphrase")
    new_repo = open_repository(new, "new home pass")
    try:
        assert bytes(new_repo.identity.verify_key) == bytes(old_repo.identity.verify_key)
        for kind in (BlobKind.DATA, BlobKind.TREE, BlobKind.SNAPSHOT):
            assert new_repo.key_for(kind) == old_repo.key_for(kind)
        assert new_repo.store.meta.chunker == old_repo.store.meta.chunker
        assert new_repo.store.meta.repo_id == old_repo.store.meta.repo_id
    finally:
        old_repo.close()
        new_repo.close()
    with pytest.raises(HomeError):
        init_home_from_kit(new, opened, "x", CHEAP, "")


def test_wrong_passphrase_and_damage_are_refused(tmp_path: Path) -> None:
    kit = _kit_of(tmp_path / "old")
    path = tmp_path / "kit.json"
    write_kit(path, kit, "kit pass", CHEAP)
    with pytest.raises(WrongPassphrase):
        open_kit(path, "not it")
    doc = json.loads(path.read_text())
    sealed = bytearray(doc["sealed"].encode())
    sealed[10] = ord("A") if sealed[10] != ord("A") else ord("B")
    doc["sealed"] = sealed.decode()
    path.write_text(json.dumps(doc))
    with pytest.raises((WrongPassphrase, FormatError)):
        open_kit(path, "kit pass")
    path.write_text('{"format": "something else"}')
    with pytest.raises(FormatError, match="not a ShadowVault recovery kit"):
        open_kit(path, "kit pass")
    path.write_bytes(b"\x00garbage")
    with pytest.raises(FormatError):
        open_kit(path, "kit pass")
    with pytest.raises(FormatError, match="cannot read"):
        open_kit(tmp_path / "missing.json", "kit pass")
