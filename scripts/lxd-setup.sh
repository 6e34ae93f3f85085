#!/usr/bin/env bash
# Make LXD ready for palmnet's LXD backend (run as root; .ci/run calls it before the
# LXD tests). Idempotent: a second run changes nothing.
#
# 1. Installs lxd, lxd-client (Debian 12: LXD 5.0) and btrfs-progs with --no-install-recommends.
#    Installing must not change how the machine works: LXD's own services must not
#    start. On systemd machines their units are masked first; elsewhere a
#    policy-rc.d forbids starting any service during the install (left as found).
# 2. Installs pylxd into .venv if it is not there (palmnet's `lxd` extra).
# 3. `palmnet lxd init`: starts lxcfs and lxd in their own background sessions
#    (no systemd), and preseeds a fresh LXD with a pool (btrfs on a loop file where
#    LXD can make one, with btrfs-progs installed here; else dir) and a bridge with no
#    address, NAT or DHCP. An LXD that already has a storage pool or a network is
#    never re-initialised.
# By hand, the same without palmnet:
#   lxcfs /var/lib/lxcfs &  lxd --group lxd --logfile=/var/log/lxd/lxd.log &
#   lxd waitready --timeout=60
#   lxd init --preseed < (the PRESEED text in src/palmnet/backends/lxd/daemon.py)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(lxd lxd-client btrfs-progs)
UNITS=(lxd.service lxd.socket lxd-containers.service lxd-agent.service lxcfs.service)

export DEBIAN_FRONTEND=noninteractive
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for u in "${UNITS[@]}"; do
    # mask only what is not running already (a machine's own LXD is left alone)
    systemctl is-active --quiet "$u" 2>/dev/null || systemctl mask "$u" >/dev/null 2>&1 || true
  done
fi
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" \
    || { apt-get update -qq -o DPkg::Lock::Timeout=300 \
         && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"; }
fi

[ -x .venv/bin/python ] || ./scripts/install-deps.sh
.venv/bin/python -c 'import pylxd' 2>/dev/null || .venv/bin/pip install -q 'pylxd>=2.3.2'

.venv/bin/python -m palmnet lxd init
.venv/bin/python -m palmnet lxd status
