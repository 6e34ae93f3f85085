"""LXD itself, as palmnet's verbs manage it: start and inspect the daemon, build,
import and list images, snapshot and publish a node of an LXD lab.

The CLI reaches these through the Lab API like everything else; they act on
LXD, not on a lab's plan, so they are the LXD backend's own functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palmnet.errors import InputError
from palmnet.lab import store

if TYPE_CHECKING:
    from palmnet.topology.model import Lab

Report = Callable[[str], None]


def init(report: Report) -> str:
    from palmnet.backends.lxd import daemon

    return daemon.init(report)


def status() -> Any:
    from palmnet.backends.lxd import daemon

    return daemon.status()


def build_image(name: str, report: Report, force: bool = False) -> str:
    from palmnet.backends.lxd import client, images

    return images.build(client.connect(), name, report, force=force)


def import_image(rootfs: Path, alias: str, arch: str | None, description: str | None) -> str:
    from palmnet.backends.lxd import client, images

    return images.import_rootfs(client.connect(), rootfs, alias, arch, description)


def list_images() -> list[Any]:
    from palmnet.backends.lxd import client, images

    return images.list_images(client.connect())


def _lxd_lab(lab: str | None, node: str) -> str:
    plan = store.plan_of(lab)
    if plan.backend != "lxd":
        raise InputError(f"lab {plan.lab} runs on the {plan.backend} backend, not lxd")
    plan.node(node)
    return plan.lab


def snapshot(lab: str | None, node: str, name: str) -> str:
    from palmnet.backends.lxd import client, snapshots

    return snapshots.snapshot(client.connect(), _lxd_lab(lab, node), node, name)


def publish(lab: str | None, target: str, alias: str, keep: bool) -> str:
    from palmnet.backends.lxd import client, snapshots

    lab_name = _lxd_lab(lab, target.partition("/")[0])
    return snapshots.publish(client.connect(), lab_name, target, alias, keep)


def build_docker_image(name: str, folder: Path, report: Report, force: bool = False) -> Any:
    """`palmnet docker image build NAME DIR` (backends/lxd/dockerimages.py)."""
    from palmnet.backends.lxd import dockerimages

    return dockerimages.build(name, folder, report, force=force)


def docker_images() -> list[Any]:
    from palmnet.backends.lxd import dockerimages

    return [img for name in dockerimages.built() if (img := dockerimages.lookup(name))]


def check_docker_images(lab: Lab) -> None:
    """Every `docker:` image is one palmnet built on this machine (there is no registry
    to pull a missing one from): else exit 2 at its line, before anything is made."""
    from palmnet.backends.lxd import dockerimages
    from palmnet.topology.problems import Problem, TopologyError

    problems = []
    for node in lab.nodes.values():
        if node.name != node.template and node.template in lab.nodes:
            continue
        for index, spec in enumerate(node.docker):
            if dockerimages.lookup(spec.image) is not None:
                continue
            line, key = lab.where(node, "docker", index, "image")
            known = ", ".join(dockerimages.built()) or "none yet"
            problems.append(
                Problem(
                    line or 0,
                    key,
                    f"unknown docker image {spec.image!r}: build it with `palmnet docker image "
                    f"build {spec.image} DIR` (built here: {known})",
                )
            )
    if problems:
        raise TopologyError(list(dict.fromkeys(problems)), file=str(lab.source))


# -- clusters (issue 18) -------------------------------------------------------------------
def _connect(remote: str | None, token: str | None) -> Any:
    from palmnet.backends.lxd import client
    from palmnet.backends.lxd import remote as remotes

    if remote:
        return remotes.connect(remote, token)
    if token:
        raise InputError("--token goes with --remote (a trust token for a remote LXD)")
    return client.connect(require_pool=False)


def cluster_init(address: str, name: str) -> str:
    from palmnet.backends.lxd import cluster

    return cluster.init(_connect(None, None), name, address)


def cluster_add(name: str, remote: str | None = None, token: str | None = None) -> str:
    from palmnet.backends.lxd import cluster

    return cluster.add(_connect(remote, token), name)


def cluster_trust(name: str) -> str:
    from palmnet.backends.lxd import cluster

    return cluster.trust_token(_connect(None, None), name)


def cluster_join(token: str, address: str, name: str, pools: tuple[str, ...]) -> str:
    from palmnet.backends.lxd import cluster

    return cluster.join(_connect(None, None), token, address, name, pools)


def cluster_status(remote: str | None = None, token: str | None = None) -> Any:
    from palmnet.backends.lxd import cluster

    return cluster.status(_connect(remote, token))
