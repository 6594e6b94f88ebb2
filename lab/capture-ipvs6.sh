#!/usr/bin/env bash
# IPv6 fwmark services in the lab VM: what ipvsadm and /proc/net/ip_vs print, and whether the -R batch lines
# the IPVS driver writes for them apply. Run: lab/vm/run.sh lab/capture-ipvs6.sh 300; output in $LAB_OUT/ipvs6/.
set -euo pipefail
out=${LAB_OUT:?}/ipvs6
mkdir -p "$out"
modprobe ip_vs; modprobe ip_vs_sh; modprobe ip_vs_mh
capture() {
  ipvsadm -Sn > "$out/ipvsadm-Sn-$1.txt"
  ipvsadm -Ln > "$out/ipvsadm-Ln-$1.txt"
  ipvsadm -Ln --exact > "$out/ipvsadm-Ln-exact-$1.txt"
  cat /proc/net/ip_vs > "$out/proc-ip_vs-$1.txt"
}
restore() {
  printf '%s\n' "$@" > "$out/ipvsadm-R-$name.txt"
  local rc=0
  ipvsadm -R < "$out/ipvsadm-R-$name.txt" > "$out/ipvsadm-R-$name.stdout" 2> "$out/ipvsadm-R-$name.stderr" || rc=$?
  echo "exit $rc" >> "$out/ipvsadm-R-$name.stdout"
}
# The same fwmark as an IPv4 and an IPv6 service (a dual-stack service), and an IPv6-only mh service.
name=dual
restore '-A -f 1 -s sh -b sh-fallback' \
  '-a -f 1 -r 10.1.0.11:0 -g -w 100' \
  '-a -f 1 -r 10.1.0.12:0 -g -w 100' \
  '-A -f 1 -6 -s sh -b sh-fallback' \
  '-a -f 1 -6 -r [2001:db8:1::12]:0 -g -w 100' \
  '-a -f 1 -6 -r [2001:db8:1::11]:0 -g -w 100' \
  '-A -f 3 -6 -s mh -b mh-fallback' \
  '-a -f 3 -6 -r [2001:db8:1::11]:0 -g -w 100' \
  '-a -f 3 -6 -r [2001:db8:1::12]:0 -g -w 50'
capture dual
# Quiesce one IPv6 real server, delete and re-add another (it moves to the head of the kernel list).
name=dual-edit
restore '-e -f 1 -6 -r [2001:db8:1::11]:0 -g -w 0' \
  '-d -f 3 -6 -r [2001:db8:1::11]:0' \
  '-a -f 3 -6 -r [2001:db8:1::11]:0 -g -w 100'
capture dual-edit
# Without -6 the line addresses the IPv4 service of the same mark.
name=dual-no6
restore '-e -f 1 -r [2001:db8:1::12]:0 -g -w 7'
capture dual-no6
ls -l "$out"
