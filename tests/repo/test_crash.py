"""Crash safety of the store: SIGKILL a writer anywhere, and nothing committed is lost.

The writer is a real child process (``store_child.py``) writing to the real LevelDB store.
Committed means: the child's ``writer.flush()`` returned and it printed the blob's id.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from node.repo import BlobKind, Sealer, check_store

_spec = importlib.util.spec_from_file_location(
    "store_child", Path(__file__).with_name("store_child.py")
)
assert _spec is not None and _spec.loader is not None
store_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store_child)

KILLS = 25
SEED = 20261122


def _committed_lines(raw: bytes) -> dict[int, str]:
    """counter -> blob id hex for every whole ``c`` line (a torn last line is ignored)."""
    out = {}
    for line in raw.split(b"\n")[:-1]:
        tag, counter, blob_hex = line.decode().split()
        assert tag == "c"
        out[int(counter)] = blob_hex
    return out


@pytest.mark.slow
def test_store_sigkill_at_random_points_loses_nothing_committed(
    home, open_repo, child, read_line
) -> None:
    rng = random.Random(SEED)
    committed: dict[int, str] = {}  # counter -> blob id hex, over all runs
    reindexed = truncated = runs_with_recovery = 0
    log = []  # one line per kill, shown when a whole-run assertion fails
    sealer = Sealer(3)

    for run in range(1, KILLS + 1):
        proc = child("loop", home, str(run), str(rng.randrange(2**32)))
        assert read_line(proc) == b"ready\n"
        # Mostly mid-stream; a few right at the start, while the first pack is created.
        delay = 0.0 if run % 8 == 0 else rng.uniform(0.0, 0.25)
        time.sleep(delay)
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"run {run}: child exited by itself (rc {proc.returncode}): {err!r}")
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, err
        new = _committed_lines(out)
        assert not set(new) & set(committed)
        committed.update(new)

        # The store opens (recovery runs) and is whole.
        repo = open_repo(home)
        rec = repo.store.recovery
        reindexed += rec.reindexed
        truncated += len(rec.truncated)
        runs_with_recovery += bool(rec.reindexed or rec.truncated)
        log.append(f"run {run}: +{len(new)} committed after {delay:.3f}s, recovery {rec}")
        report = check_store(repo, read_data=True)
        assert report.ok, f"run {run}: {[str(p) for p in report.problems]}; recovery {rec}"
        assert not report.unindexed_entries, f"run {run}: recovery left whole blobs unindexed"

        # Everything ever reported as committed reads back, dedup records included.
        for counter, blob_hex in committed.items():
            plain = store_child.plaintext(counter)
            assert repo.load(bytes.fromhex(blob_hex)) == plain, f"run {run}: blob {counter}"
            assert repo.store.lookup_dedup(repo.dedup_key(plain)).hex() == blob_hex

        # And the next write commits.
        counter = 10**9 + run
        plain = store_child.plaintext(counter)
        with repo.store.writer() as writer:
            blob_id = writer.put(
                sealer.seal(plain, repo.keys.data), BlobKind.DATA, len(plain), repo.dedup_key(plain)
            )
            writer.flush()
        assert repo.load(blob_id) == plain
        committed[counter] = blob_id.hex()
        repo.close()

    child_blobs = sum(1 for c in committed if c < 10**9)
    # The test means something only if the kills hit writes in progress.
    summary = "\n".join(log)
    assert child_blobs >= 5 * KILLS, f"only {child_blobs} blobs committed:\n{summary}"
    assert runs_with_recovery >= 3, (
        f"only {runs_with_recovery} of {KILLS} kills left work for recovery "
        f"(reindexed {reindexed}, truncated {truncated}):\n{summary}"
    )


def _crash_with_tail(child, home, committed: int, pending: int, seed: int) -> dict:
    """Run the ``tail`` child: it commits, appends more, and exits without flushing."""
    proc = child("tail", home, str(committed), str(pending), str(seed))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return json.loads(out)


def _entry_start(blob: dict, header_size: int) -> int:
    return blob["offset"] - header_size


@pytest.mark.parametrize(
    ("cut", "survivors"),
    [
        ("none", 3),
        ("mid_first_header", 0),
        ("mid_first_body", 0),
        ("mid_last_header", 2),
        ("last_byte_of_last_body", 2),
        ("flip_in_second_body", 1),
        ("garbage_after_last", 3),
    ],
    ids=lambda v: str(v),
)
def test_recover_pack_tail_after_crash(home, open_repo, child, cut, survivors) -> None:
    info = _crash_with_tail(child, home, committed=4, pending=3, seed=7)
    pending = info["pending"]
    pack_no = pending[0]["pack"]
    assert all(b["pack"] == pack_no for b in pending)
    committed_len = info["committed_packs"][str(pack_no)]
    header_size = pending[0]["offset"] - committed_len  # the first pending entry starts there
    assert header_size > 0
    path = home.store / "packs" / f"{pack_no:08d}.pack"
    end = pending[-1]["offset"] + pending[-1]["stored_len"]
    assert path.stat().st_size == end

    data = bytearray(path.read_bytes())
    if cut == "mid_first_header":
        data = data[: committed_len + header_size // 2]
    elif cut == "mid_first_body":
        data = data[: pending[0]["offset"] + 5]
    elif cut == "mid_last_header":
        data = data[: _entry_start(pending[2], header_size) + 7]
    elif cut == "last_byte_of_last_body":
        data = data[: end - 1]
    elif cut == "flip_in_second_body":
        data[pending[1]["offset"] + pending[1]["stored_len"] // 2] ^= 0x40
    elif cut == "garbage_after_last":
        data += b"\x00\x01garbage" * 11
    path.write_bytes(bytes(data))

    repo = open_repo(home)
    rec = repo.store.recovery
    assert rec.reindexed == survivors
    cut_at = end if survivors == 3 else _entry_start(pending[survivors], header_size)
    if cut == "none":
        assert rec.truncated == []
    else:
        assert [(p, off) for p, off, _ in rec.truncated] == [(pack_no, cut_at)], rec.truncated
    assert path.stat().st_size == cut_at
    assert repo.store.committed_packs()[pack_no] == cut_at

    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert report.blobs == 4 + survivors
    for blob in info["committed"] + pending[:survivors]:
        plain = store_child.plaintext(blob["counter"])
        assert repo.load(bytes.fromhex(blob["id"])) == plain
        assert repo.store.lookup_dedup(repo.dedup_key(plain)).hex() == blob["id"]
    for blob in pending[survivors:]:
        assert not repo.store.has(bytes.fromhex(blob["id"]))

    # A second open finds nothing left to do, and writing goes on.
    repo.close()
    repo = open_repo(home)
    assert repo.store.recovery.reindexed == 0
    assert repo.store.recovery.truncated == []
    plain = b"after the crash" * 50
    with repo.store.writer() as writer:
        blob_id = writer.put(Sealer(3).seal(plain, repo.keys.data), BlobKind.DATA, len(plain))
    assert repo.load(blob_id) == plain
    assert check_store(repo, read_data=True).ok


@pytest.mark.parametrize(
    "content",
    [b"", b"SVPA", b"NOTAPACKHEADER!!" + b"\x00" * 64],
    ids=["empty", "half_header", "wrong_magic"],
)
def test_recover_pack_crashed_while_created(home, open_repo, write_blobs, content) -> None:
    """A crash between creating a pack and writing its header leaves nothing indexable."""
    repo = open_repo(home)
    blobs = write_blobs(repo, 3)
    repo.close()
    stray = home.store / "packs" / "00000002.pack"
    stray.write_bytes(content)

    repo = open_repo(home)
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    assert all(repo.load(b.blob_id) == b.plaintext for b in blobs)
    plain = b"next write" * 30
    with repo.store.writer() as writer:
        blob_id = writer.put(Sealer(3).seal(plain, repo.keys.data), BlobKind.DATA, len(plain))
    assert repo.load(blob_id) == plain
    assert check_store(repo, read_data=True).ok


# -- what a clean close must keep ------------------------------------------------------------


def test_writer_dedup_record_for_stored_blob_survives_reopen(repo, open_repo, home):
    plain = b"a chunk first stored without a dedup key (e.g. by replication)" * 20
    sealed = Sealer(3).seal(plain, repo.keys.data)
    with repo.store.writer() as writer:
        blob_id = writer.put(sealed, BlobKind.DATA, len(plain))
    repo.close()

    repo = open_repo(home)
    key = repo.dedup_key(plain)
    with repo.store.writer() as writer:
        assert writer.put(sealed, BlobKind.DATA, len(plain), key) == blob_id
    assert repo.store.lookup_dedup(key) == blob_id
    repo.close()

    repo = open_repo(home)
    assert repo.store.lookup_dedup(key) == blob_id
    assert repo.load(blob_id) == plain
    report = check_store(repo, read_data=True)
    assert report.ok, [str(p) for p in report.problems]
