#!/usr/bin/env python3
"""Restore from 1 and from 3 peers, each node a ``node run`` process in its own network
namespace, each holder's link limited to ``--rate-mbit`` (tc tbf, both directions).

Why namespaces and a rate limit: on one 2-core machine every process shares the CPU, so
on loopback a restore from 3 holders is as CPU-bound as one from 1. On real networks
each holder's uplink is the limit, and that is what this reproduces: the owner's link is
free, each holder's is ``--rate-mbit``; with the fetch spread over the holders in
parallel, 3 holders should restore up to 3 times as fast as 1.

Method (integration/cluster.py, integration/netns.sh): node 1 (the owner) backs up
``--mib`` MiB of random files; nodes 2-4 store for it (replicated unshaped). The owner
exports its recovery kit and stops. Then, in alternating order, for 1 and for 3
holders: the owner's home is deleted, ``recover --kit ... --peer`` (1 or 3 holders)
makes it again with an empty store (the kit's other holders are removed from its
peer list), ``node run`` starts it, and ``restore`` runs (the fetch from the peers, then
writing the files; the files are compared with the source). Timed from the daemon's log:
the fetch (restore job start to its "fetched from peers" line), the whole job, and the
CLI call. Reported: those, MB/s of the sealed bytes received over the fetch
(``shadowvault_p2p_blob_bytes_received_total``), bytes served by each holder, the
owner's CPU seconds. ``--rate-mbit 0``: no limit (veth links at memory speed).

Needs root (``ip netns``, ``tc``).

    .venv/bin/python bench/restore_netns.py --mib 128 --rate-mbit 80 --rounds 2
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
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.cluster import Cluster, ClusterNode, metric_value, write_tree

NETNS = Path(__file__).resolve().parent.parent / "integration" / "netns.sh"
RECEIVED = "shadowvault_p2p_blob_bytes_received_total"
SENT = "shadowvault_p2p_blob_bytes_sent_total"
_TICK = os.sysconf("SC_CLK_TCK")


class Net:
    """integration/netns.sh with this run's own prefix, subnet and state directory."""

    def __init__(self, state: Path) -> None:
        tag = os.getpid() % 200 + 20
        self.env = {
            **os.environ,
            "NETNS_PREFIX": f"svr{tag}",
            "NETNS_SUBNET": f"10.78.{tag}",
            "NETNS_STATE": str(state),
        }

    def __call__(self, *args: str | int) -> str:
        proc = subprocess.run(
            ["bash", str(NETNS), *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"netns.sh {' '.join(map(str, args))}: {proc.stderr}")
        return proc.stdout.strip()

    def shape(self, i: int, mbit: int) -> None:
        """Limit node i's link to ``mbit`` each way. The burst is sized for the rate
        (and for 64 KiB GSO segments): netns.sh's 4 KiB burst caps fast links far
        below their rate."""
        burst = max(256 * 1024, mbit * 1_000_000 // 8 // 100)  # >= 10 ms of traffic
        spec = ["tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency", "100ms"]
        prefix = self.env["NETNS_PREFIX"]
        for ns, dev in ((f"{prefix}-n{i}", "eth0"), (f"{prefix}-hub", f"n{i}")):
            subprocess.run(
                ["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", *spec],
                check=True,
            )


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _stamps(node: ClusterNode, start: int) -> dict[str, float]:
    """Unix times of the restore job's log lines past byte ``start`` (the daemon's clock)."""
    with node.log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    out = {}
    for line in text.splitlines():
        for what in ("job started", "fetched from peers", "job finished"):
            if what in line and what not in out and ("restore" in line or "fetched" in what):
                out[what] = datetime.fromisoformat(line.split()[0].rstrip("Z") + "+00:00")
    missing = {"job started", "fetched from peers", "job finished"} - set(out)
    if missing:
        raise SystemExit(f"{node.name}: not logged: {sorted(missing)}")
    return {k: v.timestamp() for k, v in out.items()}


def _restore_round(
    owner: ClusterNode,
    holders: list[ClusterNode],
    others: list[ClusterNode],
    kit: Path,
    snap: str,
    src: Path,
    root: Path,
) -> dict[str, Any]:
    shutil.rmtree(owner.home, ignore_errors=True)
    peers = [a for h in holders for a in ("--peer", h.full_addr)]
    owner.run("recover", "--kit", kit, "--home", owner.home, *peers)
    for other in others:  # the kit names every holder: keep only those of this round
        owner.run("peers", "remove", other.peer_id)
    owner.start()
    try:
        sent0 = {h.name: metric_value(h.metrics(), SENT) for h in holders}
        assert owner.proc is not None
        cpu0 = _cpu(owner.proc.pid)
        target = root / "restored"
        start = owner.log.stat().st_size
        t0 = time.monotonic()
        owner.run("restore", snap, "--target", target, timeout=3600)
        cli_seconds = time.monotonic() - t0
        cpu = _cpu(owner.proc.pid) - cpu0
        stamps = _stamps(owner, start)
        seconds = stamps["fetched from peers"] - stamps["job started"]
        job_seconds = stamps["job finished"] - stamps["job started"]
        received = metric_value(owner.metrics(), RECEIVED)
        served = {h.name: int(metric_value(h.metrics(), SENT) - sent0[h.name]) for h in holders}
    finally:
        owner.stop()
    out = target / str(src.resolve()).lstrip("/")
    for f in sorted(src.iterdir()):
        if (out / f.name).read_bytes() != f.read_bytes():
            raise SystemExit(f"restored {f.name} differs from the source")
    shutil.rmtree(target)
    return {
        "peers": len(holders),
        "fetch_seconds": round(seconds, 2),
        "restore_job_seconds": round(job_seconds, 2),
        "restore_cli_seconds": round(cli_seconds, 2),
        "sealed_bytes": int(received),
        "mb_per_s": round(received / seconds / 1e6, 1),
        "owner_cpu_s": round(cpu, 2),
        "bytes_served_by": served,
    }


def run(root: Path, mib: int, rate: int, rounds: int) -> dict[str, Any]:
    net = Net(root / "netns-state")
    net("up", 4)
    cluster = Cluster(root / "cluster")
    try:
        nodes = [
            cluster.add_node(
                f"n{i}", host=net("addr", i), prefix=("ip", "netns", "exec", net("ns", i))
            )
            for i in range(1, 5)
        ]
        owner, holders = nodes[0], nodes[1:]
        cluster.store_for(owner, holders)
        cluster.start_all()
        src = write_tree(root / "src", files=max(1, mib // 16), size=16 << 20)
        snap = owner.json("backup", src)["snapshot_id"]
        owner.run("status", "--wait-replicated", "3", "--timeout", "900")
        kit = root / "owner.kit"
        owner.run("key", "export", "--out", kit)
        owner.stop()
        if rate:
            for i in (2, 3, 4):
                net.shape(i, rate)
        runs: list[dict[str, Any]] = []
        for r in range(rounds):
            for n in (1, 3) if r % 2 == 0 else (3, 1):
                runs.append(_restore_round(owner, holders[:n], holders[n:], kit, snap, src, root))
                print(f"round {r + 1}: {runs[-1]}", file=sys.stderr)
    finally:
        problems = cluster.stop_all()
        net("down")
        if problems:
            print("\n".join(problems), file=sys.stderr)
    one = [x["mb_per_s"] for x in runs if x["peers"] == 1]
    three = [x["mb_per_s"] for x in runs if x["peers"] == 3]
    return {
        "payload_mib": mib,
        "rate_mbit_per_holder": rate,
        "runs": runs,
        "mb_per_s_1_peer_median": statistics.median(one),
        "mb_per_s_3_peers_median": statistics.median(three),
        "speedup_3_over_1": round(statistics.median(three) / statistics.median(one), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=128, help="MiB backed up")
    parser.add_argument("--rate-mbit", type=int, default=80, help="each holder's link (0: none)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (1 peer, 3 peers)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (logs)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (ip netns, tc)")
    scratch = Path(os.environ.get("SV_BENCH_DIR", "/tmp/sv-bench"))
    scratch.mkdir(parents=True, exist_ok=True)
    if args.keep is not None:
        result = run(args.keep, args.mib, args.rate_mbit, args.rounds)
    else:
        with tempfile.TemporaryDirectory(prefix="restore-netns-", dir=scratch) as tmp:
            result = run(Path(tmp), args.mib, args.rate_mbit, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
