"""The master key file: passphrase changes re-wrap the key and never touch the data."""

from __future__ import annotations

import json
import stat

import nacl.pwhash
import pytest

from node.repo import (
    FormatError,
    HomeError,
    HomePaths,
    KdfParams,
    WrongPassphrase,
    change_passphrase,
    check_store,
    open_repository,
)

OLD = "correct horse battery staple"  # the passphrase of the `home` fixture (conftest)
NEW = "a completely different passphrase ✓"


def _files(root) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_keys_change_passphrase_keeps_data_and_refuses_the_old_one(home, open_repo, write_blobs):
    with open_repo(home) as repo:
        blobs = write_blobs(repo, 5)
    packs_before = _files(home.store / "packs")
    identity_before = home.identity_key.read_bytes()
    doc_before = json.loads(home.master_key.read_bytes())

    change_passphrase(home, OLD, NEW)

    with pytest.raises(WrongPassphrase):
        open_repository(home, OLD)
    with open_repo(home, NEW) as repo:
        for blob in blobs:
            assert repo.load(blob.blob_id) == blob.plaintext
        assert check_store(repo, read_data=True).ok
    assert _files(home.store / "packs") == packs_before  # nothing was re-encrypted
    assert home.identity_key.read_bytes() == identity_before
    doc_after = json.loads(home.master_key.read_bytes())
    assert doc_after["kdf"]["opslimit"] == doc_before["kdf"]["opslimit"]  # the cost is kept
    assert doc_after["kdf"]["memlimit"] == doc_before["kdf"]["memlimit"]
    assert doc_after["kdf"]["salt"] != doc_before["kdf"]["salt"]
    assert doc_after["wrapped"] != doc_before["wrapped"]
    assert stat.S_IMODE(home.master_key.stat().st_mode) == 0o600
    assert not [p.name for p in home.keys_dir.iterdir() if p.name.startswith(".")]


def test_keys_change_passphrase_twice_and_back(home, open_repo, write_blobs):
    with open_repo(home) as repo:
        blobs = write_blobs(repo, 2)
    change_passphrase(home, OLD, NEW)
    change_passphrase(home, NEW, OLD)
    with pytest.raises(WrongPassphrase):
        open_repository(home, NEW)
    with open_repo(home, OLD) as repo:
        assert [repo.load(b.blob_id) for b in blobs] == [b.plaintext for b in blobs]


def test_keys_change_passphrase_with_new_kdf_cost(home, open_repo, write_blobs):
    with open_repo(home) as repo:
        blobs = write_blobs(repo, 1)
    cost = KdfParams(nacl.pwhash.argon2id.OPSLIMIT_MIN + 1, nacl.pwhash.argon2id.MEMLIMIT_MIN * 2)
    change_passphrase(home, OLD, NEW, cost)
    kdf = json.loads(home.master_key.read_bytes())["kdf"]
    assert (kdf["opslimit"], kdf["memlimit"]) == (cost.opslimit, cost.memlimit)
    with open_repo(home, NEW) as repo:
        assert repo.load(blobs[0].blob_id) == blobs[0].plaintext


def test_keys_change_passphrase_without_node_is_home_error(tmp_path):
    with pytest.raises(HomeError, match="no node"):
        change_passphrase(HomePaths(tmp_path / "nothing"), OLD, NEW)


def _edit_doc(doc: dict, how: str) -> bytes:
    if how == "not_json":
        return b"{not json"
    if how == "not_an_object":
        return b"[1, 2]"
    if how == "foreign_format":
        doc["format"] = "someone-else"
    elif how == "newer_version":
        doc["version"] = 2
    elif how == "unknown_kdf":
        doc["kdf"]["algorithm"] = "scrypt"
    elif how == "bad_salt":
        doc["kdf"]["salt"] = "***"
    elif how == "no_wrapped":
        del doc["wrapped"]
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not_json", "not readable JSON"),
        ("not_an_object", "damaged"),
        ("foreign_format", "not a ShadowVault key file"),
        ("newer_version", "version 2 is not supported"),
        ("unknown_kdf", "unknown key derivation"),
        ("bad_salt", "damaged"),
        ("no_wrapped", "damaged"),
    ],
    ids=[
        "not_json",
        "not_an_object",
        "foreign_format",
        "newer_version",
        "unknown_kdf",
        "bad_salt",
        "no_wrapped",
    ],
)
def test_keys_damaged_key_file_is_refused(home, how, message):
    doc = json.loads(home.master_key.read_bytes())
    damaged = _edit_doc(doc, how)
    home.master_key.write_bytes(damaged)
    for attempt in (
        lambda: open_repository(home, OLD),
        lambda: change_passphrase(home, OLD, NEW),
    ):
        with pytest.raises(FormatError, match=message):
            attempt()
        assert home.master_key.read_bytes() == damaged
