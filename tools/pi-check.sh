#!/usr/bin/env bash
# The Raspberry Pi install path, checked on arm64 without a Pi (issue 22, docs/install-pi.md).
#
# Builds a Debian bookworm arm64 root with debootstrap (run under qemu-user through binfmt_misc),
# copies this checkout in, and inside it (chroot): runs tools/install-node.sh, then
# `fabpass --version`, `fabpass config check` on a provisioned config, `fabpass node doctor`,
# `systemd-analyze verify` of the unit, a second install run that must change no file, the
# installer's plain-word refusals, and `fabpass node --simulate` against a broker on the host's
# loopback (the chroot shares the host's network): tap -> session.started.
#
# Usage: sudo bash tools/pi-check.sh [--mqtt-url mqtt://127.0.0.1:PORT] [--node NODE]
#                                    [--uid UID] [--cache DIR] [--keep]
#   --mqtt-url  a broker the caller watches (tests/pi does, and publishes the node's access list
#               beforehand); without it the check starts a private Mosquitto, publishes the list
#               and waits for session.started itself (mosquitto, mosquitto_pub/_sub needed).
#   --node      the node's name (default pi-1; site lab, machine laser), --uid the badge tapped.
#   --cache     where the base root tarball is kept and reused (default
#               ${FABPASS_PI_CACHE:-/var/cache/fabpass-pi-check}); delete it to rebuild.
#   --keep      leave the work root in place (its path is printed) for a look afterwards.
# Needs root (debootstrap, chroot, mounts) and network access to deb.debian.org and PyPI.
# Every phase prints "pi-check: <phase> <seconds> s"; the whole run is bounded (PI_CHECK_BUDGET_S,
# default 900 s): a phase that would pass it is killed and the check fails.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MQTT_URL=""
UID_TAP="04A1B2C3D4E5F6"
CACHE=${FABPASS_PI_CACHE:-/var/cache/fabpass-pi-check}
KEEP=0
SUITE=bookworm
MIRROR=${FABPASS_PI_MIRROR:-http://deb.debian.org/debian}
# what Raspberry Pi OS Lite already has that a minbase root lacks (the installer adds the rest)
BASE_PACKAGES=python3,ca-certificates,sudo,systemd,systemd-sysv,procps,iproute2,util-linux
BUDGET_S=${PI_CHECK_BUDGET_S:-900}
NODE=pi-1
SITE=lab
MACHINE=laser

while [ $# -gt 0 ]; do
    case "$1" in
        --mqtt-url) MQTT_URL=$2; shift 2 ;;
        --uid) UID_TAP=$2; shift 2 ;;
        --node) NODE=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "pi-check: unknown argument $1" >&2; exit 2 ;;
    esac
done

START=$SECONDS
say() { echo "pi-check: $*"; }
fail() { echo "pi-check: FAILED: $*" >&2; exit 1; }
left() { echo $((BUDGET_S - (SECONDS - START))); }
# phase NAME CMD...: run CMD bounded by what is left of the budget, print its duration
phase() {
    local name=$1 t0=$SECONDS budget
    shift
    budget=$(left)
    [ "$budget" -gt 0 ] || fail "out of time before $name (budget ${BUDGET_S} s)"
    # functions and variables reach the bounded shell through the environment (export -f)
    if ! timeout --kill-after=10 "$budget" bash -c '"$@"' phase "$@"; then
        fail "$name (after $((SECONDS - t0)) s)"
    fi
    say "$name $((SECONDS - t0)) s"
}

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, chroot and mounts need it): sudo bash $0"

# ------------------------------------------------------------------ host tools and qemu
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
    || fail "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)"

