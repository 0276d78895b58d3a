#!/bin/sh
# Container entry point: initialise the node home on the first start, then run the node.
#
# The passphrase comes only from a Docker secret file (SHADOWVAULT_PASSWORD_FILE, e.g.
# /run/secrets/passphrase) or SHADOWVAULT_PASSWORD; there is no built-in default, so two
# containers never share a passphrase by accident. It is never put on a command line.
#
# `node run` (the default command) binds the API on $SHADOWVAULT_API__LISTEN (the
# config key api.listen; 0.0.0.0:8734 in the image: reachable from other containers,
# still behind the bearer token in <home>/api.token). Any other arguments run that
# shadowvault command instead, e.g. `docker run ... IMAGE snapshots --json`.
#
# Variables of this script (named SV_*, not SHADOWVAULT_*, so the config loader, which
# rejects unknown SHADOWVAULT_ keys, never sees them):
#   SV_METRICS_TOKEN_FILE  a secret file whose content becomes SHADOWVAULT_METRICS__TOKEN
#                          (the static scrape token, which the config takes only from
#                          the environment)
#   SV_BOOTSTRAP_HOSTS     "host:port ..." of the other nodes (compose service names).
#                          Peer ids exist only once each node has initialised, so every
#                          node writes its own to $SV_CLUSTER_DIR/<hostname>.peer (a volume
#                          shared by the nodes, public ids only), waits up to
#                          $SV_BOOTSTRAP_WAIT seconds for the others', and starts with
#                          SHADOWVAULT_P2P__BOOTSTRAP=/dns4/<host>/tcp/<port>/p2p/<id>,...
set -eu

home=${SHADOWVAULT_HOME:-/data}

if [ -z "${SHADOWVAULT_PASSWORD:-}" ] && [ -z "${SHADOWVAULT_PASSWORD_FILE:-}" ]; then
    echo "shadowvault: no passphrase. Mount a secret and set SHADOWVAULT_PASSWORD_FILE" \
         "(e.g. /run/secrets/passphrase); see docker/README.md" >&2
    exit 1
fi
if [ -n "${SHADOWVAULT_PASSWORD_FILE:-}" ] && [ ! -r "$SHADOWVAULT_PASSWORD_FILE" ]; then
    echo "shadowvault: cannot read the passphrase file $SHADOWVAULT_PASSWORD_FILE" \
         "(missing, or not readable by uid $(id -u))" >&2
    exit 1
fi
if [ -n "${SV_METRICS_TOKEN_FILE:-}" ]; then
    SHADOWVAULT_METRICS__TOKEN=$(cat "$SV_METRICS_TOKEN_FILE")
    export SHADOWVAULT_METRICS__TOKEN
fi

if [ ! -e "$home/keys/master.key" ]; then
    echo "shadowvault: initialising a new node home in $home"
    shadowvault init --home "$home"
fi

if [ -n "${SV_BOOTSTRAP_HOSTS:-}" ] && [ -z "${SHADOWVAULT_P2P__BOOTSTRAP:-}" ]; then
    dir=${SV_CLUSTER_DIR:-/cluster}
    me=$(hostname)
    python3 -c 'import sys
from node.repo import identity_of, resolve_home
from protocol import peer_id_from_public, peer_id_text
key = identity_of(resolve_home(sys.argv[1])).verify_key
print(peer_id_text(peer_id_from_public(bytes(key))))' "$home" \
        >"$dir/$me.peer.tmp"
    mv "$dir/$me.peer.tmp" "$dir/$me.peer"
    wait=${SV_BOOTSTRAP_WAIT:-60}
    bootstrap=""
    for peer in $SV_BOOTSTRAP_HOSTS; do
        host=${peer%:*}
        port=${peer##*:}
        n=0
        while [ ! -s "$dir/$host.peer" ] && [ "$n" -lt "$wait" ]; do
            sleep 1
            n=$((n + 1))
        done
        if [ -s "$dir/$host.peer" ]; then
            bootstrap="${bootstrap:+$bootstrap,}/dns4/$host/tcp/$port/p2p/$(cat "$dir/$host.peer")"
        else
            echo "shadowvault: no peer id from $host after ${wait}s; starting without it" >&2
        fi
    done
    if [ -n "$bootstrap" ]; then
        SHADOWVAULT_P2P__BOOTSTRAP=$bootstrap
        export SHADOWVAULT_P2P__BOOTSTRAP
        echo "shadowvault: bootstrap peers $bootstrap"
    fi
fi
unset SV_METRICS_TOKEN_FILE SV_BOOTSTRAP_HOSTS SV_CLUSTER_DIR SV_BOOTSTRAP_WAIT

if [ "${1:-}" = node ] && [ "${2:-}" = run ] && [ $# -eq 2 ]; then
    exec shadowvault node run --home "$home" --api "${SHADOWVAULT_API__LISTEN:-0.0.0.0:8734}"
fi
exec shadowvault "$@"
