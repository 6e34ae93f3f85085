"""dhcpcd's hook on an openwrt router: its LANs follow the delegated prefix.

`python -m palmnet.pd.hook PD_JSON`, run by dhcpcd (through the script the
dhcpcd adapter writes) inside the router's node on the WAN's DHCPv6 events,
with the lease in its environment (`new_dhcp6_ia_pd1_prefix1`, `_length`,
`_pltime`, `_vltime`; an old prefix can come alongside with vltime 0).
PD_JSON holds what the plan knew (services/dhcpcd.py `pd_params_json`): each
LAN's ip6assign and hint, radvd's static part, the downstream kea's links,
lifetimes and reservations.

On BOUND6 / RENEW6 / REBIND6 / REBOOT6 with a prefix:
- each LAN's share and /64 come from the prefix the way the plan divides it
  (pd/split.py); dhcpcd itself has put `<lan>::1/64` there (`ia_pd` in its
  config, see services/dhcpcd.py for why dhcpcd and not this hook);
- radvd.conf is rendered again (services/radvd.py `render_ra`) with the LAN's
  /64 and the lease's lifetimes, and any /64 a previous prefix gave that LAN
  announced deprecated until that lease would have run out; radvd gets SIGHUP
  (it answers with an RA at once);
- the downstream kea's config (services/kea.py `render_kea_config`) gets the
  LAN /64 as its subnet, the share minus the announced block as its pools, and
  each reservation at the same place inside the new share; kea reloads it on
  its control socket (`config-reload` answers once the new config is in use,
  so the router below can be asked to renew right after).
On EXPIRE6 / RELEASE6 the prefix is gone: LANs announce it deprecated and kea
delegates nothing. Every run is serialised with flock and logged (stdout goes
to the node's dhcpcd/hook.log); its outcome is kept in the state file that
`palmnet isp renumber` and `palmnet ls --prefixes` read.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from palmnet.addressing.pd import downstream_pools, first64, share

Net6 = ipaddress.IPv6Network
BOUND = {"BOUND6", "RENEW6", "REBIND6", "REBOOT6"}
LOST = {"EXPIRE6", "RELEASE6", "STOP6"}
START_WAIT = 5.0  # how long a daemon that is starting may take to show its pid/socket


def delegation(env: Mapping[str, str], iaid: int) -> tuple[Net6, int, int] | None:
    """The delegated prefix with a valid lifetime (prefix, preferred, valid), if any."""
    best: tuple[Net6, int, int] | None = None
    n = 1
    while f"new_dhcp6_ia_pd{iaid}_prefix{n}" in env:
        key = f"new_dhcp6_ia_pd{iaid}_prefix{n}"
        n += 1
        raw, length = env[key], env.get(f"{key}_length", "")
        try:
            prefix = Net6(raw if "/" in raw else f"{raw}/{length}", strict=False)
            preferred = int(env.get(f"{key}_pltime", "0") or 0)
            valid = int(env.get(f"{key}_vltime", "0") or 0)
        except ValueError:
            continue
        if valid > 0 and (best is None or valid > best[2]):
            best = (prefix, preferred, valid)
    return best


def lan_shares(params: Mapping[str, Any], prefix: Net6) -> dict[str, tuple[Net6, Net6]]:
    """interface -> (its share, the /64 it announces) of this delegation."""
    out = {}
    for a in params["assignments"]:
        got = share(prefix, int(a["length"]), int(a["hint"]))
        if got is not None:
            out[a["interface"]] = (got, first64(got))
    return out


def radvd_config(
    params: Mapping[str, Any],
    lans: Mapping[str, tuple[Net6, Net6]],
    preferred: int,
    valid: int,
    stale: list[dict[str, Any]],
) -> str:
    from palmnet.services.radvd import DelegatedPrefix, RaInterface, render_ra, router_address

    spec = [RaInterface.from_json(i) for i in params["radvd"]["interfaces"]]
    delegated: dict[str, list[DelegatedPrefix]] = {}
    for ifname, (_, lan) in lans.items():
        delegated.setdefault(ifname, []).append(
            DelegatedPrefix(str(lan), preferred, valid, router=router_address(lan))
        )
    for old in stale:
        delegated.setdefault(old["interface"], []).append(DelegatedPrefix(old["lan"], stale=True))
    return render_ra(params["node"], spec, delegated)


def kea_config(params: Mapping[str, Any], lans: Mapping[str, tuple[Net6, Net6]]) -> str:
    from palmnet.plan.model import Delegation, PdServerPlan
    from palmnet.services.kea import render_kea_config

    kea = params["kea"]
    servers = []
    for srv in kea["servers"]:
        got = lans.get(srv["interface"])
        if got is None:
            continue
        share_net, lan = got
        length = int(srv["delegated_len"])
        reservations = []
        for r in srv["reservations"]:
            prefix = None
            if r["offset"] is not None:
                start = int(share_net.network_address) + int(r["offset"])
                candidate = Net6((start, length))
                prefix = candidate if candidate.subnet_of(share_net) else None
            reservations.append(Delegation(r["client"], r["duid"], prefix))
        servers.append(
            PdServerPlan(
                interface=srv["interface"],
                subnet=lan,
                pools=tuple(downstream_pools(share_net)),
                delegated_len=length,
                reservations=tuple(reservations),
                t1=int(srv["t1"]),
                t2=int(srv["t2"]),
                preferred=int(srv["preferred"]),
                valid=int(srv["valid"]),
            )
        )
    return render_kea_config(servers, Path(kea["dir"]), Path(kea["hook"]), Path(kea["log"]))


def _write(path: Path, text: str) -> bool:
    """Replace a file atomically; False when it already says this."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def _wait_for(path: Path, deadline: float) -> bool:
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # poll: a daemon that is starting writes this once, no event to wait on
    return True


