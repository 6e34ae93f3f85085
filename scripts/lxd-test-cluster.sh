#!/usr/bin/env bash
# A real two- or three-member LXD cluster on this one machine, to test palmnet's LXD
# backend on a cluster (issue 18). Run as root, with the host LXD ready
# (scripts/lxd-setup.sh).
#
#   scripts/lxd-test-cluster.sh up [N]   build it (N members, default 2); prints
#                                        LXD_DIR=... for palmnet to talk to member 1
#   scripts/lxd-test-cluster.sh env      print LXD_DIR=... of a running test cluster
#   scripts/lxd-test-cluster.sh down     remove the members and their bridge
#
# Exit code 3: the members (nested LXD) cannot run on this machine; any other
# failure is palmnet's (forming the cluster).
#
# Each member is a system container of the host LXD (security.nesting) running LXD
# 5.0 from Debian, on an address-less LXD bridge of its own. Everything is named with
# PREFIX (default `pncl`): members PREFIX-m1.., bridge PREFIXfab, image PREFIX-member.
# The member image (debootstrap, about 1 min, once per machine) is kept, like
# palmnet's own images; `down` removes the members and the bridge only.
#
# What nested LXD needs on this kind of machine (each one an error we met first):
# - nftables in the member: without it LXD picks the iptables driver and fails
#   ("Failed checking "iptables" chain ...: executable file not found").
# - dnsmasq-base in the member, even for bridges without addresses ("Failed to check
#   dnsmasq version").
# - /etc/subuid and /etc/subgid for root in the member: without them nested LXD runs
#   privileged containers only ("LXD doesn't have a uid/gid allocation").
# - raw.lxc `lxc.mount.auto = cgroup:rw:force` on the member: this machine's cgroup v1
#   mounts cpu and cpuacct as separate hierarchies, LXC in the member looked for them
#   under a joint cpu,cpuacct and every nested start failed ("cgfsng ...
#   Failed to open 6/cpuacct ... Failed to initialize cgroup driver").
# The cluster is formed with palmnet's own `palmnet lxd cluster init|add|join`, talking
# to each member's unix socket through /proc/PID/root; a join runs in the joining
# member's network namespace (nsenter), where member 1's address is reachable (from
# the host's namespace that address would go out of the machine: never done).
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${PNCL_PREFIX:-pncl}"
IMAGE="$PREFIX-member"
FABRIC="${PREFIX}fab"
NET4="198.51.100"   # the members' underlay (documentation prefix), on $FABRIC only
CACHE="${PALMNET_IMAGE_CACHE:-/var/cache/palmnet/images}/$PREFIX-member"
PY="${PALMNET_PYTHON:-/work/main/.venv/bin/python}"
PALMNET=(env "PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m palmnet)
palmnet() { "${PALMNET[@]}" "$@"; }
say() { echo "lxd-test-cluster: $*" >&2; }

member_image() {
  lxc image info "$IMAGE" >/dev/null 2>&1 && return
  if [ ! -s "$CACHE/rootfs.tar.gz" ]; then
    say "building the member rootfs (debootstrap, about a minute)"
    mkdir -p "$CACHE"
    root="$(mktemp -d "$CACHE/build-XXXX")"
    # mktemp makes it 0700, and the tar keeps that mode for the member's "/": LXC in
    # the member then cannot reach its containers ("Could not access /var").
    chmod 0755 "$root"
    mirror="$("$PY" -c 'import sys; sys.path.insert(0, "src"); from palmnet.backends.lxd.images import debian_mirror; print(debian_mirror())')"
    /usr/sbin/debootstrap --variant=minbase \
      --include=systemd-sysv,iproute2,lxd,lxd-client,lxcfs,squashfs-tools,nftables,dnsmasq-base,ca-certificates \
      bookworm "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1
    printf 'root:100000:9000000\n' >"$root/etc/subuid"
    cp "$root/etc/subuid" "$root/etc/subgid"
    : >"$root/etc/machine-id"
    rm -f "$root"/var/cache/apt/archives/*.deb
    tar --numeric-owner --exclude='./dev/*' -C "$root" -czf "$CACHE/rootfs.tar.gz.partial" .
    mv "$CACHE/rootfs.tar.gz.partial" "$CACHE/rootfs.tar.gz"
    rm -rf "$root"
  fi
  palmnet image import "$CACHE/rootfs.tar.gz" --alias "$IMAGE" \
    --description "palmnet test cluster member (LXD 5.0 from Debian)" >/dev/null
}

member_pid() { lxc query "/1.0/instances/$1/state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
lxd_dir() { echo "/proc/$(member_pid "$1")/root/var/lib/lxd"; }

up() {
  local n="${1:-2}"
  member_image || exit 3
  lxc network info "$FABRIC" >/dev/null 2>&1 || lxc network create "$FABRIC" \
    ipv4.address=none ipv6.address=none ipv4.nat=false ipv6.nat=false >/dev/null
  local i m
  for i in $(seq 1 "$n"); do
    m="$PREFIX-m$i"
    lxc info "$m" >/dev/null 2>&1 && continue
    lxc init "$IMAGE" "$m" -n "$FABRIC" -c security.nesting=true \
      -c raw.lxc="lxc.mount.auto = cgroup:rw:force" -c boot.autostart=false >/dev/null
  done
  for i in $(seq 1 "$n"); do
    m="$PREFIX-m$i"
    [ "$(lxc query "/1.0/instances/$m/state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = Running ] \
      || lxc start "$m" || exit 3
  done
  for i in $(seq 1 "$n"); do
    m="$PREFIX-m$i"
    lxc exec "$m" -- sh -c "ip link set eth0 up && ip -4 addr replace $NET4.1$i/24 dev eth0 \
      && ip route replace 224.0.0.0/4 dev eth0 && lxd waitready --timeout=60" || exit 3
  done
  local first
  first="$(lxd_dir "$PREFIX-m1")"
  if ! LXD_DIR="$first" lxc cluster ls >/dev/null 2>&1; then
    LXD_DIR="$first" palmnet lxd init >/dev/null
    LXD_DIR="$first" palmnet lxd cluster init --address "$NET4.11" --name "$PREFIX-m1" >/dev/null
  fi
  for i in $(seq 2 "$n"); do
    m="$PREFIX-m$i"
    if LXD_DIR="$first" lxc cluster show "$m" >/dev/null 2>&1; then continue; fi
    token="$(LXD_DIR="$first" palmnet lxd cluster add "$m")"
    # run in the member's network namespace: the join talks to member 1 from there
    LXD_DIR="$(lxd_dir "$m")" nsenter --net="/proc/$(member_pid "$m")/ns/net" \
      "${PALMNET[@]}" lxd cluster join "$token" --address "$NET4.1$i" --name "$m" >/dev/null
  done
  LXD_DIR="$first" palmnet lxd cluster status >&2
  echo "LXD_DIR=$first"
}

down() {
  local m
  for m in $(lxc ls -c n --format csv "^$PREFIX-m[0-9]+\$"); do
    lxc delete -f "$m"
  done
  lxc network info "$FABRIC" >/dev/null 2>&1 && lxc network delete "$FABRIC"
  return 0
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  env) echo "LXD_DIR=$(lxd_dir "$PREFIX-m1")" ;;
  down) down ;;
  *) echo "usage: $0 up [N] | env | down" >&2; exit 2 ;;
esac
