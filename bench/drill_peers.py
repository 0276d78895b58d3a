#!/usr/bin/env python3
"""Recovery time (RTO) of `shadowvault drill --from-peers` from 1 and from 2 peers, beside
the plain local drill, with real `node run` processes on loopback.

Method: a cluster of three nodes (``integration/cluster.py``): the owner and two holders
storing for it. The owner backs up the corpus (``bench/corpus.py --scale S``, ``day1/``;
full scale ~1 GiB) through its daemon and waits until both holders hold the snapshot
(``status --wait-replicated 2``). Then, in each round, interleaved so that the machine's
load hits every kind alike:

- ``local``: ``drill`` (restore from the owner's own store, verify, clean up);
- ``2 peers``: ``drill --from-peers`` with both holders running;
- ``1 peer``: ``drill --from-peers`` with the second holder stopped (SIGTERM), so every
  blob comes from the first; the second is started again afterwards.

Each drill is a CLI call through the owner's daemon; its RTO and the time of each step
(fetch, restore, verify) come from the drill's own JSON report. CPU time (user+sys) of
the owner's daemon and of the holders' daemons is read from /proc around each drill
(less sensitive to the shared machine's load than wall time). Ratios are to the local
drill of the same round.

    .venv/bin/python bench/drill_peers.py --scale 0.1 --rounds 2
    .venv/bin/python bench/drill_peers.py                  # full scale (1 GiB)
    .venv/bin/python bench/drill_peers.py --corpus DIR     # any directory

Prints a table on stderr and the JSON result on stdout. Scratch data (homes, drill
scratch) goes under ``$SV_BENCH_DIR`` (default /tmp/sv-bench) and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from integration.cluster import Cluster, ClusterNode  # noqa: E402

DRILL_TIMEOUT = 3 * 3600.0
TICKS = os.sysconf("SC_CLK_TCK")
KINDS = ("local", "2 peers", "1 peer")


def _cpu(node: ClusterNode) -> float:
    """User+sys seconds used so far by the node's daemon (0 if it is not running)."""
    if node.proc is None or node.proc.poll() is not None:
        return 0.0
    try:
        fields = Path(f"/proc/{node.proc.pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _drill(
    cluster: Cluster, kind: str, scratch: Path, holders: list[ClusterNode]
) -> dict[str, Any]:
    owner = cluster["owner"]
    args = ["drill", "--format", "json", "--scratch", str(scratch)]
    if kind != "local":
        args.append("--from-peers")
    cpu0 = _cpu(owner), sum(_cpu(h) for h in holders)
    t0 = time.perf_counter()
    out = owner.run(*args, timeout=DRILL_TIMEOUT, expect=None)
    wall = time.perf_counter() - t0
    cpu1 = _cpu(owner), sum(_cpu(h) for h in holders)
    try:
        drill = json.loads(out.stdout)["drill"]
    except (ValueError, KeyError):
        raise SystemExit(
            f"{kind}: drill gave no report:\n{out.stdout[-2000:]}\n{out.stderr}"
        ) from None
    if not drill["ok"]:
        failed = [c for c in drill["checks"] if not c["ok"]]
        raise SystemExit(f"{kind}: drill failed: {json.dumps(failed, indent=2)[:4000]}")
    steps = {s["name"]: round(s["seconds"], 2) for s in drill["steps"]}
    return {
        "kind": kind,
        "rto_s": round(drill["rto_seconds"], 2),
        "fetch_s": steps.get("fetch from peers", 0.0),
        "restore_s": steps.get("restore", 0.0),
        "verify_s": steps.get("verify against snapshot", 0.0),
        "cli_wall_s": round(wall, 2),
        "owner_cpu_s": round(cpu1[0] - cpu0[0], 2),
        "holders_cpu_s": round(cpu1[1] - cpu0[1], 2),
        "files": drill["files"],
        "bytes_restored": drill["bytes_restored"],
        "peers": [
            {"name": p["name"], "blobs": p["blobs"], "bytes": p["bytes"], "error": p["error"]}
            for p in drill["peers"]
        ],
    }


