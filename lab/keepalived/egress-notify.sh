#!/bin/sh
# keepalived notify script on er1 (er1.conf.in): re-points er1's per-firewall tables the way the
# sandwich controller's egress driver does.
#   egress-notify.sh up|down fw1|fw2 <state dir>
# Table 10N routes default via fwN while fwN is up, else via the first other firewall that is up;
# when none is, every table stays on its own firewall (fail-open). Going down also deletes the
# conntrack entries marked N (flows of the dead firewall get re-marked on their next packet).
# Runs in er1's namespace (keepalived's); serialised with flock; logs one line per call to stdout
# (keepalived's log).
set -eu
state=$1 fw=$2 dir=$3
case $state in up | down) ;; *) echo "egress-notify: bad state $state" >&2; exit 2 ;; esac
case $fw in fw1 | fw2) ;; *) echo "egress-notify: bad firewall $fw" >&2; exit 2 ;; esac
mkdir -p "$dir"
exec 9> "$dir/lock"
flock 9
echo "$state" > "$dir/$fw"
addr() { echo "10.2.0.1${1#fw}"; }
is_up() { [ "$(cat "$dir/$1" 2>/dev/null || echo up)" = up ]; }
batch=''
for f in fw1 fw2; do
  via=$f
  if ! is_up "$f"; then
    for o in fw1 fw2; do if [ "$o" != "$f" ] && is_up "$o"; then via=$o; break; fi; done
  fi
  batch="${batch}route replace default via $(addr "$via") dev eth0 table 10${f#fw}
"
done
printf '%s' "$batch" | ip -batch -
if [ "$state" = down ]; then conntrack -D -m "${fw#fw}" > /dev/null 2>&1 || true; fi
echo "egress-notify: $fw $state: $(printf '%s' "$batch" | tr '\n' ';')"
