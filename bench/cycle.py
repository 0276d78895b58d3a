#!/usr/bin/env python3
"""Full backup cycle benchmark: restic 0.14 vs borg 1.2.4 vs shadowvault, interleaved rounds.

Per round, for each tool in turn (restic, borg, shadowvault), in a fresh work directory
(method of ../shared/notes/perf-baseline.md section 3):

    rsync -a --delete day1/ src/      (untimed)
    init                              timed
    backup 1 of src                   timed; then du -sb of the repository
    rsync -a --delete day2/ src/      (untimed; rewrites only the changed files)
    backup 2 (incremental)            timed; then du -sb
    (sync; drop the page cache)       as root, unless --warm: restores and checks are cold
    restore latest into an empty dir  timed; round 1 also checks it equals day2 (diff -rq)
    (sync; drop the page cache)
    check, reading all data           timed (restic check --read-data,
                                      borg check --verify-data, shadowvault check --read-data)

Every timed step runs under ``/usr/bin/time -v``: wall time, user+sys CPU, peak RSS.
A failing step (e.g. shadowvault's CLI not being ready) is recorded with its stderr tail
and ends that tool's round; the other tools are still measured and reported.

Output: a table of medians with the ratios shadowvault/restic and shadowvault/borg, the
raw per-round lists, and a JSON file in ``$SV_BENCH_DIR/results/`` (default /tmp/sv-bench).
The machine is shared and noisy: compare the ratios from interleaved rounds, not
absolute values from different runs.

    .venv/bin/python bench/cycle.py                          # 5 rounds, all three tools
    .venv/bin/python bench/cycle.py --tools restic,borg --rounds 3
    .venv/bin/python bench/cycle.py --scale 0.1 --rounds 1   # quick smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corpus import (
    REPO_ROOT,
    byte_compile,
    ensure_corpus,
    scratch_dir,
    tree_bytes,
)  # bench/corpus.py

TOOLS = ("restic", "borg", "shadowvault")
STEPS = ("init", "backup1", "backup2", "restore", "check")
PASSWORD = "sv-bench-password"  # throwaway repositories in the scratch directory only
OUTPUT_KEEP = 64 * 1024  # bytes of a step's stdout kept in the results (e.g. --json output)


# -- running one step under /usr/bin/time -v ---------------------------------------------------


@dataclass
class StepResult:
    """One timed command."""

    ok: bool
    rc: int | None  # None on timeout
    wall_s: float
    user_s: float | None = None
    sys_s: float | None = None
    cpu_s: float | None = None
    rss_mb: float | None = None
    load: float = 0.0  # 1-min load average when the step started
    error: str | None = None  # stderr tail when it failed
    output: Any = None  # parsed JSON stdout (shadowvault --json), if any


_TIME_FIELDS = {
    "User time (seconds)": "user_s",
    "System time (seconds)": "sys_s",
    "Maximum resident set size (kbytes)": "rss_kib",
    "Elapsed (wall clock) time (h:mm:ss or m:ss)": "elapsed",
}


def parse_time_v(text: str) -> dict[str, float]:
    """The fields we use from GNU time's ``-v`` report."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().rpartition(": ")
        name = _TIME_FIELDS.get(key)
        if not sep or name is None:
            continue
        if name == "elapsed":  # [h:]m:ss.cc
            secs = 0.0
            for part in value.split(":"):
                secs = secs * 60 + float(part)
            out["wall_s"] = secs
        else:
            out[name] = float(value)
    return out


def _parse_json_output(raw: bytes) -> Any:
    """A JSON document from stdout: the whole text, else its last line; None if neither."""
    text = raw.decode(errors="replace").strip()
    for candidate in (text, text.rsplit("\n", 1)[-1]):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def run_timed(
    argv: list[str], *, cwd: Path, env: dict[str, str], logs: Path, name: str, timeout: float
) -> StepResult:
    """Run ``argv`` under ``/usr/bin/time -v``; stdout/stderr go to ``logs/name.{out,err}``."""
    logs.mkdir(parents=True, exist_ok=True)
    tfile, ofile, efile = (logs / f"{name}.{ext}" for ext in ("time", "out", "err"))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with ofile.open("wb") as out, efile.open("wb") as err:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", str(tfile), *argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            rc: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
            proc.wait()
            rc = None
    wall = time.perf_counter() - t0
    fields = parse_time_v(tfile.read_text(errors="replace")) if tfile.exists() else {}
    res = StepResult(ok=rc == 0, rc=rc, wall_s=round(fields.get("wall_s", wall), 2), load=load)
    if "user_s" in fields and "sys_s" in fields:
        res.user_s, res.sys_s = fields["user_s"], fields["sys_s"]
        res.cpu_s = round(res.user_s + res.sys_s, 2)
    if "rss_kib" in fields:
        res.rss_mb = round(fields["rss_kib"] * 1024 / 1e6, 1)
    with ofile.open("rb") as fh:
        res.output = _parse_json_output(fh.read(OUTPUT_KEEP))
    if not res.ok:
        tail = efile.read_bytes()[-2000:].decode(errors="replace").strip()
        res.error = f"timed out after {timeout:g} s" if rc is None else f"exit {rc}: {tail}"
    return res


