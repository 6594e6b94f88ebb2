#!/usr/bin/env bash
# Builds the lab VM's initramfs from installed Debian packages (busybox-static, linux-image-amd64):
# static busybox, the virtio + 9p modules (order from modprobe --show-depends), lab/vm/init.
# Output: $LAB_OUT/vm/initrd-<kver>.gz; rebuilt only when the kernel, busybox, this script or init change.
# Prints the initrd path on stdout (progress on stderr).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB_OUT=${LAB_OUT:-$REPO/lab/out}
# shellcheck source=lab/vm/kver.sh
. "$HERE/kver.sh"
KVER=$(lab_kver)
BUSYBOX=${BUSYBOX:-/bin/busybox}
# Modules the init needs to mount the host root; their dependencies are computed.
ROOT_MODULES=(virtio_pci 9pnet_virtio 9p)

die() { echo "build-initrd: $*" >&2; exit 1; }
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (apt-get install busybox-static)"
# grep without -q: an early exit would SIGPIPE busybox and fail the pipeline (pipefail).
"$BUSYBOX" --list | grep -x insmod > /dev/null || die "$BUSYBOX has no insmod applet"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked; the initramfs needs busybox-static"
command -v cpio >/dev/null || die "cpio missing (apt-get install cpio)"

mkdir -p "$LAB_OUT/vm"
OUT=$LAB_OUT/vm/initrd-$KVER.gz
STAMP=$OUT.stamp
want=$( { echo "$KVER"; sha256sum "$BUSYBOX" "$HERE/build-initrd.sh" "$HERE/init" "$HERE/kver.sh" \
  "/lib/modules/$KVER/modules.dep" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  echo "$OUT"; exit 0
fi

t0=$(date +%s.%N)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,sbin,proc,sys,dev,mnt,out,repo,tmp,lib/modules}
cp "$BUSYBOX" "$W/bin/busybox"
for a in $("$BUSYBOX" --list); do
  case $a in busybox|modprobe) continue ;; esac   # modprobe: wrapper below
  ln -sf busybox "$W/bin/$a"
done

# "insmod /lib/modules/<kver>/kernel/.../x.ko[.xz|.zst] [params]" lines, dependencies first; dedup keeps the first.
mapfile -t paths < <(modprobe -S "$KVER" --show-depends -a "${ROOT_MODULES[@]}" \
  | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
[ "${#paths[@]}" -gt 0 ] || die "modprobe -S $KVER --show-depends found no modules for ${ROOT_MODULES[*]} (built in? then this list needs changing)"
: > "$W/lib/modules/order"
for f in "${paths[@]}"; do
  b=$(basename "$f"); b=${b%.xz}; b=${b%.zst}
  case $f in
    *.ko) cp "$f" "$W/lib/modules/$b" ;;
    *.ko.xz) xz -dc "$f" > "$W/lib/modules/$b" ;;
    *.ko.zst) zstd -qdc "$f" > "$W/lib/modules/$b" ;;
    *) die "unexpected module file $f" ;;
  esac
  echo "$b" >> "$W/lib/modules/order"
done

# The kernel's usermode helper runs /sbin/modprobe with the initramfs as root, not the chroot:
# hand the request to the host's kmod inside the chroot (autoload of ip_vs_sh, nft_compat, ...).
printf '#!/bin/busybox sh\nexec /bin/busybox chroot /mnt /sbin/modprobe "$@"\n' > "$W/sbin/modprobe"
chmod +x "$W/sbin/modprobe"
cp "$HERE/init" "$W/init"; chmod +x "$W/init"

(cd "$W" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$want" > "$STAMP"
echo "build-initrd: $OUT ($(stat -c %s "$OUT") bytes, modules: $(tr '\n' ' ' < "$W/lib/modules/order")) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s" >&2
echo "$OUT"
