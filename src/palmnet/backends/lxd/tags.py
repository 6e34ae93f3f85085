"""The keys that mark what a lab made in LXD.

LXD objects outlive a reboot while /run (and so the lab's journal) does not:
every instance, network and profile a lab makes carries `user.palmnet.lab`
in its config, and every image it publishes carries it in its properties,
so `down` finds them with or without the journal. Nothing without the key
(and the lab's name in it) is ever touched.
"""

from __future__ import annotations

from typing import Any

LAB = "user.palmnet.lab"
NODE = "user.palmnet.node"
NETWORK = "user.palmnet.network"
KIND = "user.palmnet.kind"
BUILT = "user.palmnet.image"  # images palmnet built (busybox, debian, router): shared, kept
RECIPE = "user.palmnet.recipe"  # the recipe hash of an image palmnet built


def lab_of(obj: Any) -> str | None:
    """The lab an LXD object (pylxd model or API dict) belongs to, if any."""
    if isinstance(obj, dict):
        config = obj.get("config") or obj.get("properties") or {}
    else:
        config = getattr(obj, "config", None) or getattr(obj, "properties", None) or {}
    value = config.get(LAB)
    return str(value) if value else None


def lab_config(lab: str, **extra: str) -> dict[str, str]:
    """Config keys to put on an object the lab makes."""
    out = {LAB: lab}
    out.update({f"user.palmnet.{k}": v for k, v in extra.items()})
    return out