def _table(runs: list[dict[str, Any]]) -> str:
    head = (
        f"{'round':>5} {'kind':<8} {'RTO s':>8} {'fetch':>7} {'restore':>8} {'verify':>7} "
        f"{'x local':>8} {'MB/s':>6} {'owner cpu':>9} {'holders cpu':>11}  blobs per peer"
    )
    lines = [head, "-" * len(head)]
    local = {r["round"]: r["rto_s"] for r in runs if r["kind"] == "local"}
    for r in runs:
        served = ", ".join(f"{p['name']}:{p['blobs']}" for p in r["peers"] if p["blobs"])
        lines.append(
            f"{r['round']:>5} {r['kind']:<8} {r['rto_s']:>8.1f} {r['fetch_s']:>7.1f} "
            f"{r['restore_s']:>8.1f} {r['verify_s']:>7.1f} "
            f"{r['rto_s'] / local[r['round']]:>8.2f} "
            f"{r['bytes_restored'] / r['rto_s'] / 1e6:>6.0f} {r['owner_cpu_s']:>9.1f} "
            f"{r['holders_cpu_s']:>11.1f}  {served}"
        )
    return "\n".join(lines)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    local = {r["round"]: r for r in runs if r["kind"] == "local"}
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        out[kind] = {
            "rto_s_median": round(statistics.median(r["rto_s"] for r in mine), 2),
            "rto_s_min": min(r["rto_s"] for r in mine),
            "rto_vs_local_median": round(
                statistics.median(r["rto_s"] / local[r["round"]]["rto_s"] for r in mine), 2
            ),
            "owner_cpu_s_median": round(statistics.median(r["owner_cpu_s"] for r in mine), 2),
            "owner_cpu_vs_local_median": round(
                statistics.median(
                    r["owner_cpu_s"] / max(local[r["round"]]["owner_cpu_s"], 0.01) for r in mine
                ),
                2,
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="corpus scale (1.0: ~1 GiB)")
    parser.add_argument("--corpus", type=Path, help="back up this directory instead")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    corpus = args.corpus
    if corpus is None:
        out = subprocess.run(
            [sys.executable, str(REPO_ROOT / "bench" / "corpus.py"), "--scale", str(args.scale)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        corpus = Path(out.stdout.strip().splitlines()[-1]) / "day1"
    bench_dir = Path(os.environ.get("SV_BENCH_DIR") or "/tmp/sv-bench")
    bench_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="drill-peers-", dir=bench_dir))
    cluster = Cluster(root / "cluster")
    scratch = root / "scratch"
    scratch.mkdir()
    runs: list[dict[str, Any]] = []
    try:
        owner, h1, h2 = cluster.add_nodes(["owner", "h1", "h2"])
        cluster.store_for(owner, [h1, h2])
        cluster.start_all()
        t0 = time.perf_counter()
        owner.run("backup", corpus, timeout=DRILL_TIMEOUT)
        backup_s = time.perf_counter() - t0
        owner.run("status", "--wait-replicated", "2", "--timeout", "3600", timeout=DRILL_TIMEOUT)
        replicated_s = time.perf_counter() - t0 - backup_s
        stats = owner.json("stats")
        print(
            f"backup {backup_s:.1f} s, replicated to 2 holders {replicated_s:.1f} s later",
            file=sys.stderr,
        )
        for rnd in range(1, args.rounds + 1):
            for kind in KINDS:
                if kind == "1 peer":
                    h2.stop()
                run = _drill(cluster, kind, scratch, [h1, h2])
                run["round"] = rnd
                runs.append(run)
                print(
                    f"round {rnd} {kind}: RTO {run['rto_s']:.1f} s "
                    f"(fetch {run['fetch_s']:.1f}, restore {run['restore_s']:.1f})",
                    file=sys.stderr,
                )
                if kind == "1 peer":
                    h2.start()
    except BaseException:
        print(cluster.logs()[-6000:], file=sys.stderr)
        raise
    finally:
        cluster.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    print(_table(runs), file=sys.stderr)
    doc: dict[str, Any] = {
        "corpus": str(corpus.name),
        "logical_bytes": runs[0]["bytes_restored"] if runs else 0,
        "files": runs[0]["files"] if runs else 0,
        "store": {
            k: stats.get(k) for k in ("stored_bytes", "blobs", "logical_bytes") if k in stats
        },
        "backup_s": round(backup_s, 1),
        "replicate_2_holders_s": round(replicated_s, 1),
        "rounds": args.rounds,
        "runs": runs,
        "summary": _summary(runs),
        "cpus": os.cpu_count(),
        "loadavg_end": os.getloadavg(),
    }
    if args.corpus is None:
        doc["scale"] = args.scale
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
