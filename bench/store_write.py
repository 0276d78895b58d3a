#!/usr/bin/env python3
"""Store write-path benchmark: sustained ingest through ``Store.writer()`` over N GiB.

Method (as ``proto.py write`` in ../shared/notes/packs-field-notes.md): ``os.urandom``
fills a 64 MiB pool once; each blob is a copy of a slice of it at a random offset, of
random size 256 KiB-1.75 MiB (mean 1 MiB), put with ``BlobWriter.put(blob, DATA,
plain_len, dedup_key)`` (the store computes ``blob_id_of``; the dedup key is 32 random
bytes, so the index holds both record kinds, as in a backup). Every 512 MiB of payload the
session is flushed (so the window's bytes are durable and indexed) and the window timed.

Reported:
  * rate over the first 1 GiB (windows 1-2) and the last 1 GiB (the last two windows), and
    last / first (target >= 0.9: the write rate must not fall as the store grows);
  * write amplification = this process's ``/proc/self/io`` write_bytes / payload (counts
    LevelDB's in-process compaction thread; target <= 1.5), plus the device-level
    figure from /proc/diskstats as a cross-check (it also counts other writers);
  * peak RSS (VmHWM), and RSS before the store opened (the 64 MiB pool is in both).

The store lives in ``$SV_BENCH_DIR/store-write-<pid>`` (default /tmp/sv-bench) and is
deleted afterwards unless --keep. Results are printed and written as JSON to
``$SV_BENCH_DIR/results/``.

    .venv/bin/python bench/store_write.py            # 8 GiB, ~15-60 s
    .venv/bin/python bench/store_write.py --gib 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from corpus import scratch_dir  # bench/corpus.py (the script's directory is on sys.path)

from node.repo import BlobKind, ChunkerParams
from node.repo._store import Store, StoreMeta

MiB = 1 << 20
GiB = 1 << 30
WINDOW = 512 * MiB
POOL_SIZE = 64 * MiB
MIN_BLOB, MAX_BLOB = 256 << 10, 1792 << 10  # mean 1 MiB
RATE_RATIO_TARGET = 0.9
WA_TARGET = 1.5


def proc_io_write_bytes() -> int:
    """Bytes this process caused to be written to storage (``/proc/self/io``)."""
    with open("/proc/self/io") as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def device_of(path: Path) -> str | None:
    """The /proc/diskstats name of the block device holding ``path`` (whole disk or partition)."""
    dev = os.stat(path).st_dev
    want = f"{os.major(dev)} {os.minor(dev)}"
    with open("/proc/diskstats") as fh:
        for line in fh:
            parts = line.split()
            if f"{parts[0]} {parts[1]}" == want:
                return parts[2]
    return None


def sectors_written(device: str | None) -> int | None:
    """Sectors (512 B) written to ``device`` since boot, by anyone."""
    if device is None:
        return None
    with open("/proc/diskstats") as fh:
        for line in fh:
            parts = line.split()
            if parts[2] == device:
                return int(parts[9])
    return None


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def check_free_space(where: Path, gib: float) -> None:
    """Refuse to start when the payload (+10 % and 1 GiB slack) would not fit."""
    free = shutil.disk_usage(where).free
    need = int(gib * GiB * 1.1) + GiB
    if free < need:
        raise SystemExit(
            f"not enough free disk at {where}: {free / GiB:.1f} GiB free, need {need / GiB:.1f}"
        )


def run(store_dir: Path, gib: float, seed: int) -> dict[str, Any]:
    """Write ``gib`` GiB of blobs into a new store at ``store_dir``; return the figures."""
    n_windows = max(2, round(gib * GiB / WINDOW))
    pool = os.urandom(POOL_SIZE)
    rng = random.Random(seed)
    rss_before_kib = status_kib("VmRSS")
    device = device_of(store_dir.parent)

    store = Store.create(store_dir, StoreMeta.new(ChunkerParams(), 3))
    io0, sec0 = proc_io_write_bytes(), sectors_written(device)
    t0 = time.perf_counter()
    windows: list[tuple[int, float]] = []  # (payload bytes, seconds)
    payload = blobs = 0
    try:
        with store.writer() as writer:
            t_win, w_bytes = t0, 0
            while len(windows) < n_windows:
                size = rng.randint(MIN_BLOB, MAX_BLOB)
                off = rng.randrange(POOL_SIZE - size)
                blob = pool[off : off + size]  # a fresh bytes object, like a sealed blob
                writer.put(blob, BlobKind.DATA, size, os.urandom(32))
                payload += size
                w_bytes += size
                blobs += 1
                if w_bytes >= WINDOW:  # close the window: durable and indexed, then time it
                    writer.flush()
                    now = time.perf_counter()
                    windows.append((w_bytes, now - t_win))
                    t_win, w_bytes = now, 0
    finally:
        store.close()
    secs = time.perf_counter() - t0
    proc_wb = proc_io_write_bytes() - io0
    sec1 = sectors_written(device)

    def rate(ws: list[tuple[int, float]]) -> float:
        return sum(b for b, _ in ws) / 1e6 / sum(s for _, s in ws)

    first, last = rate(windows[:2]), rate(windows[-2:])
    return {
        "gib": gib,
        "payload_bytes": payload,
        "blobs": blobs,
        "secs": round(secs, 2),
        "rate_mb_s": round(payload / 1e6 / secs, 1),
        "window_rates_mb_s": [round(b / 1e6 / s, 1) for b, s in windows],
        "rate_first_1gib_mb_s": round(first, 1),
        "rate_last_1gib_mb_s": round(last, 1),
        "last_first_ratio": round(last / first, 3),
        "proc_write_bytes": proc_wb,
        "write_amplification": round(proc_wb / payload, 4),
        "device": device,
        "device_write_amplification": (
            None if sec0 is None or sec1 is None else round((sec1 - sec0) * 512 / payload, 4)
        ),
        "packs_bytes": dir_bytes(store_dir / "packs"),
        "index_bytes": dir_bytes(store_dir / "index"),
        "rss_before_store_mb": round(rss_before_kib * 1024 / 1e6, 1),
        "peak_rss_mb": round(status_kib("VmHWM") * 1024 / 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gib", type=float, default=8.0, help="payload to write, GiB (default 8)")
    ap.add_argument("--seed", type=int, default=1, help="blob size/offset sequence seed")
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    args = ap.parse_args()

    scratch = scratch_dir()
    check_free_space(scratch, args.gib)
    store_dir = scratch / f"store-write-{os.getpid()}"
    load0 = os.getloadavg()[0]
    try:
        res = run(store_dir, args.gib, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(store_dir, ignore_errors=True)
    res.update(
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        load_start=load0,
        load_end=os.getloadavg()[0],
        store_dir=str(store_dir) if args.keep else None,
        rate_ok=res["last_first_ratio"] >= RATE_RATIO_TARGET,
        wa_ok=res["write_amplification"] <= WA_TARGET,
    )
    out = scratch / "results" / f"store_write-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(
        f"payload            {res['payload_bytes'] / GiB:.2f} GiB in {res['blobs']} blobs, "
        f"{res['secs']} s -> {res['rate_mb_s']} MB/s overall"
    )
    print(f"windows (MB/s)     {' '.join(str(r) for r in res['window_rates_mb_s'])}")
    print(f"first 1 GiB        {res['rate_first_1gib_mb_s']} MB/s")
    print(f"last 1 GiB         {res['rate_last_1gib_mb_s']} MB/s")
    print(
        f"last / first       {res['last_first_ratio']}  (target >= {RATE_RATIO_TARGET}: "
        f"{verdict(res['rate_ok'])})"
    )
    print(
        f"write amplif.      {res['write_amplification']}  (target <= {WA_TARGET}: "
        f"{verdict(res['wa_ok'])}; device {res['device']}: "
        f"{res['device_write_amplification']})"
    )
    print(
        f"peak RSS           {res['peak_rss_mb']} MB  (before the store: "
        f"{res['rss_before_store_mb']} MB, incl. the 64 MiB pool)"
    )
    print(f"load average       {load0:.2f} -> {res['load_end']:.2f}")
    print(f"results            {out}")


if __name__ == "__main__":
    main()
