#!/bin/bash
# Boots a qemu guest with Debian's stock kernel and the vivid virtual V4L2 camera,
# wired so that frames streamed into vivid's OUTPUT device (/dev/video1) come back
# byte-identical on its CAPTURE device (/dev/video0), then runs a payload inside the
# guest and exits with the payload's exit status. See tests/vivid/README.md.
#
#   bash tests/vivid/guest.sh                                 # the built-in smoke check
#   VIVID_PAYLOAD_DIR=path/to/dir bash tests/vivid/guest.sh   # runs dir/run-in-guest.sh
#
# Exit status: the payload's; 97 guest setup failed; 98 no exit marker (hang,
# panic, timeout); 99 a file shipped over ttyS1 arrived corrupted; 96 host-side error.
set -eu

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# paths given relative to the caller's cwd, resolved before the cd to the repo root
[ -n "${VIVID_PAYLOAD_DIR:-}" ] && VIVID_PAYLOAD_DIR=$(realpath -m "$VIVID_PAYLOAD_DIR")
[ -n "${VIVID_FRAMES:-}" ] && VIVID_FRAMES=$(realpath -m "$VIVID_FRAMES")
[ -n "${VIVID_WORK:-}" ] && VIVID_WORK=$(realpath -m "$VIVID_WORK")
cd "$ROOT"
HERE=$ROOT/tests/vivid
WORK=${VIVID_WORK:-$ROOT/target/vivid}
export VIVID_WORK=$WORK
TIMEOUT=${VIVID_TIMEOUT:-600}        # whole guest run, seconds
KVM_WAIT=${VIVID_KVM_WAIT:-25}       # seconds KVM gets to reach /init's marker
ACCEL=${VIVID_ACCEL:-auto}           # auto (KVM, then TCG) | kvm | tcg
MEM=${VIVID_MEM:-1024}               # MiB; the initramfs (payload included) lives in it
SMP=${VIVID_SMP:-2}
LOG_LINES=${VIVID_LOG_LINES:-300}    # how much of the guest console to print at the end
# vivid module parameters: one instance, node_types bit 0 = video capture
# (/dev/video0), bit 8 = video output (/dev/video1); nothing else (no VBI, radio, SDR...).
PARAMS=${VIVID_PARAMS:-n_devs=1 node_types=0x101}
FS=$((640 * 480 * 2))                # one 640x480 YUYV frame

say() { echo "vivid-run: $*" >&2; }
die() { say "error: $*"; exit 96; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(now)

# --- 1. packages and kernel ---------------------------------------------------
bash "$HERE/setup.sh" || die "setup.sh failed"
KROOT=$WORK/kernel/root
KVER=$(cat "$WORK/kernel/version")
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "no kernel at $VMLINUZ"
say "kernel $(cat "$WORK/kernel/package") ($KVER); setup took $(since "$T0") s"

# --- 2. the frames streamed into vivid's output ----------------------------------
T1=$(now)
if [ -n "${VIVID_FRAMES:-}" ]; then
    FRAMES=$VIVID_FRAMES
else
    # Default: 4 frames of the astronaut portrait, differing only in the box grey
    # level, so the smoke check can tell which frame each capture holds.
    FRAMES=$WORK/astronaut-640x480-yuyv.raw
    if [ ! -s "$FRAMES" ] || [ "$FRAMES" -ot tests/data/astronaut.png ] || [ "$FRAMES" -ot "$HERE/mkframes.py" ]; then
        mkdir -p "$WORK"
        # Debian's python3 (setup.sh installs python3-minimal; stdlib only)
        py=/usr/bin/python3; [ -x "$py" ] || py=python3
        "$py" "$HERE/mkframes.py" tests/data/astronaut.png "$FRAMES.tmp" 4 || die "mkframes.py failed"
        mv "$FRAMES.tmp" "$FRAMES"
    fi
fi
[ -f "$FRAMES" ] || die "no frames file $FRAMES"
fsize=$(stat -c %s "$FRAMES")
if [ "$fsize" -eq 0 ] || [ $((fsize % FS)) -ne 0 ]; then
    die "$FRAMES: $fsize bytes is not a whole number of 640x480 YUYV frames ($FS bytes each)"
fi
say "frames: $FRAMES ($((fsize / FS)) frames)"

# --- 3. the initramfs -------------------------------------------------------------
ST=$WORK/initramfs
rm -rf "$ST"
mkdir -p "$ST"/{bin,sbin,usr/bin,usr/sbin,lib/modules,etc,proc,sys,dev,tmp,root,payload}

# copy_libs ELF: copy every shared library ELF needs (ldd resolves them against the
# host, which is the same Debian), the dynamic loader included, at the same paths.
copy_libs() {
    local out lib
    out=$(ldd "$1" 2>&1) || {
        case $out in *"not a dynamic executable"*|*"statically linked"*) return 0 ;; esac
        die "ldd $1: $out"; }
    case $out in *"not found"*) die "ldd $1: missing libraries: $out" ;; esac
    for lib in $(echo "$out" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
        [ -e "$ST$lib" ] && continue
        mkdir -p "$ST$(dirname "$lib")"
        cp -L "$lib" "$ST$lib"
    done
}
is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }

