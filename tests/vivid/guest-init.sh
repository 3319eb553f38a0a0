#!/bin/sh
# /init of the vivid test guest (busybox sh, PID 1). Built into the initramfs by
# tests/vivid/guest.sh. Whatever happens, it ends with `poweroff -f`, so qemu exits
# (-no-reboot); the host reads the markers "vivid-guest: ..." from ttyS0.
# set -u but not -e: PID 1 checks each step itself and powers off with a marker
# saying what failed (an init that just exits panics the kernel, with less to read).
set -u
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root TERM=dumb

t() { read -r _up _ < /proc/uptime; echo "vivid-guest: t=$_up $*"; }

finish() {  # finish MESSAGE: the last words, then power off
    echo "vivid-guest: $*"
    sync
    poweroff -f
    sleep 5
}
# If the shell dies on an error anyway, still power off rather than panic.
trap 'finish "init exited unexpectedly"' EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /var/tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
# The marker that the host waits for to know the kernel booted (and that KVM works).
echo "vivid-guest: init"
t "kernel booted: $(uname -r), $(nproc) cpus, $(free -m | awk '/^Mem:/ { print $2 }') MiB"
ip link set lo up 2>/dev/null || true
hostname vivid-guest

# --- the vivid module chain --------------------------------------------------
# /lib/modules/order: one module file a line, dependencies first (guest.sh took the
# order from `modprobe --show-depends vivid` against the unpacked kernel).
params=$(cat /etc/vivid-params)
while read -r m; do
    case $m in vivid.ko) args=$params ;; *) args= ;; esac
    # shellcheck disable=SC2086
    insmod "/lib/modules/$m" $args || finish "setup failed: insmod $m $args"
done < /lib/modules/order
t "modules loaded"

. /vivid.sh
vivid_wait_nodes || finish "setup failed: no vivid video nodes ($(ls /sys/class/video4linux 2>&1 | tr '\n' ' '))"
vivid_setup || finish "setup failed: vivid_setup"
t "vivid set up: capture $VIVID_CAP (input $VIVID_INPUT, HDMI) = $VIVID_CAMERA, output $VIVID_OUT (output $VIVID_OUTPUT, HDMI) streaming $VIVID_FRAMES"

# --- the payload ---------------------------------------------------------------
# The second serial port carries bulk data to a host file: raw, so bytes pass
# unchanged (no \n -> \r\n, no XON/XOFF).
stty -F /dev/ttyS1 raw -echo || finish "setup failed: stty ttyS1"
export VIVID_SERIAL2=/dev/ttyS1
[ -f /etc/vivid-env ] && . /etc/vivid-env
cd /payload || finish "setup failed: no /payload"
t "payload start"
sh /payload/run-in-guest.sh < /dev/null
rc=$?
t "payload done"
trap - EXIT
vivid_output_stop
finish "payload exit=$rc"
