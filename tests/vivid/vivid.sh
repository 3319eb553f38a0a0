# vivid.sh, at /vivid.sh in the guest: helpers for the vivid virtual camera (busybox sh).
# Source it:  . /vivid.sh
#
#   vivid_setup        configure capture and output for loopback, start streaming
#                      $VIVID_FRAMES into the output (background), then create the
#                      symlink $VIVID_CAMERA -> the capture node
#   vivid_unplug       remove $VIVID_CAMERA, stop the streamer, unbind the vivid
#                      platform device: its /dev/video* nodes disappear at once, even
#                      while a process holds them open or streams
#   vivid_replug       bind it again, wait for the nodes, vivid_setup again; capture-
#                      side EBUSY is tolerated as long as the capture ends up set right
#   vivid_ship FILE    send FILE over the second serial port (ttyS1) to the host,
#                      which checks each shipped slice (offset, size, md5)
#   vivid_find_nodes   set VIVID_CAP / VIVID_OUT to the current /dev nodes
#   vivid_output_stop  stop only the output streamer
#
# The node numbers are NOT fixed: if a process still holds the old capture node open
# across an unplug, the replugged device gets the next free numbers (video1/video2).
# The functions find the nodes by their sysfs names; a payload should open the
# stable symlink $VIVID_CAMERA (/dev/vivid-camera), which exists only while the
# camera is fully set up (so a reopen cannot race vivid_replug's configuration).
VIVID_CAMERA=/dev/vivid-camera
VIVID_FRAMES=${VIVID_FRAMES:-/frames.yuv}
VIVID_WIDTH=640
VIVID_HEIGHT=480
VIVID_SERIAL2=${VIVID_SERIAL2:-/dev/ttyS1}
VIVID_SYSFS_DRV=/sys/bus/platform/drivers/vivid
VIVID_SYSFS_DEV=vivid.0              # the platform device: /sys/devices/platform/vivid.0
VIVID_CAP_NAME=vivid-000-vid-cap     # /sys/class/video4linux/videoN/name
VIVID_OUT_NAME=vivid-000-vid-out
# vivid's default inputs: 0 webcam, 1 TV, 2 S-Video, 3 HDMI; outputs: 0 S-Video,
# 1 HDMI. Loopback works HDMI->HDMI (or S-Video->S-Video) only, with the same size,
# pixel format and field on both sides.
VIVID_INPUT=3
VIVID_OUTPUT=1
export VIVID_CAMERA VIVID_FRAMES VIVID_WIDTH VIVID_HEIGHT VIVID_SERIAL2

_vivid_log() { echo "vivid-guest: $*"; }

vivid_find_nodes() {
    VIVID_CAP=; VIVID_OUT=
    for _d in /sys/class/video4linux/video*; do
        [ -r "$_d/name" ] || continue
        case $(cat "$_d/name") in
            "$VIVID_CAP_NAME") VIVID_CAP=/dev/${_d##*/} ;;
            "$VIVID_OUT_NAME") VIVID_OUT=/dev/${_d##*/} ;;
        esac
    done
    export VIVID_CAP VIVID_OUT
    [ -n "$VIVID_CAP" ] && [ -c "$VIVID_CAP" ] && [ -n "$VIVID_OUT" ] && [ -c "$VIVID_OUT" ]
}

vivid_wait_nodes() {  # devtmpfs creates the nodes during the bind/insmod itself
    _i=0
    until vivid_find_nodes; do
        _i=$((_i + 1)); [ $_i -gt 100 ] && { _vivid_log "no $VIVID_CAP_NAME/$VIVID_OUT_NAME nodes after 10 s"; return 1; }
        sleep 0.1
    done
}

# _vivid_ctl TOLERANT ARGS... : run v4l2-ctl; on failure log it, and fail unless
# TOLERANT=1 and the error was EBUSY (another process owns the buffer queue).
_vivid_ctl() {
    _t=$1; shift
    _out=$(v4l2-ctl "$@" 2>&1) && return 0
    case $_out in
        *"Device or resource busy"*)
            _vivid_log "busy (tolerated=$_t): v4l2-ctl $*"
            [ "$_t" = 1 ] && return 0 ;;
        *) _vivid_log "failed: v4l2-ctl $*: $_out" ;;
    esac
    return 1
}

vivid_output_stop() {
    [ -f /tmp/vivid-out.pid ] || return 0
    _p=$(cat /tmp/vivid-out.pid); rm -f /tmp/vivid-out.pid
    kill "$_p" 2>/dev/null || true
    # wait for it to exit, so the output queue is released before what follows
    _i=0; while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
    kill -9 "$_p" 2>/dev/null || true
}

vivid_output_start() {
    vivid_output_stop
    # The output must be streaming *before* anyone captures: vivid's capture thread
    # copies the output's current buffer into each capture buffer only while the
    # output streams; before that, a looped capture gets noise/the test pattern.
    v4l2-ctl -d "$VIVID_OUT" --stream-out-mmap --stream-from="$VIVID_FRAMES" --stream-loop \
        >/tmp/vivid-out.log 2>&1 &
    echo $! > /tmp/vivid-out.pid
    # give it time to REQBUFS/STREAMON and queue its first frames; make sure it lives
    sleep 0.5
    kill -0 "$(cat /tmp/vivid-out.pid)" 2>/dev/null || {
        _vivid_log "output streamer died: $(cat /tmp/vivid-out.log)"; return 1; }
}