# busybox: static, so it needs nothing else; one symlink per applet
BB=$(command -v busybox) || die "no busybox"
is_elf "$BB" && ! ldd "$BB" >/dev/null 2>&1 || die "$BB is not the static busybox (busybox-static)"
cp "$BB" "$ST/bin/busybox"
for a in $("$ST/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$ST/bin/$a"
done

# v4l2-ctl and its libraries
V4L2CTL=$(command -v v4l2-ctl) || die "no v4l2-ctl"
cp "$V4L2CTL" "$ST/usr/bin/v4l2-ctl"
copy_libs "$V4L2CTL"

# The vivid module chain, in dependency order, from the unpacked kernel's own
# modules.dep (-C /dev/null: ignore the host's modprobe.d). Compressed modules are
# decompressed: busybox insmod loads plain .ko files only (and a compressed module
# would need the kernel's in-kernel decompression support, a separate option).
EXPECTED="rc-core cec mc videodev videobuf2-common videobuf2-v4l2 videobuf2-memops videobuf2-vmalloc videobuf2-dma-contig v4l2-dv-timings v4l2-tpg vivid"
deps=$(modprobe -C /dev/null -S "$KVER" -d "$KROOT" --show-depends vivid) \
    || die "modprobe --show-depends vivid failed"
order=""
while read -r kind path _; do
    [ "$kind" = insmod ] || continue     # "builtin X" lines: nothing to load
    name=$(basename "$path")
    case $name in
        *.ko.xz)  base=${name%.xz};  xz -dc "$path" > "$ST/lib/modules/$base" ;;
        *.ko.zst) base=${name%.zst}; zstd -qdc "$path" > "$ST/lib/modules/$base" ;;
        *.ko.gz)  base=${name%.gz};  gzip -dc "$path" > "$ST/lib/modules/$base" ;;
        *.ko)     base=$name;        cp "$path" "$ST/lib/modules/$base" ;;
        *) die "unexpected module file $path" ;;
    esac
    echo "$base" >> "$ST/lib/modules/order"
    order="$order ${base%.ko}"
done <<< "$deps"
[ -s "$ST/lib/modules/order" ] || die "no modules for vivid in $KROOT"
if [ "${order# }" != "$EXPECTED" ]; then
    say "note: vivid's module chain differs from the expected one: ${order# }"
fi
echo "$PARAMS" > "$ST/etc/vivid-params"

# guest scripts, frames
cp "$HERE/guest-init.sh" "$ST/init"
cp "$HERE/vivid.sh" "$ST/vivid.sh"
chmod 755 "$ST/init"
cp "$FRAMES" "$ST/frames.yuv"
echo "root:x:0:0:root:/root:/bin/sh" > "$ST/etc/passwd"
echo "root:x:0:" > "$ST/etc/group"

# environment for the payload: VIVID_ENV_NAME=value on the host becomes NAME=value
: > "$ST/etc/vivid-env"
for k in $(compgen -e); do
    case $k in VIVID_ENV_?*) ;; *) continue ;; esac
    printf "export %s='%s'\n" "${k#VIVID_ENV_}" "$(printf %s "${!k}" | sed "s/'/'\\\\''/g")" >> "$ST/etc/vivid-env"
