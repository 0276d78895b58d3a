#!/usr/bin/env bash
# Build a Debian bookworm + python3 base image without any registry (debootstrap ->
# docker import), for machines where `docker pull python:3.11-slim` is impossible.
# The Dockerfile takes it as --build-arg BASE_IMAGE=<tag>.
#
#   docker/make-base.sh [TAG]        (root; needs debootstrap and a reachable engine)
#
# The rootfs tarball is cached under $SV_DOCKER_CACHE (default /var/tmp/shadowvault-docker)
# so a second run on the same machine costs only the import (~5 s) and nothing when the
# image already exists.
set -euo pipefail
TAG=${1:-shadowvault/base:bookworm}
CACHE=${SV_DOCKER_CACHE:-/var/tmp/shadowvault-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "make-base: $TAG exists"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "make-base: must run as root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "make-base: install debootstrap" >&2; exit 1; }
mkdir -p "$CACHE"
tarball="$CACHE/bookworm-python.tar"
if [ ! -s "$tarball" ]; then
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    # python3-venv: the builder stage makes a venv. libgmp10 is needed at run time by
    # fastecdsa (libp2p); ca-certificates for https from the builder.
    debootstrap --variant=minbase --include=python3,python3-venv,libgmp10,ca-certificates \
        bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
fi
docker import --change 'CMD ["/bin/bash"]' "$tarball" "$TAG" >/dev/null
echo "make-base: imported $TAG"
