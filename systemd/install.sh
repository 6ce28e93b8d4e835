#!/usr/bin/env bash
# Installs latentd as a systemd service on Raspberry Pi OS (arm64) or Debian (amd64): system packages,
# realtime limits, the latentd user, a virtualenv in /opt/latentd with a CPU build of torch, the package
# from this checkout, the units, an example venue config and the demo piece. Run it again to upgrade:
# every step is idempotent, and an existing /etc/latentd/venue.toml or jackd.env is never overwritten.
#
#   sudo systemd/install.sh              install or upgrade, enable and (re)start the services
#   sudo systemd/install.sh --no-start   the same, without starting (image builds, chroots)
#   systemd/install.sh --dry-run         print every step, change nothing (no root needed)
#   sudo systemd/install.sh --uninstall  remove everything but the recordings in /var/lib/latentd/recordings
#
# Options: --torch-wheel FILE installs torch from a wheel at hand instead of downloading it.
set -euo pipefail
# Files installed for the service user must be readable by it, whatever the caller's umask.
umask 022

TORCH_VERSION="2.13.0"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
APT_PACKAGES=(jackd2 libjack-jackd2-0 libsndfile1 python3 python3-venv alsa-utils ca-certificates)
PREFIX=/opt/latentd
VENV="$PREFIX/venv"
ETC=/etc/latentd
STATE=/var/lib/latentd
UNIT_DIR=/etc/systemd/system
PIECE_DIR="$STATE/pieces/demo"
# Debian's python (python3-venv), never one from PATH: a python under /root (pyenv) or /usr/local would
# be unreadable for the latentd user or vanish with an upgrade.
SYSTEM_PYTHON=/usr/bin/python3

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$SRC/systemd"

dry_run=0
action=install
start=1
torch_wheel=""

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --uninstall) action=uninstall ;;
        --no-start) start=0 ;;
        --torch-wheel)
            [ $# -ge 2 ] || { echo "install.sh: --torch-wheel needs a file" >&2; exit 2; }
            torch_wheel="$2"
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1' (allowed: --dry-run --uninstall --no-start --torch-wheel FILE)" >&2; exit 2 ;;
    esac
    shift
done

step() { printf '\n== %s\n' "$*"; }

# Print a command, then run it (unless --dry-run).
run() {
    printf '+ %s\n' "$*"
    [ "$dry_run" -eq 1 ] || "$@"
}

# Print a command reading the given text on stdin, then run it (unless --dry-run).
run_with_input() {
    local input="$1"
    shift
    printf "+ echo '%s' | %s\n" "$input" "$*"
    [ "$dry_run" -eq 1 ] || printf '%s\n' "$input" | "$@"
}

# True when systemd runs this machine. A dry run shows the systemctl steps either way.
have_systemd() {
    [ -d /run/systemd/system ] && return 0
    if [ "$dry_run" -eq 1 ]; then
        echo "(systemd is not running here: a real run would skip the systemctl steps)"
        return 0
    fi
    return 1
}

check_host() {
    if [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
        echo "install.sh: run as root (sudo $0), or with --dry-run to see the steps" >&2
        exit 1
    fi
    arch="$(uname -m)"
    case "$arch" in
        x86_64 | aarch64) ;;
        *)
            echo "install.sh: machine '$arch' is not supported: torch has wheels for x86_64 (amd64) and aarch64 (arm64, a 64-bit Raspberry Pi OS) only" >&2
            exit 1
            ;;
    esac
    if [ ! -f "$SRC/pyproject.toml" ] || [ ! -d "$SRC/daemon" ]; then
        echo "install.sh: $SRC does not look like a latentd checkout (no pyproject.toml or daemon/)" >&2
        exit 1
    fi
    if [ -n "$torch_wheel" ] && [ ! -f "$torch_wheel" ]; then
        echo "install.sh: --torch-wheel $torch_wheel: no such file" >&2
        exit 2
    fi
}

install_packages() {
    step "system packages (apt, no recommends)"
    # jackd2 asks in a dialog whether to allow realtime priority for the audio group: answer yes.
    run_with_input "jackd2 jackd/tweak_rt_limits boolean true" debconf-set-selections
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
}

install_limits() {
    step "realtime limits for the audio group (/etc/security/limits.d/audio.conf)"
    # jackd2 writes audio.conf when the debconf answer is yes; a jackd2 installed earlier with "no"
    # has audio.conf.disabled until it is reconfigured. The units set LimitRTPRIO themselves; these
    # limits serve a technician who runs latentd by hand.
    if [ -f /etc/security/limits.d/audio.conf ] && grep -q '^@audio.*rtprio' /etc/security/limits.d/audio.conf; then
        echo "already in place"
    else
        run env DEBIAN_FRONTEND=noninteractive dpkg-reconfigure -f noninteractive jackd2
    fi
}