done

# the payload
if [ -n "${VIVID_PAYLOAD_DIR:-}" ]; then
    [ -f "$VIVID_PAYLOAD_DIR/run-in-guest.sh" ] || die "$VIVID_PAYLOAD_DIR has no run-in-guest.sh"
    cp -a "$VIVID_PAYLOAD_DIR/." "$ST/payload/"
    while IFS= read -r -d '' f; do
        is_elf "$f" && copy_libs "$f"
    done < <(find "$ST/payload" -type f -print0)
    say "payload: $VIVID_PAYLOAD_DIR ($(du -sh "$ST/payload" | cut -f1))"
else
    cp "$HERE/smoke-in-guest.sh" "$ST/payload/run-in-guest.sh"
    say "payload: the built-in smoke check"
fi
chmod +x "$ST/payload/run-in-guest.sh"

INITRD=$WORK/initramfs.cpio.gz
( cd "$ST" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --reproducible --quiet ) \
    | gzip -1 > "$INITRD.tmp"
mv "$INITRD.tmp" "$INITRD"
say "initramfs: $INITRD ($(du -h "$INITRD" | cut -f1)), built in $(since "$T1") s"

# --- 4. boot ----------------------------------------------------------------------
LOG=$WORK/serial0.log        # ttyS0: the guest console
S1=$WORK/serial1.out         # ttyS1: bulk data the payload ships out
# mitigations=off: no page-table isolation etc., which only slow an emulated CPU
CMDLINE="console=ttyS0 quiet panic=-1 mitigations=off ${VIVID_APPEND:-}"

QPID=
start_qemu() {  # start_qemu ACCEL CPU: boots in the background, sets QPID
    rm -f "$LOG" "$S1" "$WORK/qemu.pid"
    : > "$LOG"; : > "$S1"
    # -nodefaults: no VGA, NIC, floppy, CD-ROM (the guest needs none of them);
    # -display none + two file serial ports rather than -nographic, so this script's
    # stdin/stdout are never the guest's console or qemu's monitor.
    # The subshell waits for `timeout` (whose pid goes to qemu.pid, for stop_qemu);
    # its stderr keeps bash's "Aborted" notice for a qemu that aborts out of our output.
    (
        timeout "$TIMEOUT" qemu-system-x86_64 \
            -accel "$1" -cpu "$2" -m "$MEM" -smp "$SMP" \
            -nodefaults -no-user-config -display none -monitor none -no-reboot \
            -kernel "$VMLINUZ" -initrd "$INITRD" -append "$CMDLINE" \
            -serial "file:$LOG" -serial "file:$S1" \
            < /dev/null > "$WORK/qemu-$1.out" 2>&1 &
        echo $! > "$WORK/qemu.pid"
        wait $!
    ) 2>> "$WORK/qemu-$1.out" &
    QPID=$!
    TQ=$(now)
}
# stop_qemu: TERM to `timeout`, which passes it on to qemu; then reap the subshell
stop_qemu() {
    [ -n "$QPID" ] || return 0
    local i=0
    while [ ! -s "$WORK/qemu.pid" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
    [ -s "$WORK/qemu.pid" ] && kill "$(cat "$WORK/qemu.pid")" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
    QPID=
}
# never leave a guest running behind us (Ctrl-C, a CI job cancelled, an error)
trap 'stop_qemu' EXIT
trap 'exit 130' INT TERM
marker_seen() { grep -aq 'vivid-guest: init' "$LOG" 2>/dev/null; }
# wait_marker SECONDS: until /init's marker shows, qemu ends, or SECONDS pass
wait_marker() {
    local end=$(( $(date +%s) + $1 ))
    while ! marker_seen && kill -0 "$QPID" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
        sleep 0.2
    done
    marker_seen
}
qemu_said() { grep -a '^qemu-system-x86_64:' "$WORK/qemu-$1.out" | grep -v 'warning: host' | tail -n1; }

# KVM first, with -cpu max (all the host's features that KVM can give: AVX2 for the
# daemon). On this kind of machine /dev/kvm is a paravirtual KVM on which that
# fails at once (qemu aborts setting MSR 0x10a, as `-cpu host` does), and with
# other CPU models Debian's kernel never reaches /init (early boot crawls, then
# KVM's instruction emulator fails, e.g. on cmpxchg16b). So KVM gets KVM_WAIT
# seconds to reach /init, and anything short of that falls back to TCG.
used=
case $ACCEL in
    auto|kvm)
        if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
            start_qemu kvm "${VIVID_KVM_CPU:-max}"
            if wait_marker "$KVM_WAIT"; then
                used=kvm
            else
                stop_qemu
                say "KVM failed or did not reach /init within $KVM_WAIT s ($(qemu_said kvm)); using TCG"
                [ "$ACCEL" = kvm ] && die "VIVID_ACCEL=kvm but KVM does not boot"
            fi
        else
            say "no usable /dev/kvm; using TCG"
            [ "$ACCEL" = kvm ] && die "VIVID_ACCEL=kvm but /dev/kvm is not usable"
        fi ;;
    tcg) ;;
    *) die "VIVID_ACCEL must be auto, kvm or tcg" ;;
