"""An LXD cluster as palmnet sees it and forms it: members, join tokens, joining.

palmnet talks to one member (the local socket, or `--remote`); LXD forwards every
request about an instance to the member that holds it, so the backend's calls
are the same on one LXD and on a cluster, plus `target=MEMBER` where a new
instance or a member's part of a network is made (placement.py, networks.py).

Forming a cluster (`palmnet lxd cluster init|add|join|status`), as `lxc cluster`
does it through the same API, measured on LXD 5.0.2:
- init: `core.https_address` (the cluster's TLS API; LXD has no plaintext API),
  then PUT /1.0/cluster {server_name, enabled}. The member keeps its pools and
  networks.
- add: POST /1.0/cluster/members {server_name} starts a `token` operation whose
  metadata holds the secret, the cluster certificate's fingerprint and the
  addresses; the join token is that JSON (snake_case keys), base64, as `lxc
  cluster add` prints it.
- join: an LXD with no pool and no network is given a preseed with the token and
  its member-specific keys (`source` of each storage pool) and `lxd init
  --preseed` joins it: LXD's own client checks the cluster certificate against
  the token's fingerprint before it sends the secret.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from palmnet.backends.lxd.client import Lxd
from palmnet.errors import InputError, LabError

PORT = 8443


@dataclass(frozen=True)
class Member:
    name: str
    url: str
    status: str  # Online | Offline | Evacuated ...
    message: str
    roles: tuple[str, ...] = ()
    # Its LXD is a process on this machine (locality.py): palmnet can run nodes there.
    here: bool = True


def enabled(lxd: Lxd) -> bool:
    return bool(lxd.get("cluster").get("enabled"))


def local_member(lxd: Lxd) -> str:
    """The name of the member palmnet talks to ('' when LXD is not clustered)."""
    return str(lxd.get("cluster").get("server_name") or "")


def members(lxd: Lxd) -> list[Member]:
    """The cluster's members in name order; [] when LXD is not clustered."""
    if not enabled(lxd):
        return []
    out = [
        Member(
            name=m["server_name"],
            url=m.get("url", ""),
            status=m.get("status", ""),
            message=m.get("message", ""),
            roles=tuple(m.get("roles") or ()),
            here=is_here(lxd, m["server_name"]),
        )
        for m in lxd.get("cluster/members", recursion=1)
    ]
    return sorted(out, key=lambda m: m.name)


FAR_ENV = "PALMNET_LXD_FAR_MEMBERS"


def said_far() -> set[str]:
    """Members to drive as if on another machine (PALMNET_LXD_FAR_MEMBERS=a,b): the
    test cluster's nested members all run here, and this makes palmnet drive one as
    it drives a member elsewhere, through LXD's API alone (far.py)."""
    return {m.strip() for m in os.environ.get(FAR_ENV, "").split(",") if m.strip()}


def is_here(lxd: Lxd, name: str) -> bool:
    """Whether member `name`'s LXD runs on this machine (False when it does not answer)."""
    from palmnet.backends.lxd.locality import lxd_here

    if name in said_far():
        return False
    try:
        env = lxd.server(target=name).get("environment") or {}
    except (lxd.APIError, OSError):
        return False
    return lxd_here(int(env.get("server_pid") or 0), env.get("addresses") or ())


def with_port(address: str) -> str:
    """ADDR -> ADDR:8443, [v6] kept, an explicit port kept."""
    if address.startswith("["):
        return address if "]:" in address else f"{address}:{PORT}"
    if address.count(":") > 1:
        return f"[{address}]:{PORT}"
    return address if ":" in address else f"{address}:{PORT}"


def init(lxd: Lxd, name: str, address: str) -> str:
    """Turn the local LXD into the first member of a cluster (kept if it is one)."""
    if enabled(lxd):
        return f"LXD is already a cluster member ({local_member(lxd)}): left as it is"
    if not lxd.pools():
        raise InputError("LXD has no storage pool yet: run `palmnet lxd init` first")
    listen = with_port(address)
    try:
        lxd.api.patch(json={"config": {"core.https_address": listen}})
    except lxd.APIError as exc:
        raise LabError(f"core.https_address {listen}: {exc}") from None
    lxd.wait(
        lxd.call("put", "cluster", "cluster init", json={"server_name": name, "enabled": True})
    )
    return f"cluster formed: member {name} on https://{listen}"


