#!/bin/sh
# Container entry point: initialise the node home on the first start, then run the node.
#
# The passphrase comes only from a Docker secret file (SHADOWVAULT_PASSWORD_FILE, e.g.
# /run/secrets/shadowvault_passphrase) or SHADOWVAULT_PASSWORD; there is no built-in
# default, so two containers never share a passphrase by accident. It is never put on a
# command line.
#
# `docker run IMAGE node run` (the default) binds the API on $SHADOWVAULT_API
# (0.0.0.0:8734: reachable from other containers, still behind the bearer token in
# <home>/api.token). Any other arguments run that shadowvault command instead, e.g.
# `docker run ... IMAGE snapshots --json`.
set -eu

home=${SHADOWVAULT_HOME:-/data}

if [ -z "${SHADOWVAULT_PASSWORD:-}" ] && [ -z "${SHADOWVAULT_PASSWORD_FILE:-}" ]; then
    echo "shadowvault: no passphrase. Mount a secret and set SHADOWVAULT_PASSWORD_FILE" \
         "(e.g. /run/secrets/shadowvault_passphrase); see docker/README.md" >&2
    exit 1
fi
if [ -n "${SHADOWVAULT_PASSWORD_FILE:-}" ] && [ ! -r "$SHADOWVAULT_PASSWORD_FILE" ]; then
    echo "shadowvault: cannot read the passphrase file $SHADOWVAULT_PASSWORD_FILE" \
         "(missing, or not readable by uid $(id -u))" >&2
    exit 1
fi

if [ ! -e "$home/keys/master.key" ]; then
    echo "shadowvault: initialising a new node home in $home"
    shadowvault init --home "$home"
fi

if [ "${1:-}" = node ] && [ "${2:-}" = run ] && [ $# -eq 2 ]; then
    exec shadowvault node run --home "$home" --api "${SHADOWVAULT_API:-0.0.0.0:8734}"
fi
exec shadowvault "$@"
