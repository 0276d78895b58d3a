#!/bin/sh
# Container entry point: initialise the node home on the first start, then run the node.
#
# The passphrase comes only from a Docker secret file (SHADOWVAULT_PASSWORD_FILE, e.g.
# /run/secrets/passphrase) or SHADOWVAULT_PASSWORD; there is no built-in default, so two
# containers never share a passphrase by accident. It is never put on a command line.
#
# Commands (the arguments):
#   node run        (the default) binds the API on $SHADOWVAULT_API__LISTEN (the config
#                   key api.listen; 0.0.0.0:8734 in the image: reachable from other
#                   containers, still behind the bearer token in <home>/api.token).
#   recover-kit [FILE]
#                   disaster recovery: instead of initialising a new node, rebuild this
#                   node in the empty home from its recovery kit (`shadowvault key
#                   export`), read from FILE or, without one, from standard input (so the
#                   kit never has to sit in a volume: `docker compose run --rm -T node1
#                   recover-kit < node1.kit`). Runs `shadowvault recover --kit --home
#                   --peer ...` with the cluster's other nodes as --peer, then exits; the
#                   next `node run` restores from them. Refuses a home that holds a node.
#   anything else   runs that shadowvault command, e.g. `docker run ... IMAGE snapshots --json`.
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
#                          and, unless SHADOWVAULT_PEERS is set, with each of them in
#                          SHADOWVAULT_PEERS as a peer that stores for this node and that
#                          this node stores for (the config key `peers`): a mesh where every
#                          node keeps copies of the others' snapshots.
set -eu

home=${SHADOWVAULT_HOME:-/data}
cluster_dir=${SV_CLUSTER_DIR:-/cluster}
bootstrap_wait=${SV_BOOTSTRAP_WAIT:-60}

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

# The peer id another node published in the shared volume (waits for it); empty if none.
peer_id_of() {
    n=0
    while [ ! -s "$cluster_dir/$1.peer" ] && [ "$n" -lt "$bootstrap_wait" ]; do
        sleep 1
        n=$((n + 1))
    done
    if [ -s "$cluster_dir/$1.peer" ]; then
        cat "$cluster_dir/$1.peer"
    else
        echo "shadowvault: no peer id from $1 after ${bootstrap_wait}s; going on without it" >&2
    fi
}

if [ "${1:-}" = recover-kit ]; then
    if [ -e "$home/keys/master.key" ]; then
        echo "shadowvault: $home already holds a node; recover-kit needs an empty home" \
             "(a new volume)" >&2
        exit 1
    fi
    # The kit is sealed under the passphrase; still, it stays private to this process and
    # is removed on exit.
    kit=$(mktemp)
    trap 'rm -f "$kit"' EXIT
    if [ $# -ge 2 ]; then
        cat "$2" >"$kit"
    else
        cat >"$kit"
    fi
    if [ ! -s "$kit" ]; then
        echo "shadowvault: recover-kit: empty kit (give a file, or the kit on standard input)" >&2
        exit 2
    fi
    set -- recover --kit "$kit" --home "$home"
    for peer in ${SV_BOOTSTRAP_HOSTS:-}; do
        host=${peer%:*}
        id=$(peer_id_of "$host")
        [ -n "$id" ] && set -- "$@" --peer "/dns4/$host/tcp/${peer##*:}/p2p/$id"
    done
    echo "shadowvault: recovering $home from the kit ($*)"
    status=0
    shadowvault "$@" || status=$?
    exit "$status"
fi

if [ ! -e "$home/keys/master.key" ]; then
    echo "shadowvault: initialising a new node home in $home"
    shadowvault init --home "$home"
fi

if [ -n "${SV_BOOTSTRAP_HOSTS:-}" ] && [ -z "${SHADOWVAULT_P2P__BOOTSTRAP:-}" ]; then
    me=$(hostname)
    python3 -c 'import sys
from node.repo import identity_of, resolve_home
from protocol import peer_id_from_public, peer_id_text
key = identity_of(resolve_home(sys.argv[1])).verify_key
print(peer_id_text(peer_id_from_public(bytes(key))))' "$home" \
        >"$cluster_dir/$me.peer.tmp"
    mv "$cluster_dir/$me.peer.tmp" "$cluster_dir/$me.peer"
    bootstrap=""
    peers=""
    for peer in $SV_BOOTSTRAP_HOSTS; do
        host=${peer%:*}
        port=${peer##*:}
        id=$(peer_id_of "$host")
        [ -n "$id" ] || continue
        bootstrap="${bootstrap:+$bootstrap,}/dns4/$host/tcp/$port/p2p/$id"
        entry=$(printf '{"id": "%s", "name": "%s", "addrs": ["/dns4/%s/tcp/%s"], "store_for": true, "store_at": true}' \
            "$id" "$host" "$host" "$port")
        peers="${peers:+$peers, }$entry"
    done
    if [ -n "$bootstrap" ]; then
        SHADOWVAULT_P2P__BOOTSTRAP=$bootstrap
        export SHADOWVAULT_P2P__BOOTSTRAP
        echo "shadowvault: bootstrap peers $bootstrap"
        if [ -z "${SHADOWVAULT_PEERS:-}" ]; then
            SHADOWVAULT_PEERS="[$peers]"
            export SHADOWVAULT_PEERS
        fi
    fi
fi
unset SV_METRICS_TOKEN_FILE SV_BOOTSTRAP_HOSTS SV_CLUSTER_DIR SV_BOOTSTRAP_WAIT

if [ "${1:-}" = node ] && [ "${2:-}" = run ] && [ $# -eq 2 ]; then
    exec shadowvault node run --home "$home" --api "${SHADOWVAULT_API__LISTEN:-0.0.0.0:8734}"
fi
exec shadowvault "$@"
