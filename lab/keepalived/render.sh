#!/usr/bin/env bash
# Renders the lab's keepalived configs into a directory: lb.conf (lb1 and lb2: keepalived -i
# <node>) and er1.conf, with these knobs (environment, defaults = the comparison's settings):
#   KA_ADVERT_INT    VRRP advertisement interval, s (1; VRRPv3 allows 0.01 steps below 1 s)
#   KA_VRRP_VERSION  2 or 3 (2; 3 when KA_ADVERT_INT is below 1 s)
#   KA_CHECK_INTERVAL, KA_CHECK_TIMEOUT, KA_CHECK_RETRY   LB path checks (1, 0.8, 2: down after 3)
#   KA_LEG_INTERVAL, KA_LEG_TIMEOUT, KA_LEG_RETRY         er1 leg checks (3, 1.5, 1: down after 2)
#   KA_STATE_DIR     er1's notify state (default <dir>/egress-state)
#   lab/keepalived/render.sh <dir>
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: lab/keepalived/render.sh <dir>" >&2; exit 2; }
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
adv=${KA_ADVERT_INT:-1}
ver=${KA_VRRP_VERSION:-}
if [ -z "$ver" ]; then
  if awk -v a="$adv" 'BEGIN { exit !(a < 1) }'; then ver=3; else ver=2; fi
fi
state=${KA_STATE_DIR:-$out/egress-state}
for v in "$adv" "${KA_CHECK_INTERVAL:-1}" "${KA_CHECK_TIMEOUT:-0.8}" "${KA_LEG_INTERVAL:-3}" "${KA_LEG_TIMEOUT:-1.5}"; do
  [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "render.sh: bad timing value \"$v\"" >&2; exit 2; }
done
for v in "${KA_CHECK_RETRY:-2}" "${KA_LEG_RETRY:-1}" "$ver"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "render.sh: bad integer \"$v\"" >&2; exit 2; }
done
for p in "$HERE" "$state"; do
  [[ $p =~ ^[A-Za-z0-9_./+-]+$ ]] || { echo "render.sh: path \"$p\" needs quoting" >&2; exit 2; }
done
sub() {
  sed -e "s#@ADVERT_INT@#$adv#g" -e "s#@VRRP_VERSION@#$ver#g" \
    -e "s#@CHECK_INTERVAL@#${KA_CHECK_INTERVAL:-1}#g" -e "s#@CHECK_TIMEOUT@#${KA_CHECK_TIMEOUT:-0.8}#g" \
    -e "s#@CHECK_RETRY@#${KA_CHECK_RETRY:-2}#g" -e "s#@LEG_INTERVAL@#${KA_LEG_INTERVAL:-3}#g" \
    -e "s#@LEG_TIMEOUT@#${KA_LEG_TIMEOUT:-1.5}#g" -e "s#@LEG_RETRY@#${KA_LEG_RETRY:-1}#g" \
    -e "s#@KA_DIR@#$HERE#g" -e "s#@STATE_DIR@#$state#g" "$1"
}
sub "$HERE/lb.conf.in" > "$out/lb.conf"
sub "$HERE/er1.conf.in" > "$out/er1.conf"
if grep -n '^[^#]*@[A-Z_]*@' "$out/lb.conf" "$out/er1.conf"; then echo "render.sh: placeholder left" >&2; exit 1; fi
echo "$out/lb.conf $out/er1.conf"