def reload_radvd(pid_file: Path, start_wait: float = START_WAIT) -> str:
    if not _wait_for(pid_file, time.monotonic() + start_wait):
        return "radvd not running (no pid file): it reads the new config when it starts"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError, IndexError) as exc:
        return f"radvd not signalled: {exc}"
    return "radvd reloaded"


def reload_kea(sock: Path, start_wait: float = START_WAIT) -> tuple[bool, str]:
    from palmnet.services.kea import control

    if not _wait_for(sock, time.monotonic() + start_wait):
        return False, "kea not running (no control socket): it reads the new config when it starts"
    try:
        answer = control(sock, "config-reload")
    except OSError as exc:
        return False, f"kea not reloaded: {exc}"
    if answer.get("result") != 0:
        return False, f"kea refused the config: {answer.get('text')}"
    return True, "kea reloaded"


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load_state(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def handle(
    params: Mapping[str, Any],
    env: Mapping[str, str],
    now: float,
    start_wait: float = START_WAIT,
) -> list[str]:
    """Do what the event asks; returns log lines. The state file records the outcome.
    `start_wait`: how long to wait for radvd's pid file / kea's socket if they are
    still starting."""
    reason = env.get("reason", "")
    state_path = Path(params["state"])
    state = load_state(state_path)
    lease = delegation(env, int(params.get("iaid", 1))) if reason in BOUND else None
    if reason not in BOUND | LOST:
        return []
    log: list[str] = []
    old = state.get("prefix")
    stale = [s for s in state.get("stale", []) if float(s["until"]) > now]
    new = str(lease[0]) if lease is not None else None
    if old and old != new:
        # The lease that gave the old prefix would have run out at `until`.
        until = float(state.get("valid_until", now))
        if reason in LOST:
            until = min(until, now) if reason == "EXPIRE6" else until
        for ifname, lan in state.get("lans", {}).items():
            stale.append({"interface": ifname, "lan": lan, "until": max(until, now + 1)})
        log.append(f"{reason}: {old} replaced by {new or 'nothing'}")
    lans: dict[str, tuple[Net6, Net6]] = {}
    preferred = valid = 0
    if lease is not None:
        prefix, preferred, valid = lease
        lans = lan_shares(params, prefix)
        stale = [s for s in stale if s["lan"] not in {str(lan) for _, lan in lans.values()}]
        shown = ", ".join(f"{i} {lan}" for i, (_, lan) in lans.items()) or "no LAN"
        log.append(f"{reason}: {prefix} (preferred {preferred} s, valid {valid} s): {shown}")
    else:
        log.append(f"{reason}: no prefix delegated")

    result: dict[str, Any] = {
        "prefix": new,
        "preferred": preferred,
        "valid": valid,
        "bound_at": now if lease is not None else None,
        "valid_until": now + valid if lease is not None else None,
        "lans": {i: str(lan) for i, (_, lan) in lans.items()},
        "stale": stale,
        "reason": reason,
        "kea_prefix": state.get("kea_prefix"),
    }
    if params.get("radvd"):
        conf = Path(params["radvd"]["conf"])
        _write(conf, radvd_config(params, lans, preferred, valid, stale))
        log.append(reload_radvd(Path(params["radvd"]["pid"]), start_wait))
    if params.get("kea"):
        kea = params["kea"]
        if _write(Path(kea["conf"]), kea_config(params, lans)):
            started = time.monotonic()
            ok, text = reload_kea(Path(kea["socket"]), start_wait)
            log.append(f"{text} ({(time.monotonic() - started) * 1000:.0f} ms)")
            if ok:
                result["kea_prefix"] = new
        else:
            result["kea_prefix"] = new  # kea already serves this prefix's shares
            log.append("kea config unchanged")
    result["done_at"] = time.time()
    _write(state_path, json.dumps(result, indent=2) + "\n")
    return log


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m palmnet.pd.hook PD_JSON", file=sys.stderr)
        return 2
    params = json.loads(Path(argv[1]).read_text())
    with _locked(params["lock"]):
        lines = handle(params, os.environ, time.time())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    for line in lines:
        print(f"{stamp} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
