#!/usr/bin/env bash
# Turns on etcd authentication with a user per sandwich cluster, limited to its key prefix.
# Run once against a TLS-enabled etcd, with the root client certificate (CN=root):
#
#   setup-auth.sh ENDPOINTS CERT_DIR CLUSTER PASSWORD_FILE ROOT_PASSWORD_FILE
#
# Creates (idempotently) role and user "sandwich-CLUSTER" with readwrite on /sandwich/CLUSTER/,
# the root user, and enables auth. Passwords are read from files and passed on stdin, never argv.
set -euo pipefail
[ $# -eq 5 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
endpoints=$1 certs=$2 cluster=$3 pwfile=$4 rootpw=$5
[[ $cluster =~ ^[a-z][a-z0-9_-]{0,31}$ ]] || { echo "setup-auth: bad cluster name '$cluster'" >&2; exit 2; }
user="sandwich-$cluster" prefix="/sandwich/$cluster/"
ctl() { etcdctl --endpoints="$endpoints" --cacert="$certs/ca.crt" --cert="$certs/root.crt" --key="$certs/root.key" "$@"; }

if ! ctl user get root >/dev/null 2>&1; then
  ctl user add root --interactive=false <"$rootpw" >/dev/null
fi
ctl role get "$user" >/dev/null 2>&1 || ctl role add "$user" >/dev/null
ctl role grant-permission "$user" --prefix=true readwrite "$prefix" >/dev/null
ctl user get "$user" >/dev/null 2>&1 || ctl user add "$user" --interactive=false <"$pwfile" >/dev/null
ctl user grant-role "$user" "$user" >/dev/null
# etcdctl 3.4 has no `auth status`: enable answers "Authentication Enabled" or that it already is.
out=$(ctl auth enable 2>&1) || true
grep -qiE 'authentication enabled|already enabled' <<<"$out" || { echo "setup-auth: could not enable auth: $out" >&2; exit 1; }
echo "user $user may read and write $prefix only; auth enabled"
