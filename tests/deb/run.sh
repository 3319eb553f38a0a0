#!/usr/bin/env bash
# The packages, checked: the amd64 .deb installed into a clean Debian root
# (debootstrap minbase, bookworm) with apt resolving its dependencies, then its
# self-test there: `emoedge doctor --quick`, `emoedge analyze` on the packaged
# sample (must say happy), a short `generate` with the packaged LLM, the daemon's
# --print-config and the man pages. Then the arm64 .deb: its architecture, its
# contents, and its binary run under qemu-user.
#
#   bash .ci/deb amd64 && bash .ci/deb arm64 && bash tests/deb/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ok() { echo "deb: ok   $*"; }
fail() { echo "deb: FAIL $*"; status=1; }
status=0
amd=$(ls -t target/debian/emoedge_*_amd64.deb | head -1)
arm=$(ls -t target/debian/emoedge_*_arm64.deb 2>/dev/null | head -1 || true)

command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
# A pristine root is made once and kept as a tarball; every run starts from a fresh copy.
pristine=target/deb-root-bookworm.tar
if [ ! -s "$pristine" ]; then
    echo "deb: debootstrap --variant=minbase bookworm (once)" >&2
    rm -rf target/deb-root-make
    debootstrap --variant=minbase bookworm target/deb-root-make http://deb.debian.org/debian >/dev/null
    tar -C target/deb-root-make -cf "$pristine" .
    rm -rf target/deb-root-make
fi
root=target/deb-root
rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xf "$pristine"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

cp "$amd" "$root/tmp/emoedge.deb"
if in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/emoedge.deb' > target/deb-install.log 2>&1; then
    ok "installed $(basename "$amd") into a clean bookworm root ($(in_root dpkg-query -W -f='${Installed-Size}' emoedge) KiB)"
else
    fail "apt could not install $(basename "$amd") (target/deb-install.log)"; tail -5 target/deb-install.log; exit 1
fi
in_root emoedge doctor --quick > target/deb-doctor.txt 2>&1 && ok "emoedge doctor --quick: $(tail -1 target/deb-doctor.txt)" || { fail "emoedge doctor"; cat target/deb-doctor.txt; }
label=$(in_root emoedge analyze /usr/share/emoedge/samples/astronaut.png --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["faces"][0]["expression"]["expression"])' || true)
[ "$label" = happy ] && ok "emoedge analyze on the packaged sample: $label" || fail "emoedge analyze said '$label'"
text=$(in_root emoedge generate --prompt "The capital of France is" -n 4 2>/dev/null || true)
case "$text" in *Paris*) ok "emoedge generate with the packaged LLM: '$(echo $text)'";; *) fail "generate said '$text'";; esac
in_root emoedge-firmware-host --print-config | grep -q '^\[camera\]' && ok "the daemon runs and prints its config" || fail "the daemon's --print-config"
in_root test -s /etc/emoedge/firmware-host.toml && in_root test -s /usr/lib/systemd/system/emoedge-firmware-host.service && ok "config and systemd unit installed" || fail "config or unit missing"
in_root sh -c 'zcat /usr/share/man/man1/emoedge.1.gz | head -1 | grep -q "^.TH EMOEDGE 1"' && ok "man page emoedge(1)" || fail "man page"

if [ -n "$arm" ]; then
    info=$(dpkg-deb -f "$arm" Architecture Depends)
    echo "$info" | grep -q '^Architecture: arm64' && ok "$(basename "$arm"): $(echo "$info" | tr '\n' ' ')" || fail "arm64 architecture: $info"
    listing=$(dpkg-deb -c "$arm")
    missing=0
    for f in ./usr/bin/emoedge ./usr/bin/emoedge-firmware-host ./usr/share/emoedge/models/manifest.toml \
             ./usr/share/emoedge/llm/SmolLM2-135M-Instruct.Q4_1.gguf ./usr/lib/systemd/system/emoedge-firmware-host.service \
             ./etc/emoedge/firmware-host.toml ./usr/share/man/man1/emoedge.1.gz; do
        echo "$listing" | grep -q " $f\$" || { fail "arm64 .deb lacks $f"; missing=1; }
    done
    [ $missing = 0 ] && ok "arm64 .deb holds the binaries, models, LLM, unit, config and man pages"
    x=target/deb-arm64-x && rm -rf "$x" && dpkg-deb -x "$arm" "$x"
    for b in emoedge emoedge-firmware-host; do
        python3 -c 'import sys; b=open(sys.argv[1],"rb").read(20); sys.exit(0 if b[18]==0xB7 else 1)' "$x/usr/bin/$b" \
            && ok "$b in the arm64 .deb is an AArch64 ELF" || fail "$b is not AArch64"
    done
    qemu-aarch64-static -L /usr/aarch64-linux-gnu "$x/usr/bin/emoedge" --version | head -1 | grep -q . \
        && ok "its emoedge runs under qemu-aarch64: $(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$x/usr/bin/emoedge" --version | head -1)" \
        || fail "the arm64 emoedge does not run under qemu"
else
    fail "no arm64 .deb in target/debian (bash .ci/deb arm64)"
fi
exit $status
