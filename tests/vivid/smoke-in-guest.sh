#!/bin/sh
# The default payload (/payload/run-in-guest.sh when VIVID_PAYLOAD_DIR is unset).
# Checks that the loopback hands back the streamed frames byte for byte, that
# unplug/replug works while processes hold the capture node, and that the ttyS1
# bulk channel carries a file intact. Last line:
#   vivid: frames=N identical=yes|no unplug_recovered=yes|no
set -u   # not -e: every check is tested explicitly and reported
. /vivid.sh
FS=$((VIVID_WIDTH * VIVID_HEIGHT * 2))
log() { echo "vivid-smoke: $*"; }
t() { read -r _up _ < /proc/uptime; echo "vivid-guest: t=$_up $*"; }

# md5 of every frame of the streamed file
nin=$(( $(wc -c < "$VIVID_FRAMES") / FS ))
i=0; : > /tmp/in.md5
while [ $i -lt $nin ]; do
    dd if="$VIVID_FRAMES" bs=$FS skip=$i count=1 2>/dev/null | md5sum | cut -d' ' -f1 >> /tmp/in.md5
    i=$((i + 1))
done

# check_capture FILE: logs which streamed frame each captured frame is (x: none);
# prints "FRAMES IDENTICAL" on stdout
check_capture() {
    _n=$(( $(wc -c < "$1") / FS )); _ok=0; _i=0; _seen=""
    while [ $_i -lt $_n ]; do
        _m=$(dd if="$1" bs=$FS skip=$_i count=1 2>/dev/null | md5sum | cut -d' ' -f1)
        _k=$(grep -nx "$_m" /tmp/in.md5 | head -n1 | cut -d: -f1)
        if [ -n "$_k" ]; then _ok=$((_ok + 1)); _seen="$_seen $_k"; else _seen="$_seen x"; fi
        _i=$((_i + 1))
    done
    log "$1: $_n frames, $_ok identical to a streamed frame (streamed frame no.:$_seen)" >&2
    echo "$_n $_ok"
}

# 1. capture 30 frames through the stable symlink (what a daemon would open)
t "capture start"
v4l2-ctl -d "$VIVID_CAMERA" --stream-mmap --stream-count=30 --stream-to=/tmp/cap.raw >/dev/null 2>/tmp/cap.err \
    || log "capture failed: $(cat /tmp/cap.err)"
t "capture done"
set -- $(check_capture /tmp/cap.raw)
frames=$1
identical=no; [ "$frames" -ge 30 ] && [ "$2" = "$frames" ] && identical=yes

# 2. ship the first captured frame to the host over ttyS1 (guest.sh checks its md5)
dd if=/tmp/cap.raw of=/tmp/frame0.yuv bs=$FS count=1 2>/dev/null
t "ship start"
vivid_ship /tmp/frame0.yuv || log "ship failed"
t "ship done"

# 3. while another process streams the capture: vivid refuses changes (EBUSY) but
#    accepts settings that change nothing, which vivid_replug's tolerance relies on
v4l2-ctl -d "$VIVID_CAMERA" --stream-mmap --stream-count=1000000 >/dev/null 2>/tmp/hold.err &
holder=$!
sleep 1
for a in --set-ctrl=loop_video=1 --set-ctrl=osd_text_mode=2 --set-input=$VIVID_INPUT \
         "--set-dv-bt-timings index=0" --set-fmt-video=width=$VIVID_WIDTH,height=$VIVID_HEIGHT,pixelformat=YUYV; do
    # shellcheck disable=SC2086
    if out=$(v4l2-ctl -d "$VIVID_CAP" $a 2>&1); then log "while streaming: $a ok"
    else log "while streaming: $a FAILED: $(echo "$out" | tail -n1)"; fi
done

# 4. unplug while that process streams and a shell holds the node open (idle fd)
unplug_recovered=no
old_cap=$VIVID_CAP
exec 3< "$VIVID_CAMERA"
t "unplug"
if vivid_unplug; then
    t "unplugged"
    log "after unplug: /dev/video* = $(ls /dev | grep '^video' | tr '\n' ' ')"
    i=0; while kill -0 $holder 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 $holder 2>/dev/null; then log "streaming process still alive 5 s after unplug"; kill $holder
    else wait $holder; log "streaming process ended after unplug: exit=$? ($(tail -n1 /tmp/hold.err))"; fi
    gone_fails=yes
    for d in "$old_cap" "$VIVID_CAMERA"; do
        if v4l2-ctl -d "$d" --stream-mmap --stream-count=1 --stream-to=/tmp/gone.raw >/dev/null 2>&1; then
            log "capture from $d while unplugged unexpectedly worked"; gone_fails=no
        fi
    done
    [ $gone_fails = yes ] && log "capture while unplugged fails, as it should"
    t "replug"
    if vivid_replug; then
        t "replugged"
        log "after replug: capture $VIVID_CAP, output $VIVID_OUT ($VIVID_CAMERA -> $(readlink "$VIVID_CAMERA")); the old fd 3 still holds $old_cap's device"
        v4l2-ctl -d "$VIVID_CAMERA" --stream-mmap --stream-count=10 --stream-to=/tmp/cap2.raw >/dev/null 2>/tmp/cap2.err \
            || log "capture after replug failed: $(cat /tmp/cap2.err)"
        t "captured after replug"
        set -- $(check_capture /tmp/cap2.raw)
        [ "$gone_fails" = yes ] && [ "$1" -ge 10 ] && [ "$2" = "$1" ] && unplug_recovered=yes
    else
        log "replug failed"
    fi
else
    log "unplug failed"
    kill $holder 2>/dev/null
fi
exec 3<&-
t "smoke done"

echo "vivid: frames=$frames identical=$identical unplug_recovered=$unplug_recovered"
[ $identical = yes ] && [ $unplug_recovered = yes ]
