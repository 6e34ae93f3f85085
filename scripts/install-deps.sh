#!/usr/bin/env bash
# Install the Debian packages palmnet drives and the Python environment in .venv/.
#
# Packages such as radvd, dnsmasq, rdnssd, kea and bird start host-wide services
# when installed. palmnet runs its own copies inside lab namespaces, so the host's
# services are masked (systemd) and a policy-rc.d forbids starting any service
# during this install (sysvinit, containers): installing palmnet must not change
# how the machine itself works.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  iproute2 nftables radvd rdnssd ndisc6 dnsmasq-base kea-dhcp6-server
  dhcpcd-base bird2 bind9-dnsutils bind9-utils curl util-linux procps iputils-ping
  tayga unbound uidmap
  python3 python3-venv python3-pip
  # the web UI's browser tests: Debian's Chromium driven headless by Selenium
  # (never a browser downloaded by a tool)
  chromium chromium-driver
)
# uidmap: newuidmap/newgidmap give a rootless lab's user namespace the user's subordinate
# ids (/etc/subuid), so daemons that switch user (rdnssd, dhcpcd) work there.
# Units the packages above would start on the host.
HOST_UNITS=(radvd rdnssd kea-dhcp6-server kea-dhcp4-server kea-ctrl-agent kea-dhcp-ddns-server bird dhcpcd dnsmasq
  tayga unbound unbound-resolvconf iperf3)
EXTRA=()
if [ "${PALMNET_BENCH:-0}" = 1 ]; then
  EXTRA+=(mininet bridge-utils wrk iperf3)
fi

export DEBIAN_FRONTEND=noninteractive
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for u in "${HOST_UNITS[@]}"; do systemctl mask "$u.service" >/dev/null 2>&1 || true; done
fi
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT

missing=()
for p in "${PACKAGES[@]}" "${EXTRA[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ -n "$(find /var/lib/apt/lists -name '*Packages*' -newer /etc/apt/sources.list 2>/dev/null | head -1)" ] \
    || apt-get update -qq || apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
fi

PY=${PYTHON:-/usr/bin/python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev,lxd,ui]'
# An editable install leaves palmnet's own modules uncompiled: compile them now, so
# that every command reads bytecode even where PYTHONDONTWRITEBYTECODE is set (then
# `palmnet exec` took 0.14 s instead of 0.07 s, `ls` of 100 nodes 0.26 s instead of 0.12).
.venv/bin/python -m compileall -q src/palmnet >/dev/null
echo "palmnet installed: $(.venv/bin/palmnet --version)"
