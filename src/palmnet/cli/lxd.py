"""LXD verbs: `lxd init|status`, `image build|import|ls`, `snapshot`, `publish`.

Thin: parse, call the Lab API's LXD functions (lab/lxd_admin.py), print. Labs on LXD use the
usual lab verbs (`up --backend lxd`, `ls`, `exec`, `down`, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from palmnet.cli.options import FORMAT, LAB, Format
from palmnet.errors import InputError

lxd_app = typer.Typer(help="Start and inspect LXD for palmnet's LXD backend.", no_args_is_help=True)
cluster_app = typer.Typer(
    help="A small LXD cluster for labs larger than one machine.", no_args_is_help=True
)
image_app = typer.Typer(help="Local LXD images: build, import, list.", no_args_is_help=True)
docker_app = typer.Typer(
    help="Docker inside LXD nodes (the `docker:` node key).", no_args_is_help=True
)
docker_image_app = typer.Typer(
    help="Docker images built here, without a registry.", no_args_is_help=True
)


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


@lxd_app.command("init")
def lxd_init() -> None:
    """Start lxcfs and lxd (no systemd needed) and preseed a fresh LXD: a dir pool
    and a bridge without addresses, NAT or DHCP. An LXD that already has a storage
    pool or a network is left as it is."""
    from palmnet.lab import lxd_admin

    _say(lxd_admin.init(_say))


@lxd_app.command("status")
def lxd_status(fmt: Format = FORMAT) -> None:
    """Whether LXD is installed and answers, its pools, networks and palmnet labs."""
    import dataclasses

    from palmnet.lab import lxd_admin

    st = lxd_admin.status()
    if fmt is Format.json:
        typer.echo(json.dumps(dataclasses.asdict(st), indent=2))
    else:
        typer.echo(f"installed: {'yes' if st.installed else 'no'}")
        typer.echo(f"lxcfs:     {'mounted' if st.lxcfs else 'not mounted'}")
        if not st.running:
            typer.echo("lxd:       not running (run `palmnet lxd init`)")
        else:
            typer.echo(f"lxd:       {st.version}, running")
            typer.echo(f"pools:     {', '.join(st.pools) or 'none (run `palmnet lxd init`)'}")
            typer.echo(f"networks:  {', '.join(st.networks) or 'none'}")
            typer.echo(f"instances: {st.instances} (labs: {', '.join(st.labs) or 'none'})")
    if not st.running:
        raise typer.Exit(1)


REMOTE = typer.Option(
    None, "--remote", help="A remote LXD or cluster, https://HOST[:8443] (TLS, trusted once)."
)
TOKEN = typer.Option(None, "--token", help="A trust token for --remote (first contact only).")


@cluster_app.command("init")
def cluster_init(
    address: str = typer.Option(
        ..., "--address", help="This member's address for the cluster's TLS API."
    ),
    name: str = typer.Option(..., "--name", help="This member's name."),
) -> None:
    """Make the local LXD the first member of a cluster (listening on ADDRESS:8443)."""
    from palmnet.lab import lxd_admin

    _say(lxd_admin.cluster_init(address, name))


@cluster_app.command("add")
def cluster_add(
    name: str = typer.Argument(..., help="The new member's name."),
    remote: str | None = REMOTE,
    token: str | None = TOKEN,
) -> None:
    """Print a join token for a new member (for `palmnet lxd cluster join` there)."""
    from palmnet.lab import lxd_admin

    typer.echo(lxd_admin.cluster_add(name, remote, token))


@cluster_app.command("join")
def cluster_join(
    join_token: str = typer.Argument(..., help="The token `palmnet lxd cluster add` printed."),
    address: str = typer.Option(..., "--address", help="This member's address."),
    name: str = typer.Option(..., "--name", help="This member's name (the token's)."),
    pool: list[str] = typer.Option(
        ["default"], "--pool", help="The cluster's storage pools (dir: local folder each)."
    ),
) -> None:
    """Join the local, fresh LXD (no pool, no network) to a cluster."""
    from palmnet.lab import lxd_admin

    _say(lxd_admin.cluster_join(join_token, address, name, tuple(pool)))


@cluster_app.command("trust")
def cluster_trust(name: str = typer.Argument(..., help="A name for the client.")) -> None:
    """Print a trust token: another machine's palmnet reaches this LXD with
    `--remote https://ADDRESS:8443 --token TOKEN`."""
    from palmnet.lab import lxd_admin

    typer.echo(lxd_admin.cluster_trust(name))


@cluster_app.command("status")
def cluster_status(
    remote: str | None = REMOTE, token: str | None = TOKEN, fmt: Format = FORMAT
) -> None:
    """The cluster's members: address, status, roles, whether their LXD runs on this
    machine (HERE: palmnet can run nodes there), palmnet nodes and labs on each."""
    import dataclasses

    from palmnet.lab import lxd_admin

    st = lxd_admin.cluster_status(remote, token)
    if fmt is Format.json:
        typer.echo(json.dumps(dataclasses.asdict(st), indent=2))
    elif not st.clustered:
        typer.echo("LXD is not clustered (one machine)")
    else:
        from palmnet.cli.grid import print_grid
        from palmnet.cli.tables import rows_table

        print_grid(
            rows_table(
                [
                    {
                        "MEMBER": m.name + (" *" if m.name == st.local else ""),
                        "URL": m.url,
                        "STATUS": m.status,
                        "ROLES": ", ".join(m.roles),
                        "HERE": "yes" if m.here else "no",
                        "NODES": str(st.instances.get(m.name, 0)),
                        "LABS": ", ".join(st.labs.get(m.name, [])),
                    }
                    for m in st.members
                ]
            )
        )
    if st.clustered and any(m.status != "Online" for m in st.members):
        raise typer.Exit(1)


@image_app.command("build")
def image_build(
    name: str = typer.Argument(..., help="busybox, debian, router or docker"),
    force: bool = typer.Option(False, "--force", help="Rebuild even if cached."),
) -> None:
    """Build a local image without an image server (alias palmnet-NAME)."""
    from palmnet.lab import lxd_admin

    alias = lxd_admin.build_image(name, _say, force=force)
    typer.echo(alias)


@image_app.command("import")
def image_import(
    rootfs: str = typer.Argument(..., help="A rootfs tarball (filesystem at its root)."),
    alias: str = typer.Option(..., "--alias", help="The image's alias."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture (default: this machine's)."),
    description: str | None = typer.Option(None, "--description"),
) -> None:
    """Write metadata.yaml (architecture, creation_date now) and import both tarballs."""
    from palmnet.lab import lxd_admin

    if not rootfs:  # Path("") would be ".", the current folder
        raise InputError("the file name is empty: give the path of a rootfs tarball")
    fingerprint = lxd_admin.import_image(Path(rootfs), alias, arch, description)
    _say(f"image {alias} imported ({fingerprint[:12]})")
    typer.echo(fingerprint)


@image_app.command("ls")
def image_ls(fmt: Format = FORMAT) -> None:
    """The images LXD holds: alias, fingerprint, description, size, lab."""
    import dataclasses

    from palmnet.lab import lxd_admin

    rows = lxd_admin.list_images()
    if fmt is Format.json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    from palmnet.cli.grid import print_grid
    from palmnet.cli.tables import rows_table

    print_grid(
        rows_table(
            [
                {
                    "ALIAS": ", ".join(r.aliases),
                    "FINGERPRINT": r.fingerprint[:12],
                    "DESCRIPTION": r.description,
                    "ARCH": r.architecture,
                    "SIZE": f"{r.size / 1e6:.1f} MB",
                    "UPLOADED": r.uploaded,
                    "LAB": r.lab or "",
                }
                for r in rows
            ]
        )
    )


def snapshot(
    node: str = typer.Argument(..., help="The node."),
    name: str = typer.Argument(..., help="The snapshot's name."),
    lab: str | None = LAB,
) -> None:
    """Snapshot a node's container, like `lxc snapshot`."""
    from palmnet.lab import lxd_admin

    _say(f"snapshot {lxd_admin.snapshot(lab, node, name)} taken")