# ------------------------------------------------------------------ work root and cleanup
WORK=$(mktemp -d /var/tmp/fabpass-pi-check.XXXXXX)
ROOT=$WORK/root
BROKER_PID=""
SUB_PID=""
unmount_all() {
    # innermost first; --lazy only as a last resort so a busy mount never survives the run
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$ROOT/" | sort -r); do
        umount "$m" 2>/dev/null || umount --lazy "$m" 2>/dev/null || true
    done
}
cleanup() {
    local rc=$?
    # what this run started, by pid: the simulated node (it wrote its pid), our broker, listener
    [ -s "$ROOT/tmp/node.pid" ] && kill "$(cat "$ROOT/tmp/node.pid")" 2>/dev/null && sleep 2
    for pid in $SUB_PID $BROKER_PID; do kill "$pid" 2>/dev/null || true; done
    unmount_all
    if findmnt -rn -o TARGET | grep -qF "$ROOT/"; then
        echo "pi-check: mounts left under $ROOT, not removing it" >&2
    elif [ "$KEEP" = 1 ]; then
        say "work root kept: $ROOT"
    else
        rm -rf "$WORK"
    fi
    say "total $((SECONDS - START)) s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_root() {
    mount -t proc proc "$ROOT/proc"
    mount --bind /sys "$ROOT/sys"
    mount --bind /dev "$ROOT/dev"
    mount --bind /dev/pts "$ROOT/dev/pts"
}
# in_root CMD...: run CMD in the arm64 root as root, with a clean environment
in_root() {
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

# ------------------------------------------------------------------ base root (cached)
key=$(printf '%s %s %s' "$SUITE" "$MIRROR" "$BASE_PACKAGES" | sha256sum | cut -c1-12)
TARBALL=$CACHE/$SUITE-arm64-$key.tar
build_base() {
    mkdir -p "$ROOT"
    debootstrap --arch=arm64 --variant=minbase --include="$BASE_PACKAGES" \
        "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; return 1; }
    rm -rf "$ROOT/var/cache/apt/archives/"*.deb
    mkdir -p "$CACHE"
    tar -C "$ROOT" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
}
export ROOT WORK CACHE TARBALL SUITE MIRROR BASE_PACKAGES
export -f build_base in_root say
if [ -f "$TARBALL" ]; then
    mkdir -p "$ROOT"
    phase "base root from cache ($TARBALL)" tar -C "$ROOT" -xf "$TARBALL"
else
    phase "debootstrap $SUITE arm64" build_base
fi
[ "$(chroot "$ROOT" /usr/bin/dpkg --print-architecture)" = arm64 ] || fail "the root is not arm64"
# the host's network settings and certificate authorities (a TLS-inspecting proxy's CA included)
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/usr/local/share/ca-certificates/host-bundle.crt"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
mount_root

if [ "${PI_CHECK_BASE_ONLY:-0}" = 1 ]; then
    say "base root ready (PI_CHECK_BASE_ONLY=1)"
    exit 0
fi

# ------------------------------------------------------------------ the broker and the config
HOST_PY=${FABPASS_HOST_PYTHON:-$SRC/.venv/bin/python}
[ -x "$HOST_PY" ] || fail "no host Python with fabpass at $HOST_PY (bash tools/bootstrap.sh test)"
TOPIC=fabpass/v1/$SITE/$NODE
if [ -z "$MQTT_URL" ]; then
    # our own broker, access list and listener (tests/pi brings its own instead)
    port=$("$HOST_PY" -c 'from fabpass.broker import free_port; print(free_port())')
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" \
        >"$WORK/mosquitto.conf"
    mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    MQTT_URL=mqtt://127.0.0.1:$port
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    "$HOST_PY" - "$NODE" "$SITE" "$MACHINE" "$UID_TAP" >"$WORK/acl.json" <<'PY'
import json, sys
from datetime import timedelta
from protocol import format_ts, utcnow
node, site, machine, uid = sys.argv[1:]
now = utcnow()
print(json.dumps({"v": 1, "version": 1, "site": site, "node": node, "machine": machine,
                  "issued": format_ts(now), "valid_until": format_ts(now + timedelta(days=1)),
                  "locked": False, "policy": {},
                  "badges": [{"uid": uid, "member": 1, "role": "user", "until": None}]}))
PY
    mosquitto_pub -L "$MQTT_URL/$TOPIC/acl" -r -q 1 -f "$WORK/acl.json"
    mosquitto_sub -L "$MQTT_URL/$TOPIC/event" -q 1 -W 900 >"$WORK/events.log" 2>&1 &
    SUB_PID=$!
fi
say "broker $MQTT_URL"
# a config made the way a real one is: `fabpass node provision` on a (throwaway) server
server_env=(env -i PATH="$PATH" FABPASS_DATABASE_URL="sqlite:///$WORK/server.db" FABPASS_DATA_DIR="$WORK")
"${server_env[@]}" "$HOST_PY" -m fabpass db upgrade >"$WORK/provision.log" 2>&1 \
    || { cat "$WORK/provision.log" >&2; fail "creating the throwaway server database"; }
"${server_env[@]}" "$HOST_PY" -c 'import sys
from server.cli.support import database_session
from server.services import create_site
with database_session(commit=True) as db:
    create_site(db, sys.argv[1], "Pi check lab", actor="pi-check")' "$SITE" >>"$WORK/provision.log" 2>&1 \
    || { cat "$WORK/provision.log" >&2; fail "creating the site $SITE on the host"; }
env -i PATH="$PATH" FABPASS_DATABASE_URL="sqlite:///$WORK/server.db" FABPASS_DATA_DIR="$WORK" \
    "$HOST_PY" -m fabpass node provision "$NODE" --machine "$MACHINE" --site "$SITE" \
    --broker-url "$MQTT_URL" --out "$WORK/$NODE.toml" >>"$WORK/provision.log" 2>&1 \
    || { cat "$WORK/provision.log" >&2; fail "provisioning $NODE on the host"; }

# ------------------------------------------------------------------ the checkout, as copied to a Pi
PI_HOME=$ROOT/home/pi
mkdir -p "$PI_HOME/fabpass"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z --cached --others --exclude-standard \
        | (cd "$SRC" && tar --null --ignore-failed-read -T - -cf -) | tar -C "$PI_HOME/fabpass" -xf -
else
    tar -C "$SRC" --exclude=.venv --exclude=.git -cf - . | tar -C "$PI_HOME/fabpass" -xf -
fi
cp "$WORK/$NODE.toml" "$PI_HOME/$NODE.toml"
INSTALL="bash /home/pi/fabpass/tools/install-node.sh"

# expect_refusal NAME PATTERN CMD...: CMD must fail, say PATTERN, and install nothing
expect_refusal() {
    local name=$1 pattern=$2 out
    shift 2
    if out=$("$@" 2>&1); then
        echo "$out" >&2; echo "refusal '$name': the installer succeeded" >&2; return 1
    fi
    if ! grep -q -- "$pattern" <<<"$out"; then
        echo "$out" >&2; echo "refusal '$name': no '$pattern' in its message" >&2; return 1
    fi
    if [ -e "$ROOT/opt/fabpass" ] || grep -q '^fabpass:' "$ROOT/etc/passwd"; then
        echo "refusal '$name' changed the system" >&2; return 1
    fi
    echo "$out" | sed 's/^/    /'
}
refusals() {
    expect_refusal "missing config" "no node config" in_root $INSTALL
    expect_refusal "missing config file" "does not exist" in_root $INSTALL --config /home/pi/nope.toml
    # a 32-bit userland (armhf Raspberry Pi OS on a 64-bit kernel): dpkg is what tells
    mkdir -p "$ROOT/tmp/armhf"
    printf '#!/bin/sh\n[ "$1" = --print-architecture ] && { echo armhf; exit 0; }\nexec /usr/bin/dpkg "$@"\n' \
        >"$ROOT/tmp/armhf/dpkg"
    chmod +x "$ROOT/tmp/armhf/dpkg"
    expect_refusal "32-bit" "32-bit system (armhf)" chroot "$ROOT" /usr/bin/env -i \
        PATH=/tmp/armhf:/usr/sbin:/usr/bin:/sbin:/bin $INSTALL --config /home/pi/$NODE.toml
    expect_refusal "disk" "not enough free disk space" in_root /usr/bin/env \
        FABPASS_MIN_DISK_MB=100000000 $INSTALL --config /home/pi/$NODE.toml
    # no network at all: a network namespace of its own, with only a loopback that is down
    expect_refusal "network" "no network" unshare --net chroot "$ROOT" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin $INSTALL --config /home/pi/$NODE.toml
}
export INSTALL NODE SITE PI_HOME
export -f expect_refusal refusals
phase "refusals (missing config, 32-bit, disk, network)" refusals

phase "install" in_root $INSTALL --config /home/pi/$NODE.toml

# ------------------------------------------------------------------ what a user runs afterwards
in_root fabpass --version | grep -q "version" || fail "fabpass --version"
say "$(in_root fabpass --version)"
# the node's pin and bus libraries load on arm64 (apt's spidev/evdev, lgpio's wheel from PyPI)
in_root /opt/fabpass/bin/python -c 'import evdev, gpiozero, lgpio, spidev' \
    || fail "the venv cannot import the node's hardware libraries"
out=$(in_root fabpass config check /etc/fabpass/node.toml) || fail "config check: $out"
say "$out"
mode=$(chroot "$ROOT" stat -c '%U %a' /etc/fabpass/node.toml)
[ "$mode" = "fabpass 600" ] || fail "/etc/fabpass/node.toml is $mode, not fabpass 600"
[ "$(readlink "$ROOT/etc/systemd/system/multi-user.target.wants/fabpass-node.service")" \
    = /etc/systemd/system/fabpass-node.service ] || fail "fabpass-node.service is not enabled"
id_out=$(chroot "$ROOT" id -nG fabpass)
for g in gpio spi; do grep -qw "$g" <<<"$id_out" || fail "fabpass is not in group $g ($id_out)"; done

doctor=$(in_root sh -c 'cd /var/lib/fabpass && fabpass node doctor --config /etc/fabpass/node.toml --yes' 2>&1) \
    && fail "the doctor passed without SPI and GPIO:\n$doctor"
echo "$doctor" | sed 's/^/    /'
for want in "✗ spi: no SPI bus here" "✗ gpio: no GPIO here" "- reader: not tested" \
            "- relay: not tested" "✓ broker: connected"; do
    grep -qF -- "$want" <<<"$doctor" || fail "the doctor did not say '$want'"
done
say "doctor: plain words about SPI and GPIO"

verify=$(in_root systemd-analyze verify /etc/systemd/system/fabpass-node.service 2>&1) || true
problems=$(grep -i fabpass <<<"$verify" || true)
[ -z "$problems" ] || fail "systemd-analyze verify: $problems"
say "systemd-analyze verify: clean${verify:+ (other output: $(tr '\n' ' ' <<<"$verify"))}"

# ------------------------------------------------------------------ a second run changes no file
snapshot() {
    (cd "$ROOT" && find opt/fabpass etc/fabpass etc/systemd/system etc/udev/rules.d var/lib/fabpass \
        usr/local/bin/fabpass etc/passwd etc/group etc/shadow etc/gshadow \
        -printf '%p %y %m %U:%G %s %T@ %l\n' 2>/dev/null | LC_ALL=C sort)
}
snapshot >"$WORK/before"
second_run() {
    in_root $INSTALL --config "/home/pi/$NODE.toml" >"$WORK/second.log" 2>&1 \
        || { cat "$WORK/second.log" >&2; return 1; }
}
export -f second_run
phase "second install run" second_run
snapshot >"$WORK/after"
if ! diff -u "$WORK/before" "$WORK/after" >"$WORK/snapshot.diff"; then
    cat "$WORK/snapshot.diff" >&2
    fail "the second install run changed files"
fi
! grep -q "installing" "$WORK/second.log" || fail "the second run installed something: $(cat "$WORK/second.log")"
say "second run: no file changed ($(wc -l <"$WORK/before") paths compared)"

# ------------------------------------------------------------------ the node, simulated, on the broker
sim_and_upgrade() {
    local fifo=$ROOT/tmp/sim.in log=$WORK/node.log node_pid up_pid
    mkfifo "$fifo"
    exec 7<>"$fifo"
    # the node writes its own pid (one pid namespace with the host) so only it is stopped
    in_root runuser -u fabpass -- sh -c 'echo $$ >/tmp/node.pid; cd /var/lib/fabpass && exec fabpass node --config /etc/fabpass/node.toml --simulate' \
        <&7 >"$log" 2>&1 &
    node_pid=$!
    wait_log() {  # wait_log FILE PATTERN SECONDS [PID]: give up early once PID has exited
        local i
        for i in $(seq $(($3 * 5))); do
            grep -qE "$2" "$1" && return 0
            if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then break; fi
            sleep 0.2
        done
        echo "no '$2' in $1 within $3 s:" >&2; tail -n 40 "$1" >&2; return 1
    }
    wait_log "$log" "access list version" 120 "$node_pid"
    echo "tap $UID_TAP" >&7
    wait_log "$log" "session .* started: badge $UID_TAP" 60
    if [ -f "$WORK/events.log" ]; then wait_log "$WORK/events.log" '"session.started"' 60; fi
    echo "pi-check: session started on the simulated node"
    # an upgrade now must wait for the session to end
    in_root /usr/bin/env FABPASS_IDLE_POLL_S=1 $INSTALL --upgrade >"$WORK/upgrade.log" 2>&1 &
    up_pid=$!
    wait_log "$WORK/upgrade.log" "a session is running on the machine" 400 "$up_pid"
    sleep 3
    kill -0 "$up_pid" 2>/dev/null || { cat "$WORK/upgrade.log" >&2; echo "the upgrade did not wait" >&2; return 1; }
    grep -q "session .* ended" "$log" && { echo "the upgrade cut the session" >&2; return 1; }
    echo "tap $UID_TAP" >&7   # badge out: the session ends
    wait_log "$log" "session .* ended|badge_out" 30 || true
    wait "$up_pid" || { cat "$WORK/upgrade.log" >&2; echo "the upgrade failed" >&2; return 1; }
    grep -q "no session runs any more" "$WORK/upgrade.log"
    sed 's/^/    /' "$WORK/upgrade.log"
    kill -TERM "$(cat "$ROOT/tmp/node.pid")" 2>/dev/null || true
    wait "$node_pid" || true
    exec 7>&-
}
export UID_TAP
export -f sim_and_upgrade
phase "simulated node (tap -> session.started) and --upgrade waiting for it" sim_and_upgrade
say "ok"
