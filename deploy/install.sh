#!/usr/bin/env bash
# Installs sandwich on a Debian host (run as root from a built checkout: npm ci && npm run build && scripts/build-packet).
# Idempotent: re-running upgrades the code and keeps config, token and node name.
#
#   deploy/install.sh NODE_NAME [PREFIX]      PREFIX defaults to /opt/sandwich
#
# Log rotation: the event log rotates itself by size (events.maxSizeBytes, events.maxFiles), so no
# logrotate file is installed; journald keeps the daemon's stdout/stderr.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ $# -ge 1 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
node_name=$1 prefix=${2:-/opt/sandwich}
[[ $node_name =~ ^[a-z][a-z0-9_-]{0,31}$ ]] || { echo "install.sh: bad node name '$node_name'" >&2; exit 2; }
[[ $prefix =~ ^/[A-Za-z0-9_./-]+$ ]] || { echo "install.sh: bad prefix '$prefix'" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$src/dist/sandwich/sandwich.mjs" ] || { echo "install.sh: build first (npm ci && npm run build)" >&2; exit 1; }
command -v node >/dev/null || { echo "install.sh: node (>= 20.19) is not installed" >&2; exit 1; }

# Commands the daemon runs (through failover/runner.ts, never a shell).
missing=()
for c in ip ipvsadm conntrack arping ping sysctl nft systemd-notify; do command -v "$c" >/dev/null || missing+=("$c"); done
((${#missing[@]} == 0)) || echo "install.sh: warning: not found: ${missing[*]} (apt-get install iproute2 ipvsadm conntrack iputils-arping iputils-ping procps nftables systemd)" >&2

# Dedicated system user, no login, no home.
getent group sandwich >/dev/null || groupadd --system sandwich
getent passwd sandwich >/dev/null || useradd --system --gid sandwich --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sandwich

# Code: replaced as a whole (an upgrade); production dependencies only.
install -d -m 0755 "$prefix"
for d in bin dist docs deploy; do rm -rf "${prefix:?}/$d"; cp -a "$src/$d" "$prefix/$d"; done
cp -a "$src/package.json" "$src/package-lock.json" "$prefix/"
(cd "$prefix" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
# The packet-socket addon (scripts/build-packet); without it the daemon announces VIPs through arping.
rm -rf "${prefix:?}/failover"
addon=failover/packet/build/Release/packet.node
if [ -f "$src/$addon" ]; then install -D -m 0755 "$src/$addon" "$prefix/$addon"
else echo "install.sh: warning: $addon not built (scripts/build-packet): VIPs will be announced through arping" >&2; fi
chown -R root:root "$prefix"
chmod -R go-w "$prefix"

# Config, secrets and state.
install -d -m 0750 -o root -g sandwich /etc/sandwich
[ -f /etc/sandwich/config.yaml ] || install -m 0640 -o root -g sandwich "$src/deploy/config.example.yaml" /etc/sandwich/config.yaml
if [ ! -f /etc/sandwich/api.token ]; then
  (umask 0037 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >/etc/sandwich/api.token)
  chgrp sandwich /etc/sandwich/api.token
fi
install -d -m 0750 -o sandwich -g sandwich /var/log/sandwich
[ -f /etc/default/sandwich ] || printf '# Node name of this host in /etc/sandwich/config.yaml\nSANDWICH_NODE=%s\n' "$node_name" >/etc/default/sandwich

# Unit (paths follow PREFIX) and the CLI on PATH.
sed "s#/opt/sandwich#$prefix#g" "$src/deploy/sandwich.service" >/etc/systemd/system/sandwich.service
ln -sfn "$prefix/bin/sandwich" /usr/local/bin/sandwich
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable sandwich.service >/dev/null
  echo "installed; edit /etc/sandwich/config.yaml, then: systemctl restart sandwich"
else
  echo "installed; systemd is not running here, so the unit was not enabled"
fi
