#!/usr/bin/env bash
# Build (once) a Debian 13 "trixie" chroot with GIMP 3.0 and its Python plug-in support
# (plus Xvfb and xdotool, to drive the plug-in's dialog headless).
#
#   tests/hosts/gimp/setup_chroot.sh            # prints the chroot's root folder on stdout
#
# Idempotent: a finished chroot carries the marker file .smile-gimp-ready holding its package
# list; it is reused as is, or topped up when the list below grew.
# Location: ${SMILE_HOST_CACHE:-/var/cache/smile-hosts}/gimp-trixie (~750 MB; ~3 min to build).
# Needs root and Debian's archive (debootstrap is apt-installed when missing).
# Mirror: $SMILE_DEBIAN_MIRROR, else the first URI in /etc/apt/sources.list.d/debian.sources,
# else http://deb.debian.org/debian.
# Exit status: 0 ready, 2 this machine cannot build a chroot (not root / no debootstrap),
# 1 any other failure.
set -euo pipefail

CACHE="${SMILE_HOST_CACHE:-/var/cache/smile-hosts}"
R="$CACHE/gimp-trixie"
MARK="$R/.smile-gimp-ready"
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 xvfb xdotool"

log() { echo "setup_chroot: $*" >&2; }

if [[ -f "$MARK" && "$(cat "$MARK")" == "$PACKAGES" ]]; then
    echo "$R"
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    log "needs root to build a chroot (running as uid $(id -u))"
    exit 2
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    if ! { "${APT[@]}" install debootstrap >&2 || { "${APT[@]}" update >&2 && "${APT[@]}" install debootstrap >&2; }; }; then
        log "debootstrap is not installed and could not be installed (apt-get install debootstrap)"
        exit 2
    fi
fi

# Mounts below live in a private mount namespace (and a trap unmounts them), so an aborted
# build never leaves /proc or /dev mounted inside the cache.
if [[ -z "${SMILE_IN_NAMESPACE:-}" ]] && command -v unshare >/dev/null 2>&1; then
    exec env SMILE_IN_NAMESPACE=1 unshare --mount --propagation private -- bash "$0" "$@"
fi

MIRROR="${SMILE_DEBIAN_MIRROR:-}"
if [[ -z "$MIRROR" && -r /etc/apt/sources.list.d/debian.sources ]]; then
    MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

mkdir -p "$CACHE"
# One builder at a time; a second caller waits and then finds the marker.
exec 9>"$CACHE/.gimp-trixie.lock"
flock 9
if [[ -f "$MARK" && "$(cat "$MARK")" == "$PACKAGES" ]]; then
    echo "$R"
    exit 0
fi

MOUNTED=()
cleanup() {
    local i
    for ((i=${#MOUNTED[@]}-1; i>=0; i--)); do
        umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT

if [[ ! -x "$R/usr/bin/apt-get" || ! -f "$R/.smile-debootstrap-done" ]]; then
    log "debootstrap trixie into $R from $MIRROR"
    if grep -q " $R/" /proc/mounts; then
        log "something is still mounted under $R; unmount it first"
        exit 1
    fi
    rm -rf "$R"
    mkdir -p "$R"
    debootstrap --variant=minbase trixie "$R" "$MIRROR" >&2
    touch "$R/.smile-debootstrap-done"
fi

mount -t proc proc "$R/proc"; MOUNTED+=("$R/proc")
mount -t sysfs sysfs "$R/sys"; MOUNTED+=("$R/sys")
mount --bind /dev "$R/dev"; MOUNTED+=("$R/dev")
mount --bind /dev/pts "$R/dev/pts"; MOUNTED+=("$R/dev/pts")
cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true

log "installing $PACKAGES"
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
# shellcheck disable=SC2086
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES >&2
chroot "$R" apt-get clean >&2
chroot "$R" test -x /usr/bin/gimp-console-3.0
echo "$PACKAGES" > "$MARK"
log "ready: $R"
echo "$R"
