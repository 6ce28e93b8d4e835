#!/usr/bin/env bash
# Installs the Debian / Raspberry Pi OS packages latentd needs, only those missing.
# Used by `make` (first set-up) and by .ci/run. Runs apt-get as root, or through sudo.
set -euo pipefail

# chromium, chromium-driver: a test loads the status page in a headless browser.
# puredata-core: the tests compare noise~ seeds and latent WAVs with Pd itself (pd -nogui -batch).
# iproute2: the multi-node tests join jackd servers in network namespaces (ip netns, veth pairs).
packages=(python3 python3-venv python3-dev jackd2 libjack-jackd2-0 libsndfile1 sox liblo-tools jack-capture
    shellcheck systemd puredata-core chromium chromium-driver iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${missing[*]}"
# jackd2 asks about realtime priority in a debconf dialog: answer it up front, never interactively.
echo "jackd2 jackd/tweak_rt_limits boolean false" | $sudo debconf-set-selections
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
