"""`palmnet docker image build NAME DIR`: Docker images without a registry.

palmnet builds an image's root filesystem on the host (topology/docker_recipe.py
says what DIR may hold) and keeps it in a cache folder; a node's dockerd then
makes the Docker image from it (`docker import`, or `docker build` for a
Dockerfile FROM such an image) the first time the node needs it
(backends/lxd/docker.py). The cache folder is mounted read-only into docker
nodes, so nothing is copied through LXD's API.

    /var/cache/palmnet/docker/NAME/meta.json       kind, recipe hash, cmd, base
                                  /rootfs.tar.gz   (image.yaml)
                                  /context/        (Dockerfile: DIR as it was)

The recipe hash (every file of DIR, the Debian suite) is also the image's
`palmnet.recipe` label in each node: a changed recipe is imported again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from palmnet.backends.lxd import images
from palmnet.errors import InputError
from palmnet.topology.describe import shown
from palmnet.topology.docker import IMAGE_NAME
from palmnet.topology.docker_recipe import (
    DOCKERFILE,
    dockerfile_base,
    load_recipe,
    recipe_kind,
)

CACHE = Path(os.environ.get("PALMNET_DOCKER_CACHE", str(images.CACHE.parent / "docker")))


@dataclass(frozen=True)
class DockerImage:
    """An image palmnet can give a node's dockerd."""

    name: str
    kind: str  # rootfs or dockerfile
    recipe: str  # hash of DIR's files (and the suite): the image's palmnet.recipe label
    cmd: list[str]
    workdir: str | None = None
    base: str | None = None  # dockerfile: the palmnet image it starts FROM
    seconds: float = 0.0  # how long the build took

    @property
    def folder(self) -> Path:
        return CACHE / self.name.replace(":", "_")


def folder_of(name: str) -> Path:
    return CACHE / name.replace(":", "_")


def lookup(name: str) -> DockerImage | None:
    """The image palmnet built under `name` (None: none)."""
    try:
        data = json.loads((folder_of(name) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return DockerImage(**data)


def built() -> list[str]:
    if not CACHE.is_dir():
        return []
    return sorted(img.name for p in CACHE.iterdir() if (img := lookup(p.name)) is not None)


def recipe_hash(folder: Path) -> str:
    digest = hashlib.sha256(images.SUITE.encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def build(name: str, folder: Path, report: images.Report, force: bool = False) -> DockerImage:
    """Build image NAME from DIR into the cache (kept while DIR is unchanged)."""
    if not IMAGE_NAME.fullmatch(name):
        raise InputError(f"{shown(name)} is not a local image name (lowercase NAME[:TAG])")
    kind = recipe_kind(folder)
    recipe = recipe_hash(folder)
    old = lookup(name)
    if old is not None and old.recipe == recipe and not force:
        report(f"docker image {name} is built already (recipe {recipe}; --force rebuilds it)")
        return old
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="build-") as tmp:
        staging = Path(tmp) / "image"
        staging.mkdir()
        if kind == "rootfs":
            image = _build_rootfs(name, folder, staging, recipe, report)
        else:
            image = _copy_context(name, folder, staging, recipe)
        image = DockerImage(**{**asdict(image), "seconds": round(time.monotonic() - started, 1)})
        (staging / "meta.json").write_text(json.dumps(asdict(image), indent=2) + "\n")
        staging.chmod(0o755)  # read by the nodes' (unprivileged) root
        target = folder_of(name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    report(f"docker image {name} ({kind}) built in {image.seconds:.1f} s: {folder_of(name)}")
    return image


def _build_rootfs(
    name: str, folder: Path, out: Path, recipe: str, report: images.Report
) -> DockerImage:
    spec = load_recipe(folder)
    root = out.parent / "rootfs"
    root.mkdir()
    if spec.busybox:
        images.build_busybox_root(root, out.parent / "pkg")
    else:
        images.build_debian_root(root, tuple(spec.packages), busybox_init=False, report=report)
    for dest, src in spec.files.items():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        shutil.copyfile(folder / src, target)
        target.chmod(0o644)
    images.pack_rootfs(root, out / "rootfs.tar.gz")
    (out / "rootfs.tar.gz").chmod(0o644)
    cmd = spec.cmd
    return DockerImage(
        name=name,
        kind="rootfs",
        recipe=recipe,
        cmd=["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd or []),
        workdir=spec.workdir,
    )


def _copy_context(name: str, folder: Path, out: Path, recipe: str) -> DockerImage:
    base = dockerfile_base(folder)
    if lookup(base) is None:
        known = ", ".join(built()) or "none yet"
        raise InputError(
            f"FROM {base}: no image palmnet built by that name (built: {known}); there is "
            "no registry here, build the base first with `palmnet docker image build`",
            file=str(folder / DOCKERFILE),
        )
    shutil.copytree(folder, out / "context", symlinks=False)
    for path in (out / "context").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return DockerImage(name=name, kind="dockerfile", recipe=recipe, cmd=[], base=base)
