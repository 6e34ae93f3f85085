"""`palmnet snapshot` and `palmnet publish`: turn a customised node into a template.

Like `lxc snapshot` and `lxc publish`, through the API. Publishing a running
node needs no stop (where `lxc publish` wants `--force`, which stops and
restarts it): palmnet publishes a snapshot, taking a temporary one and
deleting it afterwards when none is named.

A published image belongs to the lab (`user.palmnet.lab` in its properties)
and `down` deletes it, unless it was published with `keep`: then it is an
image like any other, for other labs and for `lxc launch`.
"""

from __future__ import annotations

import contextlib
import time

from palmnet.backends.lxd import images, tags
from palmnet.backends.lxd.client import Lxd, OperationFailed
from palmnet.backends.lxd.instances import instance_name
from palmnet.errors import InputError


def _instance(lxd: Lxd, lab: str, node: str) -> str:
    name = instance_name(lab, node)
    try:
        inst = lxd.get(f"instances/{name}")
    except lxd.NotFound:
        raise InputError(f"node {node} has no container ({name}): is lab {lab} on LXD?") from None
    if tags.lab_of(inst) != lab:
        raise InputError(f"container {name} is not lab {lab}'s")
    return name


def snapshot(lxd: Lxd, lab: str, node: str, snap: str) -> str:
    inst = _instance(lxd, lab, node)
    if lxd.exists(f"instances/{inst}/snapshots/{snap}"):
        raise InputError(f"node {node} already has a snapshot named '{snap}'")
    lxd.wait(
        lxd.call(
            "post", f"instances/{inst}/snapshots", f"snapshot {node}/{snap}", json={"name": snap}
        )
    )
    return f"{inst}/{snap}"


def snapshots(lxd: Lxd, lab: str, node: str) -> list[str]:
    inst = _instance(lxd, lab, node)
    return [u.rsplit("/", 1)[-1] for u in lxd.get(f"instances/{inst}/snapshots")]


def publish(lxd: Lxd, lab: str, target: str, alias: str, keep: bool = False) -> str:
    """Publish NODE or NODE/SNAP as an image with `alias`; its fingerprint."""
    node, _, snap = target.partition("/")
    inst = _instance(lxd, lab, node)
    temporary = None
    if snap:
        if not lxd.exists(f"instances/{inst}/snapshots/{snap}"):
            raise InputError(f"node {node} has no snapshot '{snap}'")
    else:
        temporary = snap = f"palmnet-publish-{int(time.time() * 1000)}"
        snapshot(lxd, lab, node, snap)
    props = {"description": f"palmnet lab {lab}: {node}/{snap if not temporary else 'now'}"}
    if not keep:
        props[tags.LAB] = lab
    try:
        result = lxd.wait(
            lxd.call(
                "post",
                "images",
                f"publish {target}",
                json={
                    "source": {"type": "snapshot", "name": f"{inst}/{snap}"},
                    "properties": props,
                    "public": False,
                },
            )
        )
    finally:
        if temporary:
            with contextlib.suppress(OperationFailed):
                lxd.wait(
                    lxd.call(
                        "delete", f"instances/{inst}/snapshots/{temporary}", "temporary snapshot"
                    )
                )
    fingerprint = str(result["fingerprint"])
    images.set_alias(lxd, alias, fingerprint, props["description"])
    return fingerprint
