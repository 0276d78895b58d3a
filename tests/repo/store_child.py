"""A store-owning child process for the crash and lock tests (run by the ``child`` fixture).

Usage: ``python store_child.py MODE HOME [ARGS...]`` with the passphrase in
``SV_TEST_PASSPHRASE``. Modes:

``loop HOME RUN SEED``
    Write blobs forever in batches. After each ``writer.flush()`` returns, print one line
    ``c <counter> <blob id hex>`` per blob of the batch (one ``write`` per batch). The
    plaintext of a counter is ``plaintext(counter)``, so the parent can recompute it.
    Prints ``ready`` once the store is open. Meant to be SIGKILLed at a random moment.
``tail HOME COMMITTED PENDING SEED``
    Write COMMITTED blobs and flush, then append PENDING more without flushing, print one
    JSON line describing both, and ``os._exit`` without closing: a crash with a pack tail
    that the index does not name yet, at a known place.
``hold HOME``
    Open the store, print ``ready <pid>``, and keep it open until stdin reaches EOF.
``gc HOME``
    Open the store with small packs, print ``ready``, run gc (rewriting every pack less
    than 90 % live) printing each phase it finishes, then ``done``. Meant to be SIGKILLed.

Not collected by pytest (no ``test_`` prefix); the parent imports ``plaintext`` from here.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import node.repo._store as store_module
from node.repo import BlobKind, BlobWriter, HomePaths, Repository, Sealer, open_repository

KiB = 1024
COUNTERS_PER_RUN = 1_000_000


def plaintext(counter: int) -> bytes:
    """The deterministic plaintext of blob number ``counter``: mostly small (so a crash
    loop stays fast), some up to 320 KiB (so a kill can tear a long write), about a third
    compressible."""
    rng = random.Random(counter)
    pick = rng.random()
    if pick < 0.80:
        size = rng.randint(100, 2 * KiB)
    elif pick < 0.97:
        size = rng.randint(8 * KiB, 32 * KiB)
    else:
        size = rng.randint(128 * KiB, 320 * KiB)
    if rng.random() < 0.33:
        pattern = f"blob {counter} ".encode()
        return (pattern * (size // len(pattern) + 1))[:size]
    return rng.randbytes(size)


def _open() -> Repository:
    return open_repository(HomePaths(Path(sys.argv[2])), os.environ["SV_TEST_PASSPHRASE"])


def _say(text: str) -> None:
    os.write(1, text.encode())


def loop(run: int, seed: int) -> None:
    # Small packs and an early background flush, so that a few seconds of writing cross
    # pack rolls and overlapping flush jobs. These are tuning constants, not behaviour.
    for name, value in (("PACK_TARGET_SIZE", 1024 * KiB), ("FLUSH_EVERY", 256 * KiB)):
        if not hasattr(store_module, name):
            raise SystemExit(f"node.repo._store.{name} is gone; update store_child.py")
        setattr(store_module, name, value)

    repo = _open()
    rng = random.Random(seed)
    sealer = Sealer(3)
    counter = run * COUNTERS_PER_RUN
    _say("ready\n")
    with repo.store.writer() as writer:
        while True:
            batch = []
            for _ in range(rng.randint(1, 6)):
                plain = plaintext(counter)
                sealed = sealer.seal(plain, repo.keys.data)
                blob_id = writer.put(sealed, BlobKind.DATA, len(plain), repo.dedup_key(plain))
                batch.append(f"c {counter} {blob_id.hex()}\n")
                counter += 1
            writer.flush()
            _say("".join(batch))


def tail(committed: int, pending: int, seed: int) -> None:
    repo = _open()
    sealer = Sealer(3)
    base = seed * COUNTERS_PER_RUN

    def put(writer: BlobWriter, counter: int) -> dict[str, object]:
        plain = plaintext(counter)
        sealed = sealer.seal(plain, repo.keys.data)
        blob_id = writer.put(sealed, BlobKind.DATA, len(plain), repo.dedup_key(plain))
        loc = repo.store.location(blob_id)
        return {
            "counter": counter,
            "id": blob_id.hex(),
            "pack": loc.pack,
            "offset": loc.offset,
            "stored_len": loc.stored_len,
        }

    writer_cm = repo.store.writer()
    writer = writer_cm.__enter__()
    done = [put(writer, base + i) for i in range(committed)]
    writer.flush()
    waiting = [put(writer, base + committed + i) for i in range(pending)]
    report = {
        "committed": done,
        "pending": waiting,
        "committed_packs": {str(k): v for k, v in repo.store.committed_packs().items()},
    }
    _say(json.dumps(report) + "\n")
    os._exit(0)  # a crash: no flush, no close


def hold() -> None:
    repo = _open()
    _say(f"ready {os.getpid()}\n")
    sys.stdin.buffer.read()
    repo.close()


def gc() -> None:
    import node.repo._gc as gc_module
    from node.repo import collect_garbage

    # Small packs and small sweep and move batches: many commits, so a kill lands
    # between them.
    store_module.PACK_TARGET_SIZE = 48 * KiB
    gc_module._SWEEP_BATCH = 16
    gc_module._MOVE_BATCH = 16
    repo = _open()
    _say("ready\n")
    collect_garbage(repo, rewrite_below=0.9, on_phase=lambda phase: _say(phase + "\n"))
    _say("done\n")
    repo.close()


def main() -> None:
    mode = sys.argv[1]
    if mode == "loop":
        loop(int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "tail":
        tail(int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "hold":
        hold()
    elif mode == "gc":
        gc()
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
