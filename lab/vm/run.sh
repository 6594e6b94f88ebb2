#!/usr/bin/env bash
# Boots the Debian kernel in qemu (TCG) with the host root read-only over 9p, runs a script
# inside and exits with the script's exit status (124: timeout, 99: the VM died first).
#
#   lab/vm/run.sh <script> [timeout_s] [-- script args...]
#
# Inside the VM: the repo is at its host path (read-only), lab/out ($LAB_OUT) is the writable
# shared dir at its host path, the script runs as root from the current directory (if visible,
# else the repo root) with LAB_OUT, LAB_REPO, LAB_IN_VM=1 and every LAB_* variable of the caller.
# The console goes to stdout and to $LAB_OUT/console.log; the guest's dmesg to $LAB_OUT/dmesg.log.
# Env: MEM (MiB, 1536), SMP (2), CPU (qemu -cpu model, max), ROOTCACHE (loose|none), KVER (default: newest with IPVS).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export LAB_OUT=${LAB_OUT:-$REPO/lab/out}

usage() { echo "usage: lab/vm/run.sh <script> [timeout_s] [-- script args...]" >&2; exit 2; }
die() { echo "run.sh: $*" >&2; exit 2; }
[ $# -ge 1 ] || usage
script=$1; shift
timeout_s=900
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ] || die "timeout must be a positive number of seconds, got \"$1\""
  timeout_s=$1; shift
fi
if [ $# -gt 0 ]; then [ "$1" = "--" ] || usage; shift; fi

[ -f "$script" ] || die "no such script: $script"
script=$(realpath "$script")
mkdir -p "$LAB_OUT"
LAB_OUT=$(realpath "$LAB_OUT")
for p in "$REPO" "$LAB_OUT" "$script"; do
  [[ $p =~ ^[A-Za-z0-9_./+-]+$ ]] || die "path \"$p\" has characters the kernel command line cannot carry (use a path without spaces)"
done
# Paths the VM hides behind tmpfs, unless they are inside the repo or lab/out shares.
visible() {
  case $1 in "$REPO"/* | "$REPO" | "$LAB_OUT"/* | "$LAB_OUT") return 0 ;; esac
  case $1 in /tmp/* | /run/* | /var/tmp/* | /root/* | /proc/* | /sys/* | /dev/*) return 1 ;; esac
  return 0
}
visible "$script" || die "$script is hidden inside the VM (/tmp, /run, /var/tmp and /root are tmpfs there); put it in the repo or in $LAB_OUT"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
# shellcheck source=lab/vm/kver.sh
. "$HERE/kver.sh"
KVER=$(lab_kver) || exit 2

exec 9>"$LAB_OUT/.vm-lock"
flock -n 9 || die "another lab VM is running with $LAB_OUT (set LAB_OUT to use another directory)"

t_start=$(date +%s.%N)
initrd=$("$HERE/build-initrd.sh")
t_initrd=$(date +%s.%N)
# The controller for the lab scripts (lab/run-lib.sh stage_app): one bundled file with its V8 code
# cache (lab/vm/bundle.js); without esbuild, bin/, dist/ and the run-time dependencies in one tar
# (one 9p stream instead of ~1700 small files).
# A dist/ older than the sources would put stale code in the VM: rebuild it first (tsc, seconds).
if command -v node > /dev/null && [ -f "$REPO/tsconfig.build.json" ] && [ -x "$REPO/node_modules/.bin/tsc" ] \
  && { [ ! -f "$REPO/dist/controller/cli.js" ] || [ -n "$(cd "$REPO" && find bin controller checks failover -newer dist/controller/cli.js -name '*.ts' -print -quit)" ]; }; then
  echo "run.sh: dist/ is older than the sources: npm run build" >&2
  (cd "$REPO" && node_modules/.bin/tsc -p tsconfig.build.json) || { echo "run.sh: the build failed" >&2; exit 2; }
  touch "$REPO/dist/controller/cli.js"
fi
if [ -f "$REPO/dist/controller/cli.js" ] && command -v node > /dev/null; then
  mkdir -p "$LAB_OUT/vm"
  rm -rf "$LAB_OUT/vm/app" "$LAB_OUT/vm/app.tar"
  if ! (cd "$REPO" && node lab/vm/bundle.js "$LAB_OUT/vm/app" > /dev/null); then
    rm -rf "$LAB_OUT/vm/app"
    echo "run.sh: could not bundle the controller (lab/vm/bundle.js); packing its files instead" >&2
    (cd "$REPO" && node lab/app-files.js > "$LAB_OUT/vm/app-files.txt" \
      && tar -cf "$LAB_OUT/vm/app.tar.tmp" -T "$LAB_OUT/vm/app-files.txt" && mv "$LAB_OUT/vm/app.tar.tmp" "$LAB_OUT/vm/app.tar") \
      || echo "run.sh: could not pack the controller for the VM (lab/app-files.js); lab scripts will copy file by file" >&2
  fi
fi

cwd=$PWD
visible "$cwd" || cwd=$REPO
{
  echo "# written by lab/vm/run.sh; run by the VM's init"
  printf 'cd %q || exit 98\n' "$cwd"
  printf 'export LAB_IN_VM=1 LAB_OUT=%q LAB_REPO=%q\n' "$LAB_OUT" "$REPO"
  while IFS='=' read -r name _; do
    case $name in LAB_OUT | LAB_REPO | LAB_IN_VM) ;; LAB_*) printf 'export %s=%q\n' "$name" "${!name}" ;; esac
  done < <(env | grep -E '^LAB_[A-Za-z0-9_]*=' || true)
  if [ -x "$script" ]; then printf 'exec %q' "$script"; else printf 'exec /bin/bash %q' "$script"; fi
  [ $# -gt 0 ] && printf ' %q' "$@"
  echo
} > "$LAB_OUT/.vm-job"
rm -f "$LAB_OUT/.vm-rc" "$LAB_OUT/.vm-started"

set +e
timeout -k 5 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu "${CPU:-max}" -m "${MEM:-1536}" -smp "${SMP:-2}" \
  -nic none -display none -monitor none -serial stdio -no-reboot \
  -kernel "/boot/vmlinuz-$KVER" -initrd "$initrd" \
  -append "console=ttyS0 quiet panic=-1 lab.repo=$REPO lab.out=$LAB_OUT lab.rootcache=${ROOTCACHE:-loose}" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev local,id=repo,path="$REPO",security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=repo,mount_tag=repo \
  -fsdev local,id=out,path="$LAB_OUT",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=out,mount_tag=out \
  </dev/null 2>&1 | sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g; s/\r//g' | tee "$LAB_OUT/console.log"
q=${PIPESTATUS[0]}
set -e
t_end=$(date +%s.%N)

rc=99
if [ "$q" -eq 124 ] || [ "$q" -eq 137 ]; then rc=124
elif [ -f "$LAB_OUT/.vm-rc" ]; then rc=$(cat "$LAB_OUT/.vm-rc")
fi
started=$(cat "$LAB_OUT/.vm-started" 2>/dev/null || echo '?')
awk -v a="$t_start" -v b="$t_initrd" -v c="$t_end" -v s="$started" -v rc="$rc" -v q="$q" 'BEGIN {
  printf "run.sh: rc=%s (qemu %s)  wall %.1fs  (initrd %.2fs, guest uptime at script start %ss)\n", rc, q, c-a, b-a, s }' >&2
case $rc in
  124) echo "run.sh: timed out after ${timeout_s}s" >&2 ;;
  99) echo "run.sh: the VM stopped before the script finished; see $LAB_OUT/console.log" >&2 ;;
esac
exit "$rc"
