#!/bin/sh
# The payload of tests/vivid/run.sh, run inside the guest as /payload/run-in-guest.sh:
# emoedge-firmware-host against vivid's capture device, with the astronaut portrait
# streaming into vivid's output. It waits for labelled faces, unplugs the camera
# (unbinds vivid), waits for the daemon to notice, plugs it back, waits for faces
# again, stops the daemon with SIGTERM and ships its events, log and kiosk snapshot
# to the host over ttyS1. The host does the checking.
set -u
. /vivid.sh
cd /payload
say() { echo "vivid-daemon: $*"; }
count() { grep -c "$1" /tmp/events.jsonl 2>/dev/null || true; }
# wait_for PATTERN N SECONDS: until N event lines match PATTERN
wait_for() {
    _n=0
    while [ "$(count "$1")" -lt "$2" ]; do
        _n=$((_n + 1))
        [ $_n -gt $(($3 * 2)) ] && return 1
        kill -0 "$pid" 2>/dev/null || { say "the daemon died"; return 1; }
        sleep 0.5
    done
}
HAPPY='"expression":{"expression":"happy"'
rc=0

RUST_LOG=info ./emoedge-firmware-host --config daemon.toml > /tmp/events.jsonl 2> /tmp/daemon.log &
pid=$!
say "daemon pid $pid"
# Under emulation the models run 50-150x slower than on the host: generous limits.
wait_for "$HAPPY" 5 400 || { say "no 5 happy faces within 400 s"; rc=1; }
say "before the unplug: $(count "$HAPPY") frames with a happy face"

vivid_unplug
wait_for '"state":"lost"' 1 60 || { say "the daemon did not report the camera lost"; rc=1; }
sleep 3
vivid_replug || { say "replug failed"; rc=1; }
wait_for '"state":"streaming"' 2 120 || { say "the daemon did not resume streaming"; rc=1; }
after=$(( $(count "$HAPPY") + 5 ))
wait_for "$HAPPY" "$after" 400 || { say "no faces after the replug"; rc=1; }
say "after the replug: $(count "$HAPPY") frames with a happy face"
sleep 6   # one more kiosk snapshot with the face in it

kill -TERM "$pid"
wait "$pid"
drc=$?
say "daemon exit=$drc"
[ "$drc" -eq 0 ] || rc=1
grep '^firmware-host:' /tmp/daemon.log || { say "no summary line"; rc=1; }
tail -n 20 /tmp/daemon.log
vivid_ship /tmp/events.jsonl || rc=1
vivid_ship /tmp/daemon.log || rc=1
if [ -f /tmp/kiosk.png ]; then vivid_ship /tmp/kiosk.png || rc=1; else say "no kiosk snapshot"; rc=1; fi
exit $rc
