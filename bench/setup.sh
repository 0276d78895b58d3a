#!/usr/bin/env bash
# Install what the benchmarks compare against and run under (idempotent; used by `make bench`):
#   restic 0.14 and borg 1.2.4 (Debian 12 packages, the versions in perf-baseline.md),
#   GNU time (/usr/bin/time -v: wall, CPU, peak RSS per step) and rsync (corpus -> src).
# Installs only what is missing; needs root (or sudo) only then. Prints the versions found.
set -euo pipefail

missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
[ -x /usr/bin/time ] || missing+=(time)
command -v rsync >/dev/null || missing+=(rsync)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}"
fi

restic_v=$(restic version | awk '{print $2}')
borg_v=$(borg --version | awk '{print $2}')
echo "restic $restic_v, borg $borg_v, $(rsync --version | head -n 1)"
case "$restic_v" in 0.14.*) ;; *) echo "warning: expected restic 0.14 (the baseline's version)" >&2 ;; esac
[ "$borg_v" = 1.2.4 ] || echo "warning: expected borg 1.2.4 (the baseline's version)" >&2
