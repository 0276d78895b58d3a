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
set -euo pipefail
CACHE=${SV_DOCKER_CACHE:-/var/tmp/shadowvault-docker}
NS=${SV_DOCKER_NETNS:-sv-docker}
SOCK="$CACHE/docker.sock"
PIDFILE="$CACHE/dockerd.pid"

running() {
    [ -s "$PIDFILE" ] || return 1
    local pid; pid=$(cat "$PIDFILE")
    [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null
}

case "${1:-}" in
host)
    echo "unix://$SOCK"
    ;;
start)
    [ "$(id -u)" = 0 ] || { echo "engine: must run as root" >&2; exit 1; }
    command -v dockerd >/dev/null || { echo "engine: dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
    mkdir -p "$CACHE/data" "$CACHE/exec"
    if ! running; then
        ip netns list | grep -qw "$NS" || ip netns add "$NS"
        ip netns exec "$NS" ip link set lo up
        # nsenter --net, not `ip netns exec`: the latter remounts /sys, hiding the cgroup
        # mounts dockerd needs. setsid: the engine outlives the shell that started it; stopped by `stop` (pid file).
        setsid nsenter --net="/run/netns/$NS" dockerd \
            --data-root "$CACHE/data" --exec-root "$CACHE/exec" --pidfile "$PIDFILE" \
            -H "unix://$SOCK" --containerd-namespace shadowvault \
            --containerd-plugins-namespace shadowvault-plugins \
            >"$CACHE/dockerd.log" 2>&1 </dev/null &
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