def publish(
    target: str = typer.Argument(..., help="NODE or NODE/SNAPSHOT"),
    alias: str = typer.Option(..., "--alias", help="The new image's alias."),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the image after `down` (default: the lab's, removed)."
    ),
    lab: str | None = LAB,
) -> None:
    """Publish a node (or one of its snapshots) as an image, like `lxc publish`;
    nodes with `image: ALIAS` then start from it."""
    from palmnet.lab import lxd_admin

    fingerprint = lxd_admin.publish(lab, target, alias, keep)
    _say(f"image {alias} published ({fingerprint[:12]})")
    typer.echo(fingerprint)


@docker_image_app.command("build")
def docker_image_build(
    name: str = typer.Argument(..., help="The image's name (NAME[:TAG])."),
    folder: Path = typer.Argument(..., help="A folder with image.yaml or a Dockerfile."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if DIR is unchanged."),
) -> None:
    """Build a Docker image from Debian packages or busybox (image.yaml), or a
    Dockerfile FROM one: docker nodes make it with `docker import` / `docker build`."""
    from palmnet.lab import lxd_admin

    image = lxd_admin.build_docker_image(name, folder, _say, force=force)
    typer.echo(image.name)


@docker_image_app.command("ls")
def docker_image_ls(fmt: Format = FORMAT) -> None:
    """The Docker images palmnet built: name, kind, recipe, command."""
    import dataclasses

    from palmnet.lab import lxd_admin

    rows = [dataclasses.asdict(i) for i in lxd_admin.docker_images()]
    if fmt is Format.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from palmnet.cli.grid import print_grid
    from palmnet.cli.tables import rows_table

    print_grid(
        rows_table(
            [
                {
                    "NAME": r["name"],
                    "KIND": r["kind"] + (f" FROM {r['base']}" if r["base"] else ""),
                    "RECIPE": r["recipe"],
                    "CMD": " ".join(r["cmd"]),
                    "BUILD": f"{r['seconds']:.1f} s",
                }
                for r in rows
            ]
        )
    )


def register(app: typer.Typer) -> None:
    """Add this module's verbs to the app."""
    lxd_app.add_typer(cluster_app, name="cluster")
    app.add_typer(lxd_app, name="lxd")
    docker_app.add_typer(docker_image_app, name="image")
    app.add_typer(docker_app, name="docker")
    app.add_typer(image_app, name="image")
    app.command()(snapshot)
    app.command()(publish)
