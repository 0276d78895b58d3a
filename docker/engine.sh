#!/usr/bin/env bash
# A private Docker engine for tests and `make cluster-up` on machines without one.
#
#   docker/engine.sh start     prints the DOCKER_HOST to use, e.g. unix:///var/tmp/shadowvault-docker/docker.sock
#   docker/engine.sh stop
#   docker/engine.sh host      prints the DOCKER_HOST (whether running or not)
#
# dockerd runs in its own network namespace (`sv-docker`): its iptables/nat rules and
# bridges stay inside it, nothing in the root namespace changes, and containers have no
# route out of the machine (images are built offline, see docker/make-base.sh and the
# wheelhouse in the Dockerfile). The data root persists under $SV_DOCKER_CACHE, so image
# layers stay cached between runs. Needs root and Debian's docker.io.
#
# The engine is shared by everyone on the machine who uses the same cache (several test
# runs at once): `start` registers a user (the process $SV_ENGINE_USER, default the
# caller), `stop` unregisters it and stops the engine only when no registered user is
# still alive, so one run never pulls the engine from under another. Both hold a lock
# ($CACHE/engine.lock), so two starts never launch two daemons.
set -euo pipefail
CACHE=${SV_DOCKER_CACHE:-/var/tmp/shadowvault-docker}
NS=${SV_DOCKER_NETNS:-sv-docker}
SOCK="$CACHE/docker.sock"
PIDFILE="$CACHE/dockerd.pid"
USERS="$CACHE/users"
ME=${SV_ENGINE_USER:-$PPID}

running() {
    [ -s "$PIDFILE" ] || return 1
    local pid; pid=$(cat "$PIDFILE")
    [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null
}

# Registered users whose process is still alive (dead ones are forgotten).
live_users() {
    local f n=0
    for f in "$USERS"/*; do
        [ -e "$f" ] || continue
        if [ -d "/proc/${f##*/}" ]; then n=$((n + 1)); else rm -f "$f"; fi
    done
    echo "$n"
}

lock() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/engine.lock"
    flock 9
}

case "${1:-}" in
host)
    echo "unix://$SOCK"
    ;;
start)
    [ "$(id -u)" = 0 ] || { echo "engine: must run as root" >&2; exit 1; }
    command -v dockerd >/dev/null || { echo "engine: dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
    lock
    mkdir -p "$CACHE/data" "$CACHE/exec" "$USERS"
    touch "$USERS/$ME"
    if ! running; then
        ip netns list | grep -qw "$NS" || ip netns add "$NS"
        ip netns exec "$NS" ip link set lo up
        # nsenter --net, not `ip netns exec`: the latter remounts /sys, hiding the cgroup
        # mounts dockerd needs. setsid: the engine outlives the shell that started it;
        # stopped by `stop` (pid file). 9>&-: it must not inherit (and hold) the lock.
        setsid nsenter --net="/run/netns/$NS" dockerd \
            --data-root "$CACHE/data" --exec-root "$CACHE/exec" --pidfile "$PIDFILE" \
            -H "unix://$SOCK" --containerd-namespace shadowvault \
            --containerd-plugins-namespace shadowvault-plugins \
            >"$CACHE/dockerd.log" 2>&1 </dev/null 9>&- &
        for _ in $(seq 1 100); do
            DOCKER_HOST="unix://$SOCK" docker version >/dev/null 2>&1 && break
            sleep 0.2
        done
    fi
    DOCKER_HOST="unix://$SOCK" docker version >/dev/null 2>&1 \
        || { echo "engine: dockerd did not come up; see $CACHE/dockerd.log" >&2; tail -5 "$CACHE/dockerd.log" >&2; exit 1; }
    echo "unix://$SOCK"
    ;;
stop)
    lock
    rm -f "$USERS/$ME"
    left=$(live_users)
    if [ "$left" -gt 0 ]; then
        echo "engine: still used by $left other run(s); left running"
        exit 0
    fi
    if running; then
        pid=$(cat "$PIDFILE")
        kill "$pid"
        for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    fi
    ip netns list | grep -qw "$NS" && ip netns del "$NS"
    echo "engine: stopped"
    ;;
*)
    echo "usage: $0 start|stop|host" >&2
    exit 2
    ;;
esac
