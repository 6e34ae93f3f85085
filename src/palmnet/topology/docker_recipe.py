"""What `palmnet docker image build NAME DIR` reads from DIR: a rootfs recipe or a
Dockerfile, checked before anything is built.

There is no registry here, so every Docker image starts as a root filesystem
palmnet makes itself, then `docker import`ed inside a node:

- `DIR/image.yaml`, a rootfs recipe:

      packages: [nginx-light]     # Debian packages: debootstrap minbase + these
      busybox: true               # or: only a static busybox (--install -s), 2 MB
      files: {/etc/nginx/sites-enabled/default: site.conf}   # DEST: SRC in DIR
      cmd: [nginx, -g, "daemon off;"]
      workdir: /

- `DIR/Dockerfile` whose `FROM` is an image palmnet built this way (no registry to
  pull from): built inside the node by its dockerd, with DIR as the context.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from palmnet.errors import InputError
from palmnet.topology.describe import shown
from palmnet.topology.docker import IMAGE_NAME
from palmnet.topology.model import Strict
from palmnet.topology.problems import Problem, TopologyError
from palmnet.topology.validation import validate
from palmnet.topology.yaml_source import parse_yaml

RECIPE_FILE = "image.yaml"
DOCKERFILE = "Dockerfile"
# Debian package names (policy 5.6.1).
PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(?P<image>\S+)", re.IGNORECASE | re.MULTILINE)


class RootfsRecipe(Strict):
    """`image.yaml`: how palmnet makes an image's root filesystem."""

    packages: list[str] = Field(default_factory=list)
    busybox: bool = False
    files: dict[str, str] = Field(default_factory=dict)
    cmd: list[str] | str | None = None
    workdir: str | None = None


def load_recipe(folder: Path) -> RootfsRecipe:
    """DIR/image.yaml, validated (exit 2 at its line: a key, a package name, a file)."""
    path = folder / RECIPE_FILE
    filename = str(path)
    source = parse_yaml(path.read_text(encoding="utf-8"), filename)
    problems: list[Problem] = []
    recipe = validate(RootfsRecipe, source.data, (), source, problems)
    if recipe is not None:
        if bool(recipe.packages) == recipe.busybox:
            problems.append(
                Problem(source.line(()), "", "give either `packages:` (Debian) or `busybox: true`")
            )
        for index, name in enumerate(recipe.packages):
            if not PACKAGE.fullmatch(name):
                key = ("packages", index)
                problems.append(
                    Problem(
                        source.line(key),
                        f"packages.{index}",
                        f"{shown(name)} is not a package name",
                    )
                )
        for dest, src in recipe.files.items():
            at = ("files", dest)
            if not dest.startswith("/"):
                problems.append(
                    Problem(source.line(at), f"files.{dest}", "the destination must be absolute")
                )
            if not (folder / src).is_file():
                problems.append(
                    Problem(source.line(at), f"files.{dest}", f"no file {shown(src)} in {folder}")
                )
    if problems or recipe is None:
        raise TopologyError(problems, file=filename)
    return recipe


def dockerfile_base(folder: Path) -> str:
    """The image the Dockerfile in `folder` starts FROM (its first FROM)."""
    path = folder / DOCKERFILE
    match = _FROM.search(path.read_text(encoding="utf-8"))
    if match is None:
        raise InputError("no FROM line", file=str(path))
    image = match["image"]
    if not IMAGE_NAME.fullmatch(image):
        line = path.read_text(encoding="utf-8")[: match.start("image")].count("\n") + 1
        raise InputError(
            f"FROM {shown(image)}: not a local image name (no registry here: FROM an image "
            "`palmnet docker image build` made)",
            file=str(path),
            line=line,
        )
    return image


def recipe_kind(folder: Path) -> str:
    """`rootfs` (image.yaml) or `dockerfile`; exit 2 when DIR has neither."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    if (folder / RECIPE_FILE).is_file():
        return "rootfs"
    if (folder / DOCKERFILE).is_file():
        return "dockerfile"
    raise InputError(f"{folder}: neither {RECIPE_FILE} (a rootfs recipe) nor a {DOCKERFILE}")
