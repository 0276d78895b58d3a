#!/usr/bin/env python3
"""Mesh replication benchmark: an owner and a holder, two ``node run`` processes on loopback.

Method (integration/cluster.py): two node homes, the holder stores for the owner, both
daemons running. Each round the owner backs up ``--mib`` MiB of fresh random files
(incompressible, so every round moves new blobs) through its daemon, which announces
the snapshot; the holder pulls the manifest and every blob, verifies and stores them,
and sends a signed receipt. Timed: from the owner's log line for the end of the backup
job (the daemon announces the snapshot then) to its "receipt: ... holds snapshot" line
(both stamped by the owner's clock), so neither the backup nor any polling is counted. Rate: the sealed bytes the holder took on in
the round (its ``held_for``) over that time. CPU: user+sys of both daemons over the
round (``/proc/PID/stat``; the backup's share is read before the announcement).

With ``--baseline DIR`` (a source tree, e.g. ``git archive main | tar -x -C DIR``) a
second owner/holder pair runs that code, in the same rounds, in alternating order.

Reference, interleaved with the rounds: the same two machines' ceiling, a bare
Noise+Yamux stream between two processes (``open_host`` on each side, 1 MiB writes of
``--mib`` MiB), so the replication figure reads as a fraction of what the transport
gives on this machine at this moment (it is shared and noisy: compare ratios).

    .venv/bin/python bench/mesh_replicate.py --mib 256 --rounds 3
    .venv/bin/python bench/mesh_replicate.py --baseline /tmp/main-src   # A/B against main
    SV_PROFILE=/tmp/prof .venv/bin/python bench/mesh_replicate.py   # cProfile both daemons
    .venv/bin/python bench/mesh_replicate_inproc.py                 # the one-process floor
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.cluster import Cluster, ClusterNode, held_for, write_tree

_TICK = os.sysconf("SC_CLK_TCK")
_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)")


def _cpu(pid: int) -> float:
    """User+sys seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _log_time(node: ClusterNode, needle: str, start: int, timeout: float = 600) -> float:
    """Unix time stamped on the first line past byte ``start`` of the node's log that
    holds every word of ``needle``."""
    words = needle.split()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with node.log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            if all(w in line for w in words):
                m = _STAMP.search(line)
                if m is None:
                    raise SystemExit(f"no time stamp in {line!r}")
                return datetime.fromisoformat(m.group(1) + "+00:00").timestamp()
        time.sleep(0.05)
    raise SystemExit(f"{node.name}: {needle!r} not logged within {timeout:g}s")


def _replication_round(owner: ClusterNode, holder: ClusterNode, src: Path) -> dict[str, Any]:
    assert owner.proc is not None and holder.proc is not None
    before = held_for(holder, owner)
    start = owner.log.stat().st_size
    snap = owner.json("backup", src)["snapshot_id"]
    # The daemon announces as the backup job finishes (code before this branch does not
    # log the announcement itself, and the baseline must be timed the same way).
    t_ann = _log_time(owner, "job finished kind=backup", start)
    cpu0 = _cpu(owner.proc.pid) + _cpu(holder.proc.pid)
    t_rcpt = _log_time(owner, f"receipt: holds snapshot {snap[:8]}", start)
    cpu1 = _cpu(owner.proc.pid) + _cpu(holder.proc.pid)
    moved = held_for(holder, owner) - before
    seconds = t_rcpt - t_ann
    return {
        "sealed_bytes": moved,
        "seconds": round(seconds, 3),
        "mb_per_s": round(moved / seconds / 1e6, 1),
        "cpu_s_both": round(cpu1 - cpu0, 2),
        "cpu_s_per_gb": round((cpu1 - cpu0) / (moved / 1e9), 2),
    }


# -- the reference: a bare Noise+Yamux stream between two processes ------------------------------

_PROTO = "/shadowvault-bench/bulk/1"


async def _ceiling_serve(mib: int) -> None:
    import nacl.signing

    from node.p2p._host import open_host

    async def handler(stream: Any) -> None:
        await stream.read(1)
        block = os.urandom(1 << 20)
        for _ in range(mib):
            await stream.write(block)
        await stream.close()

    async with open_host(nacl.signing.SigningKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        host.set_handler(_PROTO, handler)
        print(json.dumps({"addr": host.addrs[0], "pid": os.getpid()}), flush=True)
        await trio.sleep_forever()


async def _ceiling_fetch(addr: str, mib: int) -> tuple[float, float]:
    import multiaddr
    import nacl.signing
    from libp2p.peer.peerinfo import info_from_p2p_addr

    from node.p2p._host import open_host

    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    async with open_host(nacl.signing.SigningKey.generate(), ["/ip4/127.0.0.1/tcp/0"]) as host:
        host.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 600)
        await host.connect(info.peer_id)
        stream = await host.new_stream(info.peer_id, _PROTO)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        await stream.write(b"go")
        got = 0
        while got < mib << 20:
            data = await stream.read(1 << 20)
            if not data:
                break
            got += len(data)
        return time.perf_counter() - t0, time.process_time() - cpu0