# vivid_capture_ok: is the capture side set the way the loopback needs?
vivid_capture_ok() {
    _s=$(v4l2-ctl -d "$VIVID_CAP" --get-input --get-fmt-video --get-ctrl=loop_video,osd_text_mode 2>&1) || return 1
    echo "$_s" | grep -q "^Video input : $VIVID_INPUT " || return 1
    echo "$_s" | grep -q "Width/Height *: $VIVID_WIDTH/$VIVID_HEIGHT\$" || return 1
    echo "$_s" | grep -q "Pixel Format *: 'YUYV'" || return 1
    echo "$_s" | grep -q "^loop_video: 1\$" || return 1
    echo "$_s" | grep -q "^osd_text_mode: 2" || return 1
}

# vivid_setup [TOLERANT]: TOLERANT=1 lets capture-side settings fail with EBUSY,
# provided the capture ends up configured right anyway (vivid accepts a setting
# that does not change anything, e.g. the same input or timings, while busy).
vivid_setup() {
    _tol=${1:-0}
    _fmt="width=$VIVID_WIDTH,height=$VIVID_HEIGHT,pixelformat=YUYV"
    _rc=0
    rm -f "$VIVID_CAMERA"
    vivid_find_nodes || { _vivid_log "vivid_setup: no vivid nodes"; return 1; }
    vivid_output_stop
    # Output side: nobody else uses it, so it must succeed. After a (re)bind vivid
    # starts at output 0 (S-Video, 720x576) and input 0 (webcam, 640x360); HDMI
    # starts at 1280x720p60, so the timings must be set, on both sides.
    _vivid_ctl 0 -d "$VIVID_OUT" --set-output="$VIVID_OUTPUT" || _rc=1
    _vivid_ctl 0 -d "$VIVID_OUT" --set-dv-bt-timings index=0 || _rc=1   # 640x480p59.94
    _vivid_ctl 0 -d "$VIVID_OUT" --set-fmt-video-out="$_fmt" || _rc=1
    _vivid_ctl "$_tol" -d "$VIVID_CAP" --set-input="$VIVID_INPUT" || _rc=1
    _vivid_ctl "$_tol" -d "$VIVID_CAP" --set-dv-bt-timings index=0 || _rc=1
    _vivid_ctl "$_tol" -d "$VIVID_CAP" --set-fmt-video="$_fmt" || _rc=1
    # loop_video: capture shows the output's frames; osd_text_mode=2: no text over
    # the top-left of each frame. Controls are accepted even while busy.
    _vivid_ctl 0 -d "$VIVID_CAP" --set-ctrl=loop_video=1,osd_text_mode=2 || _rc=1
    vivid_output_start || _rc=1
    if ! vivid_capture_ok; then
        _vivid_log "vivid_setup: capture $VIVID_CAP is not at input $VIVID_INPUT ${VIVID_WIDTH}x${VIVID_HEIGHT} YUYV loop_video=1 osd_text_mode=2"
        _rc=1
    fi
    [ $_rc = 0 ] && ln -sfn "${VIVID_CAP#/dev/}" "$VIVID_CAMERA"
    return $_rc
}

vivid_unplug() {
    rm -f "$VIVID_CAMERA"
    vivid_output_stop
    echo "$VIVID_SYSFS_DEV" > "$VIVID_SYSFS_DRV/unbind" || { _vivid_log "unbind failed"; return 1; }
    _i=0
    while vivid_find_nodes || [ -n "$VIVID_CAP$VIVID_OUT" ]; do
        _i=$((_i + 1)); [ $_i -gt 100 ] && { _vivid_log "nodes still present 10 s after unbind"; return 1; }
        sleep 0.1
    done
}

vivid_replug() {
    echo "$VIVID_SYSFS_DEV" > "$VIVID_SYSFS_DRV/bind" || { _vivid_log "bind failed"; return 1; }
    vivid_wait_nodes || return 1
    vivid_setup 1
}

vivid_ship() {  # vivid_ship FILE: append FILE to the host's serial1.out
    [ -f "$1" ] || { _vivid_log "vivid_ship: no file $1"; return 1; }
    _off=$(cat /tmp/.vivid-ttyS1-offset 2>/dev/null || echo 0)
    _n=$(wc -c < "$1"); _n=$((_n + 0))
    _m=$(md5sum < "$1"); _m=${_m%% *}
    # raw: no \n -> \r\n translation, no XON/XOFF; /init already set this, but a
    # payload may have reopened the port with other settings
    stty -F "$VIVID_SERIAL2" raw -echo 2>/dev/null || true
    # cat's close() waits until the UART has sent everything
    cat "$1" > "$VIVID_SERIAL2" || { _vivid_log "vivid_ship: write failed"; return 1; }
    echo $((_off + _n)) > /tmp/.vivid-ttyS1-offset
    _vivid_log "ttyS1 shipped offset=$_off bytes=$_n md5=$_m name=$(basename "$1")"
}

# Resolve the nodes now if the device is there (quietly: it may be unplugged).
vivid_find_nodes || true
