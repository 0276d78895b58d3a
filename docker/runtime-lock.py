"""Print the run-time subset of requirements.lock (stdlib only; runs in the image builder).

requirements.lock pins the dev tools too (mypy, ruff, pytest, ...), which an image must
not carry. The subset is the closure of ``[project].dependencies`` in pyproject.toml over
pip-compile's ``# via`` annotations, plus setuptools (the build backend, to install the
project itself without network). Every kept block is copied verbatim, hashes included, so
``pip install --require-hashes`` still checks every archive.

    python3 docker/runtime-lock.py requirements.lock pyproject.toml [--no-hashes] > runtime.lock

``--no-hashes`` is for installing from a wheelhouse built on the host (docker/wheelhouse.sh):
a wheel compiled there from a pinned sdist cannot match the sdist's hash, and the host
already checked every hash when it fetched the archives.
"""

from __future__ import annotations

import re
import sys
import tomllib

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def blocks(lock_text: str) -> list[tuple[str, list[str], set[str]]]:
    """(name, lines, via-names) for every pinned package in the lock."""
    out: list[tuple[str, list[str], set[str]]] = []
    for line in lock_text.splitlines():
        match = _NAME.match(line)
        if match:
            out.append((norm(match.group(1)), [line], set()))
            continue
        if not out or not line.startswith(" "):
            continue
        _, lines, via = out[-1]
        lines.append(line)
        comment = line.strip().removeprefix("#").strip()
        if line.strip().startswith("#") and comment and comment != "via":
            comment = comment.removeprefix("via ").strip()
            via.add(norm(comment.split()[0]))
    return out


def main() -> int:
    lock_path, pyproject_path = sys.argv[1], sys.argv[2]
    hashes = "--no-hashes" not in sys.argv[3:]
    with open(pyproject_path, "rb") as f:
        project = tomllib.load(f)["project"]
    with open(lock_path, encoding="utf-8") as f:
        pinned = blocks(f.read())
    keep = {norm(m.group(1)) for d in project["dependencies"] if (m := _REQ_NAME.match(d))}
    keep.add("setuptools")
    changed = True
    while changed:  # fixpoint: whatever a kept package pulls in is kept
        changed = False
        for name, _, via in pinned:
            if name not in keep and via & keep:
                keep.add(name)
                changed = True
    missing = sorted(keep - {name for name, _, _ in pinned})
    if missing:
        print(f"runtime-lock: not pinned in the lock: {', '.join(missing)}", file=sys.stderr)
        return 1
    for name, lines, _ in pinned:
        if name in keep:
            print("\n".join(lines) if hashes else lines[0].removesuffix("\\").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