def _ceiling_round(mib: int) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--ceiling-serve", str(mib)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        cpu0 = _cpu(info["pid"])
        seconds, client_cpu = trio.run(_ceiling_fetch, info["addr"], mib)
        cpu = _cpu(info["pid"]) - cpu0 + client_cpu
    finally:
        server.terminate()
        server.wait(30)
    size = mib << 20
    return {
        "bytes": size,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "cpu_s_both": round(cpu, 2),
        "cpu_s_per_gb": round(cpu / (size / 1e9), 2),
    }


# -- driver -----------------------------------------------------------------------------------


def _pair(root: Path, name: str, profile: Path | None, src: Path | None) -> Cluster:
    """An owner and a holder that stores for it, started; with ``src``, their daemons
    import ``node`` from that source tree (a baseline: ``git archive main``)."""
    cluster = Cluster(root / name)
    owner, holder = cluster.add_nodes(["owner", "holder"])
    cluster.store_for(owner, [holder])
    for node in (owner, holder):
        wrap: tuple[str, ...] = ()
        if src is not None:
            wrap = ("env", f"PYTHONPATH={src}")
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            out = profile / f"{name}-{node.name}.prof"
            wrap = (*wrap, sys.executable, "-m", "cProfile", "-o", str(out))
        node.daemon_wrap = wrap
    cluster.start_all()
    return cluster


def _run(
    root: Path, mib: int, rounds: int, profile: Path | None, baseline: Path | None
) -> dict[str, Any]:
    pairs = {"current": _pair(root, "current", profile, None)}
    if baseline is not None:
        pairs["baseline"] = _pair(root, "baseline", profile, baseline.resolve())
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in pairs}
    refs = []
    try:
        for r in range(rounds):
            src = write_tree(root / f"src{r}", files=max(1, mib // 16), size=16 << 20, seed=f"r{r}")
            refs.append(_ceiling_round(mib))
            # Alternate which pair goes first, so that a trend in the load favours neither.
            for name in sorted(pairs, reverse=r % 2 == 1):
                pair = pairs[name]
                results[name].append(_replication_round(pair["owner"], pair["holder"], src))
            shutil.rmtree(src)
            line = ", ".join(f"{n} {v[-1]['mb_per_s']}" for n, v in results.items())
            print(f"round {r + 1}: {line}, ceiling {refs[-1]['mb_per_s']} MB/s", file=sys.stderr)
    finally:
        for pair in pairs.values():
            problems = pair.stop_all()
            if problems:
                print("\n".join(problems), file=sys.stderr)
    doc: dict[str, Any] = {"payload_mib": mib, "ceiling_noise_yamux": refs}
    for name, reps in results.items():
        doc[name] = reps
        doc[f"{name}_mb_per_s_median"] = statistics.median(a["mb_per_s"] for a in reps)
        doc[f"{name}_to_ceiling"] = [
            round(a["mb_per_s"] / b["mb_per_s"], 2) for a, b in zip(reps, refs, strict=True)
        ]
    doc["ceiling_mb_per_s_median"] = statistics.median(b["mb_per_s"] for b in refs)
    if baseline is not None:
        doc["current_to_baseline"] = [
            round(a["mb_per_s"] / b["mb_per_s"], 2)
            for a, b in zip(results["current"], results["baseline"], strict=True)
        ]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB backed up per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline", type=Path, help="also run a pair from this source tree (git archive main)"
    )
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (logs)")
    parser.add_argument("--ceiling-serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_serve is not None:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(_ceiling_serve, args.ceiling_serve)
        return
    profile = Path(os.environ["SV_PROFILE"]) if os.environ.get("SV_PROFILE") else None
    scratch = Path(os.environ.get("SV_BENCH_DIR", "/tmp/sv-bench"))
    scratch.mkdir(parents=True, exist_ok=True)
    if args.keep is not None:
        result = _run(args.keep, args.mib, args.rounds, profile, args.baseline)
    else:
        with tempfile.TemporaryDirectory(prefix="mesh-replicate-", dir=scratch) as tmp:
            result = _run(Path(tmp), args.mib, args.rounds, profile, args.baseline)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
