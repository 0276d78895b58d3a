#!/usr/bin/env bash
# Generate the compose cluster's secrets into docker/secrets/ (git-ignored): one random
# passphrase per node, the Prometheus scrape token and Grafana's admin password. Existing files are never replaced:
# a node's passphrase is the only way to read its backups.
#
# The directory is 0700 (only you on the host). The files are 0644 because Compose mounts
# file secrets as bind mounts with the host file's mode, and the node runs as uid 10001
# inside its container.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"
umask 022
for name in node1.passphrase node2.passphrase node3.passphrase metrics_token grafana_admin_password; do
    file="$dir/$name"
    [ -s "$file" ] && continue
    python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$file.tmp"
    chmod 0644 "$file.tmp"
    mv "$file.tmp" "$file"
    echo "gen-secrets: created $file"
done
