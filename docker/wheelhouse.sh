#!/usr/bin/env bash
# Fill docker/wheels/ with a wheel for every run-time dependency, built on this host, so
# `docker build` needs no network (the image's builder then installs with --no-index).
# Every archive is fetched with --require-hashes against requirements.lock; sdists
# (fastecdsa) are compiled here, which needs gcc and libgmp-dev on the host.
# The host's CPython must be the same minor version as the image's (3.11).
#
#   docker/wheelhouse.sh [PIP]       (default: .venv/bin/pip)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${1:-.venv/bin/pip}
out=docker/wheels
mkdir -p "$out"
lock=$(mktemp)
trap 'rm -f "$lock"' EXIT
python3 docker/runtime-lock.py requirements.lock pyproject.toml >"$lock"
"$PIP" wheel --quiet --disable-pip-version-check --require-hashes -r "$lock" -w "$out" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
count=$(find "$out" -name '*.whl' | wc -l)
[ "$count" -gt 0 ] || { echo "wheelhouse: no wheels were built" >&2; exit 1; }
echo "wheelhouse: $count wheels in $out"