# -- the tools ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """How one tool runs each step. Commands run with cwd = the cycle's work directory."""

    name: str
    version_argv: list[str]
    env: Callable[[Path], dict[str, str]]
    repo: Callable[[Path], Path]  # what `du -sb` measures
    init: Callable[[Path], list[str]]
    backup: Callable[[Path, str], list[str]]  # (work, label) -> argv; backs up "src"
    restore: Callable[[Path, Path], list[str]]  # (work, target) -> argv, run with cwd=target
    check: Callable[[Path], list[str]]
    stats: Callable[[Path], list[str]] | None = None  # untimed, recorded after the check


def _restic(work: Path) -> list[str]:
    return ["restic", "-r", str(work / "repo"), "--cache-dir", str(work / "cache"), "-q"]


def _borg_repo(work: Path) -> str:
    return str(work / "repo")


def make_tools(shadowvault: str) -> dict[str, Tool]:
    """The three tools, configured as in perf-baseline.md (zstd-3 for borg; restic's auto)."""
    return {
        "restic": Tool(
            name="restic",
            version_argv=["restic", "version"],
            env=lambda w: {"RESTIC_PASSWORD": PASSWORD},
            repo=lambda w: w / "repo",
            init=lambda w: [*_restic(w), "init", "--repository-version", "2"],
            backup=lambda w, label: [*_restic(w), "backup", "--tag", label, "src"],
            restore=lambda w, t: [*_restic(w), "restore", "latest", "--target", str(t)],
            check=lambda w: [*_restic(w), "check", "--read-data"],
        ),
        "borg": Tool(
            name="borg",
            version_argv=["borg", "--version"],
            env=lambda w: {"BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(w / "borgbase")},
            repo=lambda w: w / "repo",
            init=lambda w: ["borg", "init", "--encryption=repokey", _borg_repo(w)],
            backup=lambda w, label: [
                "borg",
                "create",
                "--compression",
                "zstd,3",
                f"{_borg_repo(w)}::{label}",
                "src",
            ],
            restore=lambda w, t: ["borg", "extract", f"{_borg_repo(w)}::day2"],
            check=lambda w: ["borg", "check", "--verify-data", _borg_repo(w)],
        ),
        "shadowvault": Tool(
            name="shadowvault",
            # No --version flag yet: ask the package metadata of the executable's venv.
            version_argv=[
                str(Path(shadowvault).with_name("python")),
                "-c",
                "import importlib.metadata as m; print('shadowvault', m.version('shadowvault'))",
            ],
            env=lambda w: {"SHADOWVAULT_HOME": str(w / "home"), "SHADOWVAULT_PASSWORD": PASSWORD},
            repo=lambda w: w / "home" / "store",
            init=lambda w: [shadowvault, "init"],
            backup=lambda w, label: [shadowvault, "backup", "src", "--json"],
            restore=lambda w, t: [shadowvault, "restore", "latest", "--target", str(t)],
            check=lambda w: [shadowvault, "check", "--read-data"],
            stats=lambda w: [shadowvault, "stats", "--json"],
        ),
    }


def tool_version(tool: Tool) -> str:
    try:
        proc = subprocess.run(
            tool.version_argv, capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        return f"unavailable: {exc}"
    text = (proc.stdout or proc.stderr).strip().splitlines()
    first = text[0] if text else ""
    return first if proc.returncode == 0 else f"unavailable (exit {proc.returncode}): {first}"


# -- one cycle ----------------------------------------------------------------------------------


@dataclass
class CycleResult:
    """One tool's cycle in one round."""

    tool: str
    round: int
    steps: dict[str, StepResult] = field(default_factory=dict)
    repo_bytes_day1: int | None = None
    repo_bytes_day2: int | None = None
    restore_verified: bool | None = None  # None: not checked this round
    restore_diff: str | None = None
    stats: Any = None
    failed_step: str | None = None


def du_bytes(path: Path) -> int:
    """``du -sb`` of a path (apparent size, like the baseline)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def rsync(src: Path, dst: Path) -> None:
    subprocess.run(["rsync", "-a", "--delete", f"{src}/", f"{dst}/"], check=True)


def restored_root(target: Path, src: Path, day2: Path) -> Path | None:
    """Where the restore put the tree: target/src (relative paths, restic and borg),
    target/<absolute src> or target itself, whichever holds day2's top-level names."""
    want = {p.name for p in day2.iterdir()}
    for cand in (target / "src", target / src.relative_to(src.anchor), target):
        if cand.is_dir() and want <= {p.name for p in cand.iterdir()}:
            return cand
    return None


def verify_restore(target: Path, src: Path, day2: Path) -> tuple[bool, str]:
    """Compare the restored tree with day2 (``diff -rq``): (identical, first differences)."""
    root = restored_root(target, src, day2)
    if root is None:
        return False, f"no restored tree holding day2's top-level entries under {target}"
    proc = subprocess.run(
        ["diff", "-rq", str(day2), str(root)], capture_output=True, text=True, check=False
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    detail = "\n".join(lines[:20]) + (f"\n... {len(lines) - 20} more" if len(lines) > 20 else "")
    return proc.returncode == 0, detail or "identical"


def drop_caches() -> bool:
    """Write dirty pages and empty the page cache (root only); True if it was done.

    Restores and checks usually happen long after the backup (a lost machine, a weekly
    check), so they are measured with a cold cache, the same for every tool. Without
    this, a tool that leaves its freshly written repository in the page cache reads it
    from memory, and one that drops those pages after writing (as shadowvault does, to
    keep backup memory flat) reads from disk.
    """
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def run_cycle(
    tool: Tool,
    corpus: Path,
    work: Path,
    *,
    rnd: int,
    verify: bool,
    timeout: float,
    cold: bool = True,
) -> CycleResult:
    """One full cycle of ``tool`` in a fresh ``work`` directory."""
    if work.exists():
        shutil.rmtree(work)
    src, target, logs = work / "src", work / "restore", work / "logs"
    for d in (src, target, logs):
        d.mkdir(parents=True)
    env = {**os.environ, **tool.env(work)}
    res = CycleResult(tool=tool.name, round=rnd)

    def step(name: str, argv: list[str], cwd: Path = work) -> bool:
        r = run_timed(argv, cwd=cwd, env=env, logs=logs, name=name, timeout=timeout)
        res.steps[name] = r
        if not r.ok:
            res.failed_step = name
        return r.ok

    rsync(corpus / "day1", src)
    if not (step("init", tool.init(work)) and step("backup1", tool.backup(work, "day1"))):
        return res
    res.repo_bytes_day1 = du_bytes(tool.repo(work))
    rsync(corpus / "day2", src)
    if not step("backup2", tool.backup(work, "day2")):
        return res
    res.repo_bytes_day2 = du_bytes(tool.repo(work))
    if cold:
        drop_caches()
    if not step("restore", tool.restore(work, target), cwd=target):
        return res
    if verify:
        res.restore_verified, res.restore_diff = verify_restore(target, src, corpus / "day2")
    shutil.rmtree(target)  # free the space before the check reads the repository
    if cold:
        drop_caches()
    if not step("check", tool.check(work)):
        return res
    if tool.stats is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc = subprocess.run(
                tool.stats(work), cwd=work, env=env, capture_output=True, timeout=600, check=False
            )
            res.stats = _parse_json_output(proc.stdout) if proc.returncode == 0 else None
    return res


# -- summary ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A row of the summary table."""

    key: str
    label: str
    value: Callable[[CycleResult], float | None]


def make_metrics(day1_bytes: int, day2_bytes: int) -> list[Metric]:
    def wall(s: str) -> Callable[[CycleResult], float | None]:
        return lambda c: c.steps[s].wall_s if s in c.steps and c.steps[s].ok else None

    def cpu(s: str) -> Callable[[CycleResult], float | None]:
        return lambda c: c.steps[s].cpu_s if s in c.steps and c.steps[s].ok else None

    def rss(s: str) -> Callable[[CycleResult], float | None]:
        return lambda c: c.steps[s].rss_mb if s in c.steps and c.steps[s].ok else None

    def rate(s: str, nbytes: Callable[[CycleResult], int | None]) -> Callable[..., float | None]:
        def f(c: CycleResult) -> float | None:
            w, n = wall(s)(c), nbytes(c)
            return None if w is None or n is None or w <= 0 else round(n / 1e6 / w, 1)

        return f

    def mb(n: int | None) -> float | None:
        return None if n is None else round(n / 1e6, 1)

    def growth(c: CycleResult) -> float | None:
        if c.repo_bytes_day1 is None or c.repo_bytes_day2 is None:
            return None
        return mb(c.repo_bytes_day2 - c.repo_bytes_day1)

    return [
        Metric("init_s", "init wall s", wall("init")),
        Metric("backup1_mb_s", "backup 1 MB/s", rate("backup1", lambda c: day1_bytes)),
        Metric("backup1_s", "backup 1 wall s", wall("backup1")),
        Metric("backup1_cpu_s", "backup 1 CPU s", cpu("backup1")),
        Metric("backup1_rss_mb", "backup 1 peak RSS MB", rss("backup1")),
        Metric("backup2_mb_s", "backup 2 MB/s (scanned)", rate("backup2", lambda c: day2_bytes)),
        Metric("backup2_s", "backup 2 wall s", wall("backup2")),
        Metric("backup2_cpu_s", "backup 2 CPU s", cpu("backup2")),
        Metric("backup2_rss_mb", "backup 2 peak RSS MB", rss("backup2")),
        Metric("repo_day1_mb", "repo after day 1 MB", lambda c: mb(c.repo_bytes_day1)),
        Metric("repo_day2_mb", "repo after day 2 MB", lambda c: mb(c.repo_bytes_day2)),
        Metric("growth_day2_mb", "day-2 growth MB", growth),
        Metric("restore_mb_s", "restore MB/s", rate("restore", lambda c: day2_bytes)),
        Metric("restore_s", "restore wall s", wall("restore")),
        Metric("restore_cpu_s", "restore CPU s", cpu("restore")),
        Metric("restore_rss_mb", "restore peak RSS MB", rss("restore")),
        Metric("check_mb_s", "check MB/s (of repo)", rate("check", lambda c: c.repo_bytes_day2)),
        Metric("check_s", "check wall s", wall("check")),
        Metric("check_cpu_s", "check CPU s", cpu("check")),
        Metric("check_rss_mb", "check peak RSS MB", rss("check")),
    ]


def summarize(
    results: list[CycleResult], tools: list[str], metrics: list[Metric]
) -> dict[str, Any]:
    """Raw lists (run order, successful steps only), medians, and shadowvault's ratios."""
    raw: dict[str, dict[str, list[float]]] = {t: {} for t in tools}
    for m in metrics:
        for t in tools:
            vals = [m.value(c) for c in results if c.tool == t]
            raw[t][m.key] = [v for v in vals if v is not None]
    med = {
        t: {k: (round(statistics.median(v), 2) if v else None) for k, v in raw[t].items()}
        for t in tools
    }
    ratios: dict[str, dict[str, float | None]] = {}
    # shadowvault against every other tool; each --also build against the reference tools
    builds = [t for t in tools if t not in ("restic", "borg")]
    pairs = [("shadowvault", t) for t in tools if t != "shadowvault" and "shadowvault" in tools]
    pairs += [
        (b, t) for b in builds if b != "shadowvault" for t in tools if t in ("restic", "borg")
    ]
    for mine, other in pairs:
        ratios[f"{mine}/{other}"] = {
            m.key: (
                round(sv / ot, 3)
                if (sv := med[mine][m.key]) is not None and (ot := med[other][m.key])
                else None
            )
            for m in metrics
        }
    return {"raw": raw, "median": med, "ratios": ratios}


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"


def print_report(
    summary: dict[str, Any], results: list[CycleResult], tools: list[str], metrics: list[Metric]
) -> None:
    med, ratios = summary["median"], summary["ratios"]
    n_ok = {t: sum(1 for c in results if c.tool == t and c.failed_step is None) for t in tools}
    n_all = {t: sum(1 for c in results if c.tool == t) for t in tools}
    cols = [*tools, *ratios]
    print(
        "\nMedians (rounds completed: "
        + ", ".join(f"{t} {n_ok[t]}/{n_all[t]}" for t in tools)
        + ")"
    )
    print(
        "Ratios are shadowvault / other: on MB/s rows > 1 means shadowvault is faster; "
        "on s, CPU, RSS and MB rows < 1 means it is better.\n"
    )
    print(f"{'metric':<26}" + "".join(f"{c:>20}" for c in cols))
    for m in metrics:
        row = [_fmt(med[t][m.key]) for t in tools]
        row += ["-" if (r := ratios[k][m.key]) is None else f"{r:.3f}" for k in ratios]
        print(f"{m.label:<26}" + "".join(f"{v:>20}" for v in row))

    loads = [r.load for c in results for r in c.steps.values()]
    if loads:
        print(f"\n1-min load average at step starts: {min(loads):.2f}-{max(loads):.2f}")
    print("\nRaw values in run order (successful steps only):")
    for t in tools:
        for m in metrics:
            if summary["raw"][t][m.key]:
                print(f"  {t:<12} {m.key:<16} {summary['raw'][t][m.key]}")

    for c in results:
        if c.restore_verified is not None:
            verdict = "identical to day2" if c.restore_verified else "DIFFERS from day2"
            print(f"\nround {c.round} {c.tool}: restore {verdict}")
            if not c.restore_verified:
                print("  " + (c.restore_diff or "").replace("\n", "\n  "))
        if c.failed_step is not None:
            err = c.steps[c.failed_step].error or ""
            print(f"\nround {c.round} {c.tool}: FAILED at {c.failed_step}: {err[-600:]}")


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma list (default: all three)")
    ap.add_argument("--scale", type=float, default=1.0, help="corpus scale (gen.py --scale)")
    ap.add_argument("--no-verify", action="store_true", help="skip the round-1 restore diff")
    ap.add_argument("--keep", action="store_true", help="keep each cycle's work dir")
    ap.add_argument("--step-timeout", type=float, default=3600, help="seconds per step")
    ap.add_argument(
        "--warm",
        action="store_true",
        help="do not drop the page cache before restore and check (default: cold, if root)",
    )
    ap.add_argument(
        "--shadowvault",
        default=str(REPO_ROOT / ".venv" / "bin" / "shadowvault"),
        help="the shadowvault executable",
    )
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=EXE",
        help="another shadowvault build to run in each round as tool NAME (A/B runs),\n"
        "e.g. --also base=/tmp/sv-base; its ratios to the others are in the JSON",
    )
    args = ap.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if bad := [t for t in tools if t not in TOOLS]:
        ap.error(f"unknown tools {bad}; choose from {', '.join(TOOLS)}")
    extra: dict[str, Tool] = {}
    for spec in args.also:
        name, sep, exe = spec.partition("=")
        if not sep or not name or name in TOOLS or name in extra:
            ap.error(f"--also wants NAME=EXE with a new NAME, got {spec!r}")
        extra[name] = dataclasses.replace(make_tools(exe)["shadowvault"], name=name)
        tools.append(name)
    if not Path("/usr/bin/time").exists() or shutil.which("rsync") is None:
        ap.error("needs /usr/bin/time and rsync: run bench/setup.sh")

    byte_compile()  # time the node as installed, not a source tree compiled per command
    scratch = scratch_dir()
    corpus = ensure_corpus(args.scale)
    (n1, day1_bytes), (n2, day2_bytes) = tree_bytes(corpus / "day1"), tree_bytes(corpus / "day2")
    free = shutil.disk_usage(scratch).free
    if free < 4 * day2_bytes:  # src + restore + repo + slack
        sys.exit(f"only {free / 1e9:.1f} GB free in {scratch}; need ~{4 * day2_bytes / 1e9:.1f}")
    all_tools = {**make_tools(args.shadowvault), **extra}
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "corpus": str(corpus),
        "scale": args.scale,
        "day1": {"files": n1, "bytes": day1_bytes},
        "day2": {"files": n2, "bytes": day2_bytes},
        "rounds": args.rounds,
        "tools": tools,
        "cold_restore_and_check": not args.warm and drop_caches(),
        "versions": {t: tool_version(all_tools[t]) for t in tools},
    }
    print(json.dumps(meta, indent=1), flush=True)

    results: list[CycleResult] = []
    for rnd in range(1, args.rounds + 1):
        for t in tools:
            work = scratch / "cycle" / t
            c = run_cycle(
                all_tools[t],
                corpus,
                work,
                rnd=rnd,
                verify=rnd == 1 and not args.no_verify,
                timeout=args.step_timeout,
                cold=not args.warm,
            )
            results.append(c)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            walls = " ".join(f"{s}={r.wall_s}" for s, r in c.steps.items())
            status = f"FAILED at {c.failed_step}" if c.failed_step else "ok"
            print(f"round {rnd} {t:<12} {status:<22} {walls}", flush=True)

    metrics = make_metrics(day1_bytes, day2_bytes)
    summary = summarize(results, tools, metrics)
    print_report(summary, results, tools, metrics)
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = scratch / "results" / f"cycle-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    doc = {"meta": meta, **summary, "cycles": [asdict(c) for c in results]}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nresults: {out}")
    ok = all(c.failed_step is None and c.restore_verified is not False for c in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
