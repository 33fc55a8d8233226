#!/usr/bin/env bash
# Turn a fresh Raspberry Pi (Raspberry Pi OS Lite 64-bit, Debian bookworm) into a fabpass node.
#
#   sudo bash tools/install-node.sh [--config FILE] [--upgrade]
#
# Run from a copy of the project (a checkout or an unpacked release). It installs: the system
# packages the node needs (apt), a venv at /opt/fabpass with fabpass[pi] (/opt/fabpass/bin/fabpass,
# linked as /usr/local/bin/fabpass), the `fabpass` system user in the spi, gpio and input groups,
# SPI switched on where raspi-config exists, the config at /etc/fabpass/node.toml (owner fabpass,
# mode 600) and the unit fabpass-node.service (enabled, with its watchdog).
#
# Idempotent: a second run changes no file. A copy of a different version is installed only with
# --upgrade, which upgrades the venv, then waits until no session runs on the machine before it
# restarts the node (a running session is never cut). See docs/install-pi.md.
#
# Settings for unusual set-ups (environment): FABPASS_MIN_DISK_MB (free space needed, default
# 700), FABPASS_NET_HOSTS (what must be reachable, default "pypi.org:443 deb.debian.org:80"),
# FABPASS_IDLE_POLL_S (default 5) and FABPASS_IDLE_MAX_S (default 43200) for --upgrade.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/fabpass
ETC=/etc/fabpass
CONF=$ETC/node.toml
UNIT=fabpass-node.service
UNIT_DIR=/etc/systemd/system
WANTS=$UNIT_DIR/multi-user.target.wants
STAMP=$PREFIX/.fabpass-source
EXTRAS=pi
MIN_DISK_MB=${FABPASS_MIN_DISK_MB:-700}
NET_HOSTS=${FABPASS_NET_HOSTS:-pypi.org:443 deb.debian.org:80}
IDLE_POLL_S=${FABPASS_IDLE_POLL_S:-5}
IDLE_MAX_S=${FABPASS_IDLE_MAX_S:-43200}
APT_PACKAGES=(python3 python3-venv python3-spidev python3-evdev systemd-timesyncd)

CONFIG=""
UPGRADE=0
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --config) [ $# -ge 2 ] || { usage >&2; exit 2; }; CONFIG=$2; shift 2 ;;
        --config=*) CONFIG=${1#--config=}; shift ;;
        --upgrade) UPGRADE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-node: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

say() { echo "install-node: $*"; }
die() {
    echo "install-node: ERROR: $1" >&2
    shift
    local line
    for line in "$@"; do echo "    $line" >&2; done
    exit 1
}

# ------------------------------------------------------------------ checks before any change
[ "$(id -u)" = 0 ] || die "this must run as root." "Run it again with sudo: sudo bash $0 $*"
[ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/controller" ] \
    || die "$SRC is not a copy of the fabpass project." \
           "Run the script from the folder you downloaded: cd fabpass && sudo bash tools/install-node.sh"

arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
case "$arch" in
    arm64|aarch64|amd64|x86_64) ;;
    armhf|armel|armv7l|armv6l|i386|i686)
        die "this is a 32-bit system ($arch); fabpass needs a 64-bit one." \
            "Write the card again with \"Raspberry Pi OS Lite (64-bit)\" in Raspberry Pi Imager" \
            "(docs/install-pi.md, step 1). A Pi 3B+, 4, 5 or Zero 2 W can run it." ;;
    *) die "this system's architecture ($arch) is not supported: use Raspberry Pi OS Lite (64-bit)." ;;
esac

if [ -n "$CONFIG" ]; then
    [ -f "$CONFIG" ] || die "the config file $CONFIG does not exist." \
        "Make it on the server: fabpass node provision NODE --machine MACHINE --out NODE.toml," \
        "copy it to this Pi, then: sudo bash tools/install-node.sh --config NODE.toml"
    [ -r "$CONFIG" ] || die "the config file $CONFIG cannot be read."
    CONFIG=$(realpath "$CONFIG")
elif [ ! -f "$CONF" ]; then
    die "no node config: this Pi has no $CONF yet and no --config FILE was given." \
        "Make it on the server: fabpass node provision NODE --machine MACHINE --out NODE.toml," \
        "copy it to this Pi, then: sudo bash tools/install-node.sh --config NODE.toml"
fi