install_user() {
    step "user latentd (sysusers) and folders (tmpfiles)"
    run install -D -m 0644 "$HERE/latentd.sysusers.conf" /etc/sysusers.d/latentd.conf
    run install -D -m 0644 "$HERE/latentd.tmpfiles.conf" /etc/tmpfiles.d/latentd.conf
    run systemd-sysusers /etc/sysusers.d/latentd.conf
    run systemd-tmpfiles --create /etc/tmpfiles.d/latentd.conf
}

install_venv() {
    step "virtualenv $VENV with torch $TORCH_VERSION (CPU) and latentd from $SRC"
    if [ -x "$VENV/bin/python" ] && grep -qx 'home = /usr/bin' "$VENV/pyvenv.cfg" 2>/dev/null; then
        echo "virtualenv exists: upgrading in place"
    else
        run "$SYSTEM_PYTHON" -m venv --clear "$VENV"
    fi
    run "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch first and pinned: an unpinned torch on x86_64 pulls a multi-GB CUDA build.
    if [ -n "$torch_wheel" ]; then
        run "$VENV/bin/python" -m pip install -q "$torch_wheel"
    elif [ "$arch" = x86_64 ]; then
        run "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX"
    else
        # PyPI's aarch64 wheel is the CPU build.
        run "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
    fi
    # A regular (not editable) install: the service does not depend on this checkout afterwards.
    # With the diffusion extra: a piece's [pools.*] need it, and it adds only small pure-Python packages.
    run "$VENV/bin/python" -m pip install -q --upgrade "${SRC}[diffusion]"
    run install -D -m 0644 "$SRC/README.md" "$PREFIX/README.md"
}

install_config() {
    step "configuration in $ETC (kept if present)"
    local name
    for name in venue.toml jackd.env; do
        local from="$HERE/venue.example.toml"
        [ "$name" = jackd.env ] && from="$HERE/jackd.env"
        if [ -e "$ETC/$name" ]; then
            echo "$ETC/$name exists: kept (the new example is $from)"
        else
            run install -m 0640 -o root -g latentd "$from" "$ETC/$name"
        fi
    done
    if [ -r /proc/asound/cards ] && grep -q 'no soundcards' /proc/asound/cards; then
        echo "warning: no sound card found; for a test without one set JACK_DRIVER=dummy in $ETC/jackd.env"
    fi
}

install_piece() {
    step "demo piece in $PIECE_DIR with its models"
    run install -d -m 0750 -o latentd -g latentd "$PIECE_DIR" "$PIECE_DIR/models"
    run install -m 0640 -o latentd -g latentd "$SRC/installation/demo/piece.toml" "$PIECE_DIR/piece.toml"
    run runuser -u latentd -- "$VENV/bin/latentd" models build-demo --output "$PIECE_DIR/models"
    # As the service's user: check also refuses a state file, recordings or renders folder that user
    # cannot write (the service may write only in $STATE).
    if ! run runuser -u latentd -- "$VENV/bin/latentd" check --config "$ETC/venue.toml"; then
        echo "install.sh: $ETC/venue.toml fails the check above; writable paths belong in $STATE (see $HERE/venue.example.toml)" >&2
        exit 1
    fi
}

install_units() {
    step "systemd units"
    run install -m 0644 "$HERE/jackd.service" "$HERE/latentd.service" "$UNIT_DIR/"
    if ! have_systemd; then
        echo "systemd is not running here (chroot or container): units installed, not enabled"
        return
    fi
    run systemctl daemon-reload
    run systemctl enable jackd.service latentd.service
    if [ "$start" -eq 1 ]; then
        run systemctl restart jackd.service latentd.service
        echo "check: systemctl status latentd; journalctl -u latentd -f"
    fi
}

uninstall() {
    step "stop and remove the units"
    if have_systemd; then
        run systemctl disable --now latentd.service jackd.service
    fi
    run rm -f "$UNIT_DIR/latentd.service" "$UNIT_DIR/jackd.service"
    if have_systemd; then
        run systemctl daemon-reload
    fi
    step "remove the program, config and state (recordings are kept)"
    run rm -rf "$PREFIX" "$ETC"
    if [ -d "$STATE" ]; then
        run find "$STATE" -mindepth 1 -maxdepth 1 ! -name recordings -exec rm -rf {} +
    fi
    run rm -f /etc/sysusers.d/latentd.conf /etc/tmpfiles.d/latentd.conf
    echo "kept: $STATE/recordings, the latentd user (it owns the recordings), and the apt packages"
    echo "to remove them too: rm -rf $STATE; userdel latentd; apt-get remove jackd2"
}

check_host
if [ "$dry_run" -eq 1 ]; then
    echo "dry run: nothing is changed"
fi
if [ "$action" = uninstall ]; then
    uninstall
else
    install_packages
    install_limits
    install_user
    install_venv
    install_config
    install_piece
    install_units
fi
echo
echo "done ($action)"