esac

run_guest() {  # waits for the running guest; sets qrc
    local what=$1
    if [ "$what" = tcg ]; then wait_marker "$TIMEOUT" || true; fi
    if marker_seen; then
        say "$what: guest reached /init after $(since "$TQ") s; running (timeout $TIMEOUT s) ..."
    fi
    qrc=0
    wait "$QPID" || qrc=$?
    QPID=
    say "$what: guest ran $(since "$TQ") s (qemu exit $qrc$([ $qrc = 124 ] && echo ': TIMEOUT'))"
}
if [ "$used" = kvm ]; then
    run_guest kvm
    # A KVM guest that reached /init but then died (KVM internal error, a crash)
    # before the payload's exit marker gets one more try under TCG.
    if ! grep -aq 'vivid-guest: payload exit=' "$LOG" && [ "$qrc" != 124 ]; then
        say "KVM guest ended without a result ($(qemu_said kvm)); rerunning under TCG"
        used=
    fi
fi
if [ -z "$used" ]; then
    # Plain emulation. -cpu max gives the guest AVX2 (and more) under TCG, which the
    # daemon's vectorised code wants; MTTCG runs the vCPUs on separate host threads.
    start_qemu tcg max
    used=tcg
    run_guest tcg
fi

# --- 5. results --------------------------------------------------------------------
echo "----- guest console ($LOG, last $LOG_LINES lines) -----" >&2
tr -d '\r' < "$LOG" | tail -n "$LOG_LINES" >&2
echo "----- end of guest console -----" >&2
[ -s "$WORK/qemu-$used.out" ] && say "qemu said: $(tail -n5 "$WORK/qemu-$used.out")"

status=$(tr -d '\r' < "$LOG" | sed -n 's/^vivid-guest: payload exit=\([0-9]*\)$/\1/p' | tail -n1)
# check every slice the payload shipped over ttyS1 (vivid_ship logs offset/size/md5)
s1bad=0
while read -r off n md5; do
    got=$(tail -c +$((off + 1)) "$S1" | head -c "$n" | md5sum | cut -d' ' -f1)
    if [ "$got" != "$md5" ]; then
        say "ttyS1: slice at $off ($n bytes) arrived corrupted (md5 $got, sent $md5)"; s1bad=1
    fi
done < <(tr -d '\r' < "$LOG" | sed -n 's/^vivid-guest: ttyS1 shipped offset=\([0-9]*\) bytes=\([0-9]*\) md5=\([0-9a-f]*\).*/\1 \2 \3/p')
say "ttyS1 output: $S1 ($(stat -c %s "$S1") bytes)"
say "total $(since "$T0") s"

if [ -z "$status" ]; then
    if grep -aq 'vivid-guest: setup failed' "$LOG"; then
        say "FAIL: guest setup failed: $(grep -a 'vivid-guest: setup failed' "$LOG" | tr -d '\r' | tail -n1)"
        exit 97
    fi
    say "FAIL: no 'payload exit' marker from the guest (hang, panic or timeout)"
    exit 98
fi
if [ "$s1bad" = 1 ] && [ "$status" = 0 ]; then exit 99; fi
say "payload exit status $status"
exit "$status"
