#!/bin/bash
# Installs what the vivid qemu harness needs, on Debian 12 (bookworm), as root.
# Idempotent and cheap on a second run: it only calls apt when something is missing.
#
#   - Debian packages: qemu (x86 system emulator), a static busybox for the guest's
#     userland, v4l-utils for v4l2-ctl, kmod for modprobe/depmod (resolving the
#     vivid module chain), cpio/gzip for the initramfs, xz-utils in case the modules
#     ship compressed, python3-minimal to turn the test PNG into raw YUYV frames.
#   - the kernel: Debian's stock amd64 kernel, *not installed* but downloaded with
#     `apt-get download` and unpacked with `dpkg -x` into a cache folder, so nothing
#     touches the host's /boot and no initramfs hooks run.
#
# Prints nothing but progress on stderr; the kernel's location is
# $VIVID_WORK/kernel (default: <repo>/target/vivid/kernel).
set -eu

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${VIVID_WORK:-$ROOT/target/vivid}
KDIR=$WORK/kernel
export DEBIAN_FRONTEND=noninteractive

log() { echo "vivid-setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (apt-get)"; exit 1
fi

# --- Debian packages --------------------------------------------------------
# qemu-system-x86 pulls seabios (the BIOS that -kernel boots through) as a Depends.
PKGS="qemu-system-x86 seabios busybox-static v4l-utils kmod cpio gzip xz-utils python3-minimal"

missing=""
for p in $PKGS; do
    # dpkg-query prints e.g. "install ok installed" for an installed package
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case $st in *" installed") ;; *) missing="$missing $p" ;; esac
done

# apt's lists: needed for install and for `apt-cache depends`; update only when
# there are none (fresh machine) or when an install/lookup fails on stale lists.
apt_lists_present() { ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; }
updated=no
apt_update() {
    if [ $updated = no ]; then
        log "apt-get update"
        apt-get update -qq >&2
        updated=yes
    fi
}

if [ -n "$missing" ]; then
    apt_lists_present || apt_update
    log "installing:$missing"
    if ! apt-get install -y -qq --no-install-recommends $missing >&2; then
        apt_update
        apt-get install -y -qq --no-install-recommends $missing >&2
    fi
fi

# --- the kernel ---------------------------------------------------------------
# Cached: once $KDIR/.done exists, the kernel there is used as is (a CI run on the
# same machine then costs nothing). VIVID_KERNEL_REFRESH=1 re-resolves the package.
if [ -f "$KDIR/.done" ] && [ "${VIVID_KERNEL_REFRESH:-0}" != 1 ]; then
    exit 0
fi

# The concrete package behind the linux-image-amd64 metapackage, e.g.
# linux-image-6.1.0-48-amd64 (the ABI number moves with Debian's point releases).
resolve_kpkg() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
apt_lists_present || apt_update
kpkg=$(resolve_kpkg)
if [ -z "$kpkg" ]; then apt_update; kpkg=$(resolve_kpkg); fi
if [ -z "$kpkg" ]; then log "cannot resolve linux-image-amd64's kernel package"; exit 1; fi

rm -rf "$KDIR" "$KDIR.tmp"
mkdir -p "$KDIR.tmp/deb"
download() {
    log "downloading $kpkg"
    # apt-get download writes into the cwd; as root it warns that _apt cannot write
    # there (it then downloads unsandboxed), which is harmless: drop that warning.
    ( cd "$KDIR.tmp/deb" && apt-get download -qq "$kpkg" 2>&1 | grep -v 'unsandboxed' >&2 || true )
    ls "$KDIR.tmp/deb/"*.deb >/dev/null 2>&1
}
if ! download; then
    # stale lists: the mirror may have moved on to a newer kernel ABI
    apt_update
    kpkg=$(resolve_kpkg)
    [ -n "$kpkg" ] && download || { log "cannot download the kernel package"; exit 1; }
fi
deb=$(ls "$KDIR.tmp/deb/"*.deb | head -n1)
log "unpacking $(basename "$deb")"
mkdir -p "$KDIR.tmp/root"
dpkg -x "$deb" "$KDIR.tmp/root"
rm -rf "$KDIR.tmp/deb"

kver=$(ls "$KDIR.tmp/root/lib/modules" | head -n1)
[ -n "$kver" ] && [ -f "$KDIR.tmp/root/boot/vmlinuz-$kver" ] || { log "no kernel in $deb"; exit 1; }
# The .deb ships no modules.dep (the package's postinst runs depmod); make one so
# `modprobe -d ... --show-depends` can resolve vivid's dependency chain.
depmod -b "$KDIR.tmp/root" "$kver"

echo "$kpkg" > "$KDIR.tmp/package"
echo "$kver" > "$KDIR.tmp/version"
touch "$KDIR.tmp/.done"
mv "$KDIR.tmp" "$KDIR"
log "kernel $kver ready in $KDIR"