def add(lxd: Lxd, name: str) -> str:
    """A join token for a new member `name` (as `lxc cluster add NAME` prints it)."""
    if not enabled(lxd):
        raise InputError("LXD is not a cluster: run `palmnet lxd cluster init` first")
    pending = lxd.call(
        "post", "cluster/members", f"join token for {name}", json={"server_name": name}
    )
    if pending is None:
        raise LabError(f"LXD started no token operation for {name}")
    meta = lxd.api.operations[pending.id].get().json()["metadata"]
    return encode_token(meta["metadata"])


def encode_token(meta: dict[str, object]) -> str:
    """LXD's token text from a token operation's metadata (camelCase keys there)."""
    keys = {"serverName": "server_name", "clientName": "client_name", "expiresAt": "expires_at"}
    data = {keys.get(k, k): v for k, v in meta.items()}
    return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, object]:
    """A join or trust token's fields; InputError (exit 2) if it is not one."""
    try:
        data = json.loads(base64.b64decode(token.strip() + "=" * (-len(token.strip()) % 4)))
    except ValueError:
        data = None
    if not isinstance(data, dict) or not {"secret", "fingerprint", "addresses"} <= set(data):
        raise InputError(
            "not an LXD token (`palmnet lxd cluster add NAME` or `lxc config trust add` print one)"
        )
    return data


def join_preseed(token: str, address: str, name: str, pools: list[str]) -> str:
    """The preseed that joins a fresh LXD to the cluster of `token`."""
    data = decode_token(token)
    if data.get("server_name") and data["server_name"] != name:
        raise InputError(f"the token is for member {data['server_name']!r}, not {name!r}")
    lines = [
        "cluster:",
        f"  server_name: {json.dumps(name)}",
        "  enabled: true",
        f"  server_address: {json.dumps(with_port(address))}",
        f"  cluster_token: {json.dumps(token.strip())}",
        "  member_config:",
    ]
    for pool in pools:
        lines += [
            "  - entity: storage-pool",
            f"    name: {json.dumps(pool)}",
            "    key: source",
            '    value: ""',
        ]
    if not pools:
        lines[-1] = "  member_config: []"
    return "\n".join(lines) + "\n"


def join(lxd: Lxd, token: str, address: str, name: str, pools: tuple[str, ...]) -> str:
    """Join the local (fresh) LXD to a cluster with a token from `add`."""
    if enabled(lxd):
        return f"LXD is already a cluster member ({local_member(lxd)}): left as it is"
    if lxd.pools():
        raise InputError(
            "LXD already has storage pools: only a fresh LXD joins a cluster "
            "(it takes the cluster's pools and networks)"
        )
    exe = shutil.which("lxd") or "lxd"
    preseed = join_preseed(token, address, name, list(pools))
    proc = subprocess.run([exe, "init", "--preseed"], input=preseed, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"lxd init --preseed (join) failed: {proc.stderr.strip()}")
    return f"member {name} joined the cluster on https://{with_port(address)}"


def trust_token(lxd: Lxd, name: str) -> str:
    """A trust token for a client named `name` (as `lxc config trust add` prints it)."""
    pending = lxd.call(
        "post",
        "certificates",
        f"trust token for {name}",
        json={"name": name, "type": "client", "token": True},
    )
    if pending is None:
        raise LabError(f"LXD started no token operation for {name}")
    meta = lxd.api.operations[pending.id].get().json()["metadata"]["metadata"]
    # As `lxc config trust add` writes it: LXD 5.0 keeps the name in the request and
    # reads a token without `client_name` as no certificate token at all.
    token = {"client_name": name, **{k: meta[k] for k in ("fingerprint", "addresses", "secret")}}
    if meta.get("expiresAt"):
        token["expires_at"] = meta["expiresAt"]
    return encode_token(token)


@dataclass
class Status:
    clustered: bool
    local: str  # the member palmnet talks to
    members: list[Member]
    instances: dict[str, int]  # member -> palmnet instances on it
    labs: dict[str, list[str]]  # member -> labs with nodes on it


def status(lxd: Lxd) -> Status:
    from palmnet.backends.lxd import tags

    found = members(lxd)
    counts: dict[str, int] = {m.name: 0 for m in found}
    labs: dict[str, set[str]] = {m.name: set() for m in found}
    for inst in lxd.instances(recursion=1):
        lab = tags.lab_of(inst)
        where = str(inst.get("location") or "")
        if lab and where in counts:
            counts[where] += 1
            labs[where].add(lab)
    return Status(
        clustered=bool(found),
        local=local_member(lxd),
        members=found,
        instances=counts,
        labs={k: sorted(v) for k, v in labs.items()},
    )
