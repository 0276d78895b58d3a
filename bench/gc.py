#!/usr/bin/env python3
"""gc benchmark: time and peak memory against the number of blobs, and forget+gc vs restic.

Part 1 (``--blobs``): for each N (default 10^4, 10^5, 10^6) a store gets N small data
blobs (200 bytes, so the count, not the bytes, dominates) in two snapshots of N/2 blobs
each (1000 files of one chunk per directory); one snapshot is forgotten and
``shadowvault gc --json`` runs under ``/usr/bin/time -v``. Half the blobs go; packs that
are mostly garbage are rewritten. For the memory baseline, ``shadowvault holds`` (open
the store, read one prefix, close) runs the same way. Memory should stay flat in N: the
mark set is a temporary LevelDB and the sweep a merge of two sorted iterators.

Part 2 (``--corpus``): the shared corpus (bench/corpus.py, default scale 0.1): back up
day1 then day2 with restic and with shadowvault, then time ``forget --keep-last 1
--prune`` for each (restic: forget + prune with its default 5 % unused; shadowvault:
forget + gc) on fresh copies of both, ``--rounds`` times (default 3) with the tools
taking turns going first, then ``check --read-data`` on the last copies (untimed, must
pass). Medians and the restic/shadowvault ratios (wall and CPU) are reported.

node/ and protocol/ are byte-compiled first, as an installed node is (``--no-compile``
to time a worktree that recompiles its sources on every command).

Results go to stdout (a table) and ``$SV_BENCH_DIR/results/gc-<time>.json``.

    .venv/bin/python bench/gc.py                       # both parts
    .venv/bin/python bench/gc.py --blobs 10000,100000  # part 1 only, two sizes
    .venv/bin/python bench/gc.py --no-blobs --scale 1  # part 2 on the full corpus
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from corpus import (
    MARKER,
    REPO_ROOT,
    byte_compile,
    corpus_dir,
    ensure_corpus,
    scratch_dir,
)  # bench/corpus.py
from cycle import PASSWORD, StepResult, du_bytes, rsync, run_timed  # bench/cycle.py

SHADOWVAULT = str(Path(sys.executable).with_name("shadowvault"))


def populate(home: Path, n: int) -> None:
    """A store with N data blobs in two snapshots; the first one forgotten."""
    sys.path.insert(0, str(REPO_ROOT))
    import blake3

    from node.repo import (
        DIR,
        FILE,
        KDF_PROFILES,
        BlobKind,
        HomePaths,
        InitOptions,
        Node,
        Sealer,
        Snapshot,
        delete_snapshot_record,
        encode_tree,
        init_home,
        list_snapshots,
        open_repository,
        save_snapshot,
    )

    paths = HomePaths(home)
    init_home(paths, PASSWORD, InitOptions(kdf=KDF_PROFILES["testing-only-insecure"]), "")
    repo = open_repository(paths, PASSWORD)
    sealer = Sealer(3)
    noise = os.urandom(1 << 20)
    per_dir = 1000
    try:
        for half in range(2):
            dirs = []
            with repo.store.writer() as w:
                count = n // 2
                base = half * count
                for d0 in range(0, count, per_dir):
                    files = []
                    for i in range(base + d0, base + min(d0 + per_dir, count)):
                        at = (i * 7919) % (len(noise) - 192)
                        body = i.to_bytes(8, "little") + noise[at : at + 192]
                        blob = w.put(
                            body,
                            BlobKind.DATA,
                            len(body),
                            bytes(blake3.blake3(body).digest()),
                        )
                        files.append(Node(name=b"f%07d" % i, type=FILE, chunks=[blob]))
                    plain = encode_tree(files)
                    tree = w.put(sealer.seal(plain, repo.keys.metadata), BlobKind.TREE, len(plain))
                    dirs.append(Node(name=b"d%07d" % d0, type=DIR, subtree=tree))
                root_plain = encode_tree(dirs)
                root = w.put(
                    sealer.seal(root_plain, repo.keys.metadata), BlobKind.TREE, len(root_plain)
                )
                w.flush()
                save_snapshot(
                    repo,
                    w,
                    Snapshot(time_ns=time.time_ns(), host="bench", paths=["/bench"], tree=root),
                )
        first = list_snapshots(repo)[0]
        assert first.id is not None
        delete_snapshot_record(repo, first.id)
    finally:
        repo.close()


def gc_child(home: Path) -> None:
    """Run gc in this process and print JSON: its report, and peak anonymous memory.

    Peak RSS (``/usr/bin/time``) also counts LevelDB's memory-mapped table files: clean,
    file-backed pages the kernel takes back under pressure, which grow with the size of
    the index a full pass touches. The heap is what must stay flat: sample ``RssAnon``.
    """
    import resource
    import threading

    sys.path.insert(0, str(REPO_ROOT))
    from node.ops import run_gc
    from node.repo import HomePaths, open_repository

    def anon_kib() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    repo = open_repository(HomePaths(home), PASSWORD)
    opened = anon_kib()
    peak = [opened]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], anon_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    report = run_gc(repo)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], anon_kib())
    repo.close()
    print(
        json.dumps(
            {
                "gc_s": round(wall, 2),
                "anon_open_mb": round(opened / 1024, 1),
                "anon_peak_mb": round(peak[0] / 1024, 1),
                "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "report": report.as_dict(),
            }
        )
    )


def sv_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWVAULT_")}
    env.update(SHADOWVAULT_HOME=str(home), SHADOWVAULT_PASSWORD=PASSWORD)
    return env


def bench_blobs(work: Path, sizes: list[int]) -> list[dict[str, Any]]:
    out = []
    for n in sizes:
        home = work / f"blobs-{n}"
        shutil.rmtree(home, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--populate", str(home), str(n)], check=True)
        populate_s = time.perf_counter() - t0
        logs = work / "logs"
        base = run_timed(
            [SHADOWVAULT, "holds"],
            cwd=work,
            env=sv_env(home),
            logs=logs,
            name=f"open-{n}",
            timeout=600,
        )
        copy = work / f"blobs-{n}-copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(home, copy)
        inproc = subprocess.run(
            [sys.executable, __file__, "--gc-child", str(copy)],
            capture_output=True,
            text=True,
            check=True,
        )
        shutil.rmtree(copy, ignore_errors=True)
        gc = run_timed(
            [SHADOWVAULT, "gc", "--json"],
            cwd=work,
            env=sv_env(home),
            logs=logs,
            name=f"gc-{n}",
            timeout=3600,
        )
        row = {
            "blobs": n,
            "populate_s": round(populate_s, 1),
            "store_bytes": du_bytes(home / "store"),
            "gc": step_dict(gc),
            "in_process": json.loads(inproc.stdout.strip().splitlines()[-1]),
            "open_only": step_dict(base),
        }
        out.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(home, ignore_errors=True)
    return out


def step_dict(step: StepResult) -> dict[str, Any]:
    return {
        "ok": step.ok,
        "wall_s": step.wall_s,
        "cpu_s": step.cpu_s,
        "rss_mb": step.rss_mb,
        "error": step.error,
        "output": step.output,
    }


def find_corpus(scale: float) -> Path:
    """The shared corpus; from a git worktree (no ../shared/bench/gen.py beside it) an
    already generated one is used as it is."""
    try:
        return ensure_corpus(scale)
    except FileNotFoundError:
        found = corpus_dir(scale)
        if (found / MARKER).exists():
            return found
        raise


def _median_step(steps: list[StepResult]) -> dict[str, Any]:
    def med(values: list[float | None]) -> float | None:
        known = sorted(v for v in values if v is not None)
        return round(statistics.median(known), 2) if known else None

    return {
        "ok": all(st.ok for st in steps),
        "wall_s": med([st.wall_s for st in steps]),
        "cpu_s": med([st.cpu_s for st in steps]),
        "rss_mb": med([st.rss_mb for st in steps]),
        "error": next((st.error for st in steps if st.error), None),
        "output": steps[-1].output,
    }


def bench_corpus(work: Path, scale: float, rounds: int = 1) -> dict[str, Any]:
    corpus = find_corpus(scale)
    logs = work / "logs"
    result: dict[str, Any] = {"scale": scale, "rounds": rounds}
    restic_env = dict(os.environ, RESTIC_PASSWORD=PASSWORD)
    svhome = work / "sv-home"
    for p in (work / "restic-repo", work / "cache", svhome, work / "src"):
        shutil.rmtree(p, ignore_errors=True)

    def rrepo(repo: Path, cache: Path) -> list[str]:
        return ["restic", "-r", str(repo), "--cache-dir", str(cache), "-q"]

    prepared = rrepo(work / "restic-repo", work / "cache")
    env = sv_env(svhome)
    subprocess.run([*prepared, "init", "--repository-version", "2"], env=restic_env, check=True)
    subprocess.run([SHADOWVAULT, "init"], env=env, check=True, capture_output=True)
    for day in ("day1", "day2"):
        rsync(corpus / day, work / "src")
        subprocess.run([*prepared, "backup", "src"], cwd=work, env=restic_env, check=True)
        subprocess.run(
            [SHADOWVAULT, "backup", "src", "--json"],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
    result["before_bytes"] = {
        "restic": du_bytes(work / "restic-repo"),
        "shadowvault": du_bytes(svhome / "store"),
    }
    # Each round works on fresh copies of the two prepared repositories (restic's cache
    # too), the tools taking turns going first: both see the same load and page cache.
    runs: dict[str, list[StepResult]] = {"restic": [], "shadowvault": []}
    run_repo, run_cache, run_home = work / "restic-run", work / "cache-run", work / "sv-run"
    for rnd in range(rounds):
        for p in (run_repo, run_cache, run_home):
            shutil.rmtree(p, ignore_errors=True)
        shutil.copytree(work / "restic-repo", run_repo)
        shutil.copytree(work / "cache", run_cache)
        shutil.copytree(svhome, run_home)
        # The copies are dirty page cache: write them out now, or the first fsync of
        # whichever tool runs first pays for flushing them (ext4 data=ordered).
        subprocess.run(["sync"], check=True)
        order = ["restic", "shadowvault"] if rnd % 2 == 0 else ["shadowvault", "restic"]
        for tool in order:
            if tool == "restic":
                step = run_timed(
                    [*rrepo(run_repo, run_cache), "forget", "--keep-last", "1", "--prune"],
                    cwd=work,
                    env=restic_env,
                    logs=logs,
                    name=f"restic-forget-prune-{rnd}",
                    timeout=3600,
                )
            else:
                step = run_timed(
                    [SHADOWVAULT, "forget", "--keep-last", "1", "--prune", "--json"],
                    cwd=work,
                    env=sv_env(run_home),
                    logs=logs,
                    name=f"sv-forget-gc-{rnd}",
                    timeout=3600,
                )
            runs[tool].append(step)
        print(
            f"round {rnd + 1}/{rounds}: restic {runs['restic'][-1].wall_s} s "
            f"({runs['restic'][-1].cpu_s} CPU-s), shadowvault {runs['shadowvault'][-1].wall_s} s "
            f"({runs['shadowvault'][-1].cpu_s} CPU-s)",
            flush=True,
        )
    result["restic"] = _median_step(runs["restic"])
    result["shadowvault"] = _median_step(runs["shadowvault"])
    result["each_round"] = {
        tool: [{"wall_s": st.wall_s, "cpu_s": st.cpu_s} for st in steps]
        for tool, steps in runs.items()
    }
    r, v = result["restic"], result["shadowvault"]
    result["ratio_restic_over_sv"] = {
        k: round(r[k] / v[k], 2) if r[k] and v[k] else None for k in ("wall_s", "cpu_s")
    }
    result["after_bytes"] = {
        "restic": du_bytes(run_repo),
        "shadowvault": du_bytes(run_home / "store"),
    }
    result["checks_ok"] = {
        "restic": subprocess.run(
            [*rrepo(run_repo, run_cache), "check", "--read-data"],
            env=restic_env,
            capture_output=True,
            check=False,
        ).returncode
        == 0,
        "shadowvault": subprocess.run(
            [SHADOWVAULT, "check", "--read-data"],
            env=sv_env(run_home),
            capture_output=True,
            check=False,
        ).returncode
        == 0,
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("restic", "shadowvault")}))
    return result


def print_table(blobs: list[dict[str, Any]], corpus: dict[str, Any] | None) -> None:
    if blobs:
        print(
            "\n    blobs  gc wall s  peak RSS MB (open only)  heap MB open -> peak  "
            "removed  packs deleted/rewritten"
        )
        for row in blobs:
            g, o, i = row["gc"], row["open_only"], row["in_process"]
            rep = g["output"] or {}
            print(
                f"{row['blobs']:>9,}  {g['wall_s']:>9}  {g['rss_mb']!s:>11} ({o['rss_mb']!s:>5})  "
                f"{i['anon_open_mb']:>10} -> {i['anon_peak_mb']:<6}  "
                f"{rep.get('blobs_removed', '?'):>7}  "
                f"{rep.get('packs_deleted', '?')}/{rep.get('packs_rewritten', '?')}"
            )
    if corpus:
        r, s = corpus["restic"], corpus["shadowvault"]
        print(
            f"\ncorpus scale {corpus['scale']}: forget --keep-last 1 --prune, "
            f"medians of {corpus['rounds']} interleaved rounds"
        )
        print(f"  restic      {r['wall_s']} s, {r['cpu_s']} CPU-s, {r['rss_mb']} MB peak")
        print(f"  shadowvault {s['wall_s']} s, {s['cpu_s']} CPU-s, {s['rss_mb']} MB peak")
        print(f"  restic / shadowvault: {corpus['ratio_restic_over_sv']}")
        print(f"  bytes before {corpus['before_bytes']}, after {corpus['after_bytes']}")
        print(f"  check --read-data afterwards: {corpus['checks_ok']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blobs", default="10000,100000,1000000", help="comma-separated sizes")
    ap.add_argument("--no-blobs", action="store_true", help="skip part 1")
    ap.add_argument("--scale", type=float, default=0.1, help="corpus scale for part 2")
    ap.add_argument("--no-corpus", action="store_true", help="skip part 2")
    ap.add_argument(
        "--rounds", type=int, default=3, help="part 2: interleaved timed rounds (default 3)"
    )
    ap.add_argument(
        "--no-compile",
        action="store_true",
        help="do not byte-compile node/ and protocol/ first (time source compiles too)",
    )
    ap.add_argument("--populate", nargs=2, metavar=("HOME", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--gc-child", metavar="HOME", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gc_child:
        gc_child(Path(args.gc_child))
        return 0
    if args.populate:
        populate(Path(args.populate[0]), int(args.populate[1]))
        return 0
    if not shutil.which("restic") and not args.no_corpus:
        print("restic is not installed: run bench/setup.sh", file=sys.stderr)
        return 1
    if not args.no_compile:
        byte_compile()
    work = scratch_dir() / "gc"
    work.mkdir(parents=True, exist_ok=True)
    blobs = [] if args.no_blobs else bench_blobs(work, [int(x) for x in args.blobs.split(",")])
    corpus = None if args.no_corpus else bench_corpus(work, args.scale, args.rounds)
    results = scratch_dir() / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"gc-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"blobs": blobs, "corpus": corpus}, indent=2))
    print_table(blobs, corpus)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
