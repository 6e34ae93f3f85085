"""Stable MAC addresses for lab interfaces.

A node's MAC decides its SLAAC address, and users put those addresses in DNS,
so the MAC must depend only on (lab, node, interface): not on start order,
not on the machine. It lives in 00:16:3e, the OUI LXD uses, so addresses look
like the ones our users know from `lxc ls`.

24 bits of hash collide with ~0.7 % chance in a lab of 500 interfaces. The way
out is deterministic: keys are assigned in sorted order and a key whose hash is
taken is hashed again with a counter, so the result depends only on the set of
keys in the lab.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

OUI = (0x00, 0x16, 0x3E)


def _mac_for(key: str, attempt: int) -> str:
    text = key if attempt == 0 else f"{key}#{attempt}"
    digest = hashlib.sha256(text.encode()).digest()
    tail = digest[:3]
    return ":".join(f"{b:02x}" for b in (*OUI, *tail))


def mac_key(lab: str, node: str, interface: str) -> str:
    return f"{lab}/{node}/{interface}"


def stable_mac(lab: str, node: str, interface: str) -> str:
    """The MAC of one interface when nothing collides with it."""
    return _mac_for(mac_key(lab, node, interface), 0)


def assign_macs(keys: Iterable[str]) -> dict[str, str]:
    """MACs for every key, unique within the set, deterministic for the set."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for key in sorted(set(keys)):
        attempt = 0
        mac = _mac_for(key, attempt)
        while mac in taken or mac.endswith("00:00:00") or mac.endswith("ff:ff:ff"):
            attempt += 1
            mac = _mac_for(key, attempt)
        taken.add(mac)
        out[key] = mac
    return out