fingerprint() {
    # what the venv was built from: the package's files and the extras (no build leftovers)
    (cd "$SRC" && find pyproject.toml README.md fabpass protocol badge_reader controller server \
        firmware_config -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
SOURCE="$(fingerprint) [$EXTRAS]"
installed_source=$(cat "$STAMP" 2>/dev/null || true)
need_venv=0
if [ ! -x "$PREFIX/bin/fabpass" ] || [ -z "$installed_source" ]; then
    need_venv=1
elif [ "$UPGRADE" = 1 ]; then
    need_venv=1
fi
missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing_apt+=("$pkg")
done

if [ "$need_venv" = 1 ]; then
    probe=$PREFIX
    while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
    free_mb=$(df -Pm "$probe" | awk 'NR == 2 {print $4}')
    if [ "$free_mb" -lt "$MIN_DISK_MB" ]; then
        die "not enough free disk space: ${free_mb} MB free on $probe, the install needs about ${MIN_DISK_MB} MB." \
            "Free some space (sudo apt clean; sudo journalctl --vacuum-size=50M) or use a larger card (8 GB or more)."
    fi
fi
if [ "$need_venv" = 1 ] || [ ${#missing_apt[@]} -gt 0 ]; then
    if [ -z "${https_proxy:-}${HTTPS_PROXY:-}" ]; then
        for hp in $NET_HOSTS; do
            host=${hp%:*} port=${hp##*:}
            if ! timeout 10 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
                die "no network: this Pi cannot reach $host (port $port), and the install downloads packages from it." \
                    "Check the network cable or the Wi-Fi (sudo raspi-config, System Options), then: ping -c 3 $host"
            fi
        done
    fi
fi

# ------------------------------------------------------------------ system packages
if [ ${#missing_apt[@]} -gt 0 ]; then
    say "installing system packages: ${missing_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Raspberry Pi OS has gpiozero's pin library as a package; elsewhere pip brings the wheel
    if apt-cache show python3-lgpio >/dev/null 2>&1; then missing_apt+=(python3-lgpio); fi
    apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
fi

# ------------------------------------------------------------------ user and groups
if ! id -u fabpass >/dev/null 2>&1; then
    say "creating the system user fabpass"
    useradd --system --user-group --home-dir /var/lib/fabpass --no-create-home \
        --shell /usr/sbin/nologin --comment "fabpass node" fabpass
fi
for group in gpio spi input; do
    if ! getent group "$group" >/dev/null; then
        say "creating the group $group (this system has none)"
        groupadd --system "$group"
    fi
    if ! id -nG fabpass | tr ' ' '\n' | grep -qx "$group"; then
        usermod -aG "$group" fabpass
    fi
done
if [ ! -d /var/lib/fabpass ]; then
    install -d -m 0700 -o fabpass -g fabpass /var/lib/fabpass
fi
# Raspberry Pi OS gives /dev/gpiochip* to gpio and /dev/spidev* to spi; plain Debian does not
RULES=/etc/udev/rules.d/60-fabpass-gpio-spi.rules
if ! grep -qs gpiochip /usr/lib/udev/rules.d/* /lib/udev/rules.d/* || [ -f "$RULES" ]; then
    rules='SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
SUBSYSTEM=="spidev", GROUP="spi", MODE="0660"'
    if [ "$(cat "$RULES" 2>/dev/null)" != "$rules" ]; then
        mkdir -p "$(dirname "$RULES")"
        printf '%s\n' "$rules" >"$RULES"
    fi
fi

# ------------------------------------------------------------------ the venv
upgraded=0
if [ "$need_venv" = 0 ] && [ "$installed_source" != "$SOURCE" ]; then
    say "$PREFIX holds another copy of fabpass ($("$PREFIX/bin/fabpass" --version 2>/dev/null || echo '?'));" \
        "kept as it is. To install this copy: sudo bash $0 --upgrade"
fi
if [ "$need_venv" = 1 ]; then
    if [ ! -x "$PREFIX/bin/python" ]; then
        say "creating the venv $PREFIX"
        # the system's spidev, evdev (and lgpio on Raspberry Pi OS) are used, not compiled again
        python3 -m venv --system-site-packages "$PREFIX"
    fi
    build=$(mktemp -d)
    # pip builds in the tree it is given: a copy keeps root-owned build files out of $SRC
    (cd "$SRC" && cp -a pyproject.toml README.md fabpass protocol badge_reader controller \
        server firmware_config "$build/")
    find "$build" -name __pycache__ -prune -exec rm -rf {} +
    say "installing fabpass[$EXTRAS] into $PREFIX (a few minutes on a Pi)"
    pip_args=(install --quiet --no-warn-script-location)
    # only-if-needed: a dependency moves when the new fabpass needs it to; the system's
    # spidev and evdev are never replaced by versions pip would have to compile
    [ "$UPGRADE" = 1 ] && pip_args+=(--upgrade --upgrade-strategy only-if-needed)
    if ! "$PREFIX/bin/pip" "${pip_args[@]}" "$build[$EXTRAS]"; then
        rm -rf "$build"
        die "pip could not install fabpass (its messages are above)." \
            "If it failed while downloading, check the network and run the same command again."
    fi
    rm -rf "$build"
    if [ "$installed_source" != "$SOURCE" ] || [ "$UPGRADE" = 1 ]; then upgraded=1; fi
    if [ "$installed_source" != "$SOURCE" ]; then printf '%s\n' "$SOURCE" >"$STAMP"; fi
fi
if [ "$(readlink /usr/local/bin/fabpass 2>/dev/null)" != "$PREFIX/bin/fabpass" ]; then
    ln -sfn "$PREFIX/bin/fabpass" /usr/local/bin/fabpass
fi
say "$("$PREFIX/bin/fabpass" --version)"

# ------------------------------------------------------------------ the config
config_changed=0
if [ -n "$CONFIG" ]; then
    if ! problems=$("$PREFIX/bin/fabpass" config check "$CONFIG" 2>&1); then
        die "the config $CONFIG has problems; nothing was installed from it:" \
            "$problems" "Fix these lines (docs/configuration.md), or provision the node again on the server."
    fi
fi
if [ ! -d "$ETC" ]; then
    install -d -m 0750 -o root -g fabpass "$ETC"
fi
if [ -n "$CONFIG" ] && [ "$CONFIG" != "$CONF" ] && ! cmp -s "$CONFIG" "$CONF"; then
    install -m 0600 -o fabpass -g fabpass "$CONFIG" "$CONF"
    say "config installed: $CONF"
    config_changed=1
fi
[ "$(stat -c %U:%G "$CONF")" = fabpass:fabpass ] || chown fabpass:fabpass "$CONF"
[ "$(stat -c %a "$CONF")" = 600 ] || chmod 0600 "$CONF"

# ------------------------------------------------------------------ the unit
unit_src=$("$PREFIX/bin/python" -c 'import firmware_config, pathlib; print(pathlib.Path(firmware_config.__file__).parent / "systemd" / "fabpass-node.service")')
unit_changed=0
if ! cmp -s "$unit_src" "$UNIT_DIR/$UNIT"; then
    install -D -m 0644 "$unit_src" "$UNIT_DIR/$UNIT"
    unit_changed=1
fi
for old in "$UNIT_DIR"/fabpass-node@*.service "$UNIT_DIR"/multi-user.target.wants/fabpass-node@*.service; do
    [ -e "$old" ] || [ -L "$old" ] || continue
    say "note: $old is from an older install (one unit per node). Now that this Pi runs" \
        "fabpass-node.service, stop and remove it: sudo systemctl disable --now $(basename "$old")"
done
systemd_running=0
[ -d /run/systemd/system ] && systemd_running=1
if [ "$systemd_running" = 1 ]; then
    [ "$unit_changed" = 1 ] && systemctl daemon-reload
    systemctl is-enabled --quiet "$UNIT" 2>/dev/null || systemctl enable --quiet "$UNIT"
elif [ "$(readlink "$WANTS/$UNIT" 2>/dev/null)" != "$UNIT_DIR/$UNIT" ]; then
    # no systemd running (a chroot, a container): the link `systemctl enable` would make
    mkdir -p "$WANTS"
    ln -sfn "$UNIT_DIR/$UNIT" "$WANTS/$UNIT"
fi

# ------------------------------------------------------------------ SPI
spi_reboot=0
if command -v raspi-config >/dev/null; then
    if [ "$(raspi-config nonint get_spi)" != 0 ]; then
        say "switching SPI on (raspi-config nonint do_spi 0)"
        raspi-config nonint do_spi 0
        spi_reboot=1
    fi
else
    say "SPI: raspi-config is not on this system (not Raspberry Pi OS), so SPI was not switched on." \
        "On a Raspberry Pi, add dtparam=spi=on to /boot/firmware/config.txt and reboot."
fi

# ------------------------------------------------------------------ (re)start without cutting a session
session_running() {
    "$PREFIX/bin/python" -c 'import sys; from firmware_config.doctor import session_running as s; sys.exit(0 if s(sys.argv[1]) else 1)' "$CONF"
}
wait_idle() {
    local waited=0
    if session_running; then
        say "a session is running on the machine: waiting until it ends before restarting the" \
            "node (checked every ${IDLE_POLL_S} s; Ctrl-C stops waiting, nothing is cut)"
        while session_running; do
            if [ "$waited" -ge "$IDLE_MAX_S" ]; then
                die "a session still runs after ${IDLE_MAX_S} s: the node was not restarted." \
                    "The new files are installed; they take effect at the next restart (sudo systemctl restart $UNIT)."
            fi
            sleep "$IDLE_POLL_S"
            waited=$((waited + IDLE_POLL_S))
        done
        say "no session runs any more"
    fi
}
changed=$((upgraded + config_changed + unit_changed))
if [ "$systemd_running" = 1 ] && [ "$spi_reboot" = 0 ]; then
    if ! systemctl is-active --quiet "$UNIT"; then
        systemctl start "$UNIT"
        say "started $UNIT"
    elif [ "$changed" -gt 0 ]; then
        wait_idle
        systemctl restart "$UNIT"
        say "restarted $UNIT"
    fi
elif [ "$systemd_running" = 0 ]; then
    [ "$changed" -gt 0 ] && wait_idle
    say "systemd is not running here (a chroot or a container): $UNIT is enabled and starts at the next boot"
fi
if [ "$spi_reboot" = 1 ]; then
    say "done. Reboot now (sudo reboot): SPI is on from the next boot, and the node starts then."
else
    say "done. Check it: sudo fabpass node doctor --config $CONF"
fi
