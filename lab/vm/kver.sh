# shellcheck shell=bash
# Sourced by the lab VM scripts. lab_kver: the newest installed Debian kernel that has a
# vmlinuz in /boot and IPVS modules (override with KVER=...).
lab_kver() {
  if [ -n "${KVER:-}" ]; then
    [ -f "/boot/vmlinuz-$KVER" ] || { echo "lab: KVER=$KVER but /boot/vmlinuz-$KVER does not exist" >&2; return 1; }
    echo "$KVER"; return 0
  fi
  local k found=
  for k in $(ls /lib/modules 2>/dev/null | sort -V); do
    [ -f "/boot/vmlinuz-$k" ] && [ -d "/lib/modules/$k/kernel/net/netfilter/ipvs" ] && found=$k
  done
  [ -n "$found" ] || { echo "lab: no kernel with IPVS modules in /lib/modules + /boot (apt-get install linux-image-amd64)" >&2; return 1; }
  echo "$found"
}
