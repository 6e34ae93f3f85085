"""kea's run_script hook: a route to every delegated prefix via its router.

`python -m palmnet.pd.kea_route HOOK_POINT`, run by libdhcp_run_script.so
(through the wrapper the kea adapter writes) inside the server's node, with
the lease in its environment (reference/pd-notes.md has the variables).

- leases6_committed: the routes via the client's link-local become exactly
  its IA_PD leases with a valid lifetime > 0. Not "add the new, delete the
  deleted": when a pool changes, kea gives the client a new prefix and zeroes
  the old lease without reporting it anywhere (not in DELETED_LEASES6, no
  lease6_expire later), so only a replace-all drops the old route.
- lease6_release / lease6_expire: that prefix's route goes.

Routes carry a private protocol number (ROUTE_PROTO) so the hook finds its own
and never touches the kernel's, dhcpcd's (16) or static ones (routing daemons
export only static routes, services/bird.py). kea runs hooks asynchronously and
in parallel (seen within 3 ms of each other): a lock file serialises them.
Standard library only: this starts on every lease.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping

ROUTE_PROTO = 250  # unnamed in iproute2's rt_protos; 16 (dhcp) is dhcpcd's
FULL_STATE_QUERIES = {"SOLICIT", "REQUEST", "RENEW", "REBIND"}


def _ip(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def pd_leases(env: Mapping[str, str], prefix: str) -> list[tuple[str, int]]:
    """(prefix/len, valid lifetime) of the IA_PD leases listed under `prefix`
    (LEASES6 or DELETED_LEASES6)."""
    out = []
    for i in range(int(env.get(f"{prefix}_SIZE", "0") or 0)):
        at = f"{prefix}_AT{i}"
        if env.get(f"{at}_TYPE") != "IA_PD":
            continue
        address, length = env.get(f"{at}_ADDRESS"), env.get(f"{at}_PREFIX_LEN")
        if not address or not length:
            continue
        out.append((f"{address}/{length}", int(env.get(f"{at}_VALID_LIFETIME", "0") or 0)))
    return out


def routes_via(gateway: str | None = None, dev: str | None = None) -> list[dict[str, str]]:
    """This hook's routes (by its protocol number), optionally only via one next hop."""
    proc = _ip("-j", "-6", "route", "show", "proto", str(ROUTE_PROTO))
    try:
        routes = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    return [
        r
        for r in routes
        if (gateway is None or r.get("gateway") == gateway) and (dev is None or r.get("dev") == dev)
    ]


def _norm(prefix: str) -> str:
    import ipaddress

    return str(ipaddress.IPv6Network(prefix, strict=False))


def plan_committed(
    env: Mapping[str, str], existing: list[dict[str, str]]
) -> tuple[list[str], list[str]]:
    """(prefixes to route via the client, prefixes whose routes go) for a commit."""
    nexthop = env.get("QUERY6_REMOTE_ADDR", "")
    query = env.get("QUERY6_TYPE", "")
    gone = [p for p, _ in pd_leases(env, "DELETED_LEASES6")]
    if query not in FULL_STATE_QUERIES:
        return [], gone
    live = [p for p, valid in pd_leases(env, "LEASES6") if valid > 0]
    live_set = {_norm(p) for p in live}
    stale = [
        r["dst"]
        for r in existing
        if r.get("gateway") == nexthop and _norm(r["dst"]) not in live_set
    ]
    stale += [p for p, valid in pd_leases(env, "LEASES6") if valid == 0]
    return live, sorted(set(stale + gone) - live_set)


def committed(env: Mapping[str, str]) -> list[str]:
    nexthop = env.get("QUERY6_REMOTE_ADDR", "")
    dev = env.get("QUERY6_IFACE_NAME", "")
    if not nexthop.startswith("fe80:") or not dev:
        return [f"skip: client {nexthop or '?'} is not on a link of this server"]
    add, remove = plan_committed(env, routes_via(dev=dev))
    done = []
    for prefix in remove:
        if _ip("-6", "route", "del", prefix, "proto", str(ROUTE_PROTO)).returncode == 0:
            done.append(f"del {prefix}")
    for prefix in add:
        _ip(
            "-6", "route", "replace", prefix, "via", nexthop, "dev", dev,
            "proto", str(ROUTE_PROTO),
        )  # fmt: skip
        done.append(f"route {prefix} via {nexthop} dev {dev}")
    return done


def released(env: Mapping[str, str]) -> list[str]:
    if env.get("LEASE6_TYPE") != "IA_PD":
        return []
    prefix = f"{env.get('LEASE6_ADDRESS')}/{env.get('LEASE6_PREFIX_LEN')}"
    if _ip("-6", "route", "del", prefix, "proto", str(ROUTE_PROTO)).returncode == 0:
        return [f"del {prefix}"]
    return []


def main(argv: list[str]) -> int:
    point = argv[1] if len(argv) > 1 else ""
    env = os.environ
    lock_dir = env.get("PALMNET_KEA_DIR") or os.path.dirname(os.path.abspath(argv[0]))
    with open(os.path.join(lock_dir, "route.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if point == "leases6_committed":
            done = committed(env)
        elif point in ("lease6_release", "lease6_expire"):
            done = released(env)
        else:
            done = []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    for line in done:
        print(f"{stamp} {point}: {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
