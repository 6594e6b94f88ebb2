#!/usr/bin/env bash
# Renders lab/conntrackd/conntrackd.conf.in for one firewall to stdout.
#
#   render.sh --local 10.8.0.11 --peer 10.8.0.12 --iface eth2 --run DIR --log FILE [--ignore "ADDR[/LEN] ..."]
#
# --run: a directory of this daemon's own (its UNIX socket and lock file); --ignore: the firewall's own
# addresses (the sync link's subnet is always ignored). Bad input: a message, status 2, nothing printed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "conntrackd/render.sh: $*" >&2; exit 2; }
ip4='^([0-9]{1,3}\.){3}[0-9]{1,3}$'
net4='^([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?$'
path='^/[A-Za-z0-9_./-]+$'
LOCAL='' PEER='' IFACE='' RUN='' LOG='' IGNORE=''
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "$1 needs a value"
  case $1 in
    --local) LOCAL=$2 ;; --peer) PEER=$2 ;; --iface) IFACE=$2 ;; --run) RUN=$2 ;; --log) LOG=$2 ;; --ignore) IGNORE=$2 ;;
    *) die "unknown option \"$1\"" ;;
  esac
  shift 2
done
[[ $LOCAL =~ $ip4 ]] || die "--local must be an IPv4 address, not \"$LOCAL\""
[[ $PEER =~ $ip4 ]] || die "--peer must be an IPv4 address, not \"$PEER\""
[ "$LOCAL" != "$PEER" ] || die "--local and --peer are the same address"
[[ $IFACE =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "--iface must be an interface name, not \"$IFACE\""
[[ $RUN =~ $path ]] || die "--run must be an absolute path (letters, digits, _ . / -), not \"$RUN\""
[[ $LOG =~ $path ]] || die "--log must be an absolute path (letters, digits, _ . / -), not \"$LOG\""
lines="			IPv4_address ${LOCAL%.*}.0/24  # the sync link"
for a in $IGNORE; do
  [[ $a =~ $net4 ]] || die "--ignore: \"$a\" is not an IPv4 address or prefix"
  lines+=$'\n'"			IPv4_address $a"
done
while IFS= read -r l; do
  case $l in
    @IGNORE@) printf '%s\n' "$lines" ;;
    *) l=${l//@LOCAL@/$LOCAL}; l=${l//@PEER@/$PEER}; l=${l//@IFACE@/$IFACE}; l=${l//@RUN@/$RUN}; l=${l//@LOG@/$LOG}; printf '%s\n' "$l" ;;
  esac
done < "$HERE/conntrackd.conf.in"
