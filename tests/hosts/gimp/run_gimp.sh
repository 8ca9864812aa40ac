#!/usr/bin/env bash
# Run a Python batch script in the chroot's headless GIMP 3 (gimp-console-3.0).
#
#   run_gimp.sh ROOT PROFILE BATCH [--bind PATH]... [--env NAME=VALUE]...
#
# ROOT     the chroot made by setup_chroot.sh
# PROFILE  host folder used as $HOME inside (GIMP's profile: $PROFILE/.config/GIMP/3.0);
#          it is bind-mounted at the same path
# BATCH    python-fu-eval script, fed on stdin
# --bind   host file/folder made visible at the same path inside (e.g. the engine venv and the
#          Python it was made from); --env passes a variable to GIMP and so to the plug-in.
# --accept-dialog TITLE  run under Xvfb and press Return in the first window named TITLE
#          (the window's name is written to $PROFILE/dialog-seen.txt): drives a plug-in dialog.
# --dialog-key KEY  press KEY there instead of Return (e.g. Escape: cancel the dialog).
# --gui    run GIMP's full interface (gimp-3.0) under Xvfb instead of gimp-console-3.0, so that the
#          batch script can show an image and press keys in its window (xdotool; e.g. Ctrl+Z).
# The mounts live in a private mount namespace and are also unmounted by a trap.
# Exit status: GIMP's (0 batch succeeded, 64 batch raised), 124 on timeout (SMILE_GIMP_TIMEOUT, 300 s).
set -euo pipefail

if [[ -z "${SMILE_IN_NAMESPACE:-}" ]]; then
    exec env SMILE_IN_NAMESPACE=1 unshare --mount --propagation private -- "$0" "$@"
fi

ROOT="$1" PROFILE="$2" BATCH="$3"
shift 3
BINDS=("$PROFILE")
ENVS=()
DIALOG=""
GUI=""
KEY=Return
while (($#)); do
    case "$1" in
        --bind) BINDS+=("$2"); shift 2 ;;
        --env) ENVS+=("$2"); shift 2 ;;
        --accept-dialog) DIALOG="$2"; shift 2 ;;
        --gui) GUI=1; shift ;;
        --dialog-key) KEY="$2"; shift 2 ;;
        *) echo "run_gimp.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

MOUNTED=()
CREATED=()  # mount points this run made inside the chroot (removed again when empty)
cleanup() {
    local i
    for ((i=${#MOUNTED[@]}-1; i>=0; i--)); do
        umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
    for ((i=${#CREATED[@]}-1; i>=0; i--)); do
        if [[ -d "${CREATED[$i]}" ]]; then rmdir "${CREATED[$i]}" 2>/dev/null || true
        elif [[ -f "${CREATED[$i]}" && ! -s "${CREATED[$i]}" ]]; then rm -f "${CREATED[$i]}"; fi
    done
}
trap cleanup EXIT

mount -t proc proc "$ROOT/proc"; MOUNTED+=("$ROOT/proc")
mount -t sysfs sysfs "$ROOT/sys"; MOUNTED+=("$ROOT/sys")
mount --bind /dev "$ROOT/dev"; MOUNTED+=("$ROOT/dev")
mount --bind /dev/pts "$ROOT/dev/pts"; MOUNTED+=("$ROOT/dev/pts")
for path in "${BINDS[@]}"; do
    target="$ROOT$path"
    [[ -e "$target" ]] || CREATED+=("$target")
    if [[ -d "$path" ]]; then
        mkdir -p "$target"
    else
        mkdir -p "$(dirname "$target")"; [[ -e "$target" ]] || touch "$target"
    fi
    mount --bind "$path" "$target"; MOUNTED+=("$target")
done

# A fresh GIMP profile first queries all ~100 bundled plug-ins (~20 s): do that once in a seed
# profile inside the chroot and start every new profile from a copy of it.
SEED=/var/lib/smile-gimp-seed
if [[ ! -f "$ROOT$SEED/.config/GIMP/3.0/pluginrc" ]]; then
    (
        flock 8
        if [[ ! -f "$ROOT$SEED/.config/GIMP/3.0/pluginrc" ]]; then
            mkdir -p "$ROOT$SEED"
            echo "pass" | timeout 300 chroot "$ROOT" /usr/bin/env -i HOME="$SEED" PATH=/usr/bin:/bin LANG=C.UTF-8 \
                gimp-console-3.0 -i -n -c --batch-interpreter=python-fu-eval -b - --quit >/dev/null 2>&1 || true
        fi
    ) 8>"$ROOT/var/lib/smile-gimp-seed.lock"
fi
if [[ -f "$ROOT$SEED/.config/GIMP/3.0/pluginrc" && ! -f "$PROFILE/.config/GIMP/3.0/pluginrc" ]]; then
    mkdir -p "$PROFILE/.config" "$PROFILE/.cache"
    cp -rn "$ROOT$SEED/.config/GIMP" "$PROFILE/.config/"
    [[ -d "$ROOT$SEED/.cache" ]] && cp -rn "$ROOT$SEED/.cache/." "$PROFILE/.cache/"
fi

# Runs inside the chroot: $1 dialog title ("" for none), $2 "1" for the full interface, $3 the key
# to press in the dialog; the batch script comes on stdin.
INNER='
if [[ -n "$1$2" ]]; then
    rm -f "$HOME/.xvfb-display" "$HOME/dialog-seen.txt"
    # -noreset: a server left by its last client resets, and a client that comes meanwhile is
    # turned away; xdotool comes and goes every half second
    Xvfb -displayfd 5 -screen 0 1280x900x24 -nolisten tcp -noreset 5>"$HOME/.xvfb-display" 2>/dev/null &
    xvfb=$!
    for _ in $(seq 100); do [[ -s "$HOME/.xvfb-display" ]] && break; sleep 0.1; done
    export DISPLAY=":$(head -n1 "$HOME/.xvfb-display")"
fi
if [[ -n "$1" ]]; then
    (
        for _ in $(seq 240); do
            window=$(xdotool search --name "^$1\$" 2>/dev/null | tail -n1)
            if [[ -n "$window" ]]; then
                sleep 1
                xdotool getwindowname "$window" > "$HOME/dialog-seen.txt"
                xdotool windowfocus "$window" 2>/dev/null
                xdotool key --window "$window" "$3"
                exit 0
            fi
            sleep 0.5
        done
    ) &
fi
if [[ -n "$2" ]]; then
    gimp-3.0 -n --no-splash --batch-interpreter=python-fu-eval -b - --quit
else
    gimp-console-3.0 -i -n -c --batch-interpreter=python-fu-eval -b - --quit
fi
status=$?
[[ -n "$1$2" ]] && kill "$xvfb" 2>/dev/null
exit $status
'

set +e
timeout "${SMILE_GIMP_TIMEOUT:-300}" chroot "$ROOT" /usr/bin/env -i \
    HOME="$PROFILE" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "${ENVS[@]}" \
    bash -c "$INNER" inner "$DIALOG" "$GUI" "$KEY" < "$BATCH"
status=$?
set -e
exit $status
