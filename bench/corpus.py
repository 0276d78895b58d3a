#!/usr/bin/env python3
"""Generate (or reuse) the benchmark corpus, and locate the benchmark scratch directory.

The corpus is the shared, reproducible one (``../shared/bench/gen.py``): ``day1/`` (~1 GiB:
random blobs, logs and prose, 20,000 small files) and ``day2/`` (day1 with ~5 % of files
changed). Generating it takes ~35 s, so it is kept in the scratch directory and reused;
a ``.complete`` marker (written last, naming the scale and gen.py's hash) says it is whole.

Scratch data never goes inside the repository: the scratch directory is ``$SV_BENCH_DIR``,
default ``/tmp/sv-bench``, and a path inside the repository is refused.

    python3 bench/corpus.py                 # full size -> /tmp/sv-bench/corpus
    python3 bench/corpus.py --scale 0.1     # small one -> /tmp/sv-bench/corpus-scale0.1
    python3 bench/corpus.py --force         # regenerate

The last line printed is the corpus directory (holding day1/ and day2/).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _find_gen_py() -> Path:
    """``shared/bench/gen.py`` beside the checkout, or one level up (a worktree in wt/)."""
    for base in (REPO_ROOT.parent, REPO_ROOT.parent.parent):
        cand = base / "shared" / "bench" / "gen.py"
        if cand.exists():
            return cand
    return REPO_ROOT.parent / "shared" / "bench" / "gen.py"


GEN_PY = _find_gen_py()
DEFAULT_SCRATCH = Path("/tmp/sv-bench")
MARKER = ".complete"


def scratch_dir() -> Path:
    """The benchmark scratch directory (``$SV_BENCH_DIR`` or /tmp/sv-bench), created.

    Raises:
        SystemExit: the directory would be inside the repository.
    """
    path = Path(os.environ.get("SV_BENCH_DIR") or DEFAULT_SCRATCH).resolve()
    if path == REPO_ROOT or REPO_ROOT in path.parents:
        raise SystemExit(f"SV_BENCH_DIR={path} is inside the repository; use a path outside it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def corpus_dir(scale: float) -> Path:
    """Where the corpus of this scale lives (not necessarily generated yet)."""
    name = "corpus" if scale == 1.0 else f"corpus-scale{scale:g}"
    return scratch_dir() / name


def _gen_digest() -> str:
    return hashlib.sha256(GEN_PY.read_bytes()).hexdigest()


def ensure_corpus(scale: float = 1.0, *, force: bool = False) -> Path:
    """Return the corpus directory of this scale, generating it unless a whole one exists.

    A corpus is reused only if its marker names the same scale and the same gen.py (so an
    edited generator or an interrupted run leads to a fresh corpus).
    """
    out = corpus_dir(scale)
    marker = out / MARKER
    want = {"scale": scale, "gen_sha256": _gen_digest()}
    if not force and marker.exists():
        try:
            if json.loads(marker.read_text()) == want:
                return out
        except ValueError:
            pass
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    print(f"generating corpus (scale {scale:g}) into {out} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, str(GEN_PY), "--out", str(out), "--scale", str(scale)],
        check=True,
        stdout=sys.stderr,
    )
    marker.write_text(json.dumps(want))
    return out


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) of the regular files under ``root``."""
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


def byte_compile() -> None:
    """Compile node/ and protocol/ to ``__pycache__`` (gitignored), as ``pip install`` does.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in this project's shells) a worktree's
    modules were compiled from source on every command: about 0.1 CPU-s per run that an
    installed node (the Docker image, any wheel install) never pays.
    """
    import compileall

    for pkg in ("node", "protocol"):
        compileall.compile_dir(str(REPO_ROOT / pkg), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="corpus scale (gen.py --scale)")
    ap.add_argument("--force", action="store_true", help="regenerate even if present")
    args = ap.parse_args()
    print(ensure_corpus(args.scale, force=args.force))


if __name__ == "__main__":
    main()
