"""The `docker:` node key and Docker image recipes: parsing, plan, LXD config (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from palmnet.addressing.portmap import PortMap, parse_port
from palmnet.errors import InputError
from palmnet.lab import plan_file
from palmnet.topology.docker import parse_volume
from palmnet.topology.docker_recipe import dockerfile_base, load_recipe, recipe_kind

LAB = """\
name: dk
backend: lxd
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:d0c::1/64"], ra: true}}
  web:
    interfaces:
      eth0: {{network: lan}}
    docker_real_source: {real}
    docker:
      - name: web
        image: {image}
        ports: ["80:80", "[::]:8443:443"]
        volumes: ["site:/var/www/html:ro"]
        command: nginx -g 'daemon off;'
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80:80", PortMap(80, 80)),
        ("8080:80/udp", PortMap(8080, 80, "udp")),
        ("[::]:80:80", PortMap(80, 80, "tcp", "::")),
        ("[2001:db8::1]:80:8080", PortMap(80, 8080, "tcp", "2001:db8::1")),
        ("192.0.2.1:53:53/udp", PortMap(53, 53, "udp", "192.0.2.1")),
        ("443", PortMap(443, 443)),
    ],
)
def test_port_forms(text: str, expected: PortMap) -> None:
    assert parse_port(text) == expected


def test_port_docker_argument_brackets_ipv6() -> None:
    assert parse_port("[::]:80:80").docker_arg() == "[::]:80:80/tcp"
    assert parse_port("80:80").docker_arg() == "80:80/tcp"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0:80", "port 0 is out of range (1-65535)"),
        ("80:65536", "port 65536 is out of range (1-65535)"),
        ("[::1:80:80", "is not a port mapping"),
        ("80:80/sctp", "protocol 'sctp' is not tcp or udp"),
        ("[2001:db8::g]:80:80", "'2001:db8::g' is not an IP address"),
    ],
)
def test_bad_ports(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_port(text)


def test_volume_forms() -> None:
    assert parse_volume("site:/var/www") == ("site", "/var/www")
    assert parse_volume("site:/var/www:ro") == ("site", "/var/www")
    for bad in ("site", "site:relative", "site:/x:rw", ":/x"):
        with pytest.raises(ValueError):
            parse_volume(bad)


def _lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real: str = "false") -> Path:
    from palmnet.backends.lxd import dockerimages

    cache = tmp_path / "cache"
    (cache / "nginx").mkdir(parents=True)
    meta = {"name": "nginx", "kind": "rootfs", "recipe": "abc", "cmd": ["nginx"]}
    (cache / "nginx" / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setattr(dockerimages, "CACHE", cache)
    (tmp_path / "site").mkdir()
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(real=real, image="nginx"))
    return path


def test_plan_holds_the_containers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_file(_lab(tmp_path, monkeypatch))
    web = plan.node("web")
    assert web.docker is not None
    (run,) = web.docker.containers
    assert run.command == ("nginx", "-g", "daemon off;")
    assert [p.docker_arg() for p in run.ports] == ["80:80/tcp", "[::]:8443:443/tcp"]
    assert run.volumes[0].source == str((tmp_path / "site").resolve())
    rows = {n["name"]: n for n in plan.to_json()}
    assert rows["web"]["docker"][0]["volumes"] == [f"{run.volumes[0].source}:/var/www/html:ro"]
    assert "docker" not in rows["r"]  # the contract's shape for nodes without docker
    # the stored plan round-trips (later verbs never re-plan)
    from palmnet.plan.codec import plan_from_json, plan_to_json

    assert plan_from_json(plan_to_json(plan)) == plan


def test_unknown_image_is_exit_2_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _lab(tmp_path, monkeypatch)
    path.write_text(LAB.format(real="false", image="nginx2"))
    with pytest.raises(InputError) as info:
        plan_file(path)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(
        f"{path}:16: nodes.web.docker[0].image: unknown docker image 'nginx2'"
    )


def test_lxd_config_of_a_docker_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from palmnet.backends.lxd import docker, instances

    plan = plan_file(_lab(tmp_path, monkeypatch, real="true"))
    config = instances.instance_config(plan, plan.node("web"), "profile")
    assert config["source"]["alias"] == "palmnet-docker"
    for key in ("nesting", "syscalls.intercept.mknod", "syscalls.intercept.setxattr"):
        assert config["config"][f"security.{key}"] == "true"
    # dockerd turns IPv6 forwarding on: the NIC keeps taking RAs
    assert config["config"]["linux.sysctl.net.ipv6.conf.eth0.accept_ra"] == "2"
    disks = {k: v for k, v in config["devices"].items() if v["type"] == "disk"}
    assert {d["readonly"] for d in disks.values()} == {"true"}
    assert str((tmp_path / "site").resolve()) in {d["source"] for d in disks.values()}
    daemon = json.loads(docker.daemon_json(plan.node("web").docker))
    assert daemon["userland-proxy"] is False and daemon["ip6tables"] is True
    assert daemon["ipv6"] is True and daemon["fixed-cidr-v6"].startswith("fd")
    assert daemon["bip"] == "198.51.100.1/24"  # a documentation prefix, inside the node
    router = instances.instance_config(plan, plan.node("r"), "profile")
    assert "security.nesting" not in router["config"]


def test_recipes(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "docker"
    assert recipe_kind(examples / "nginx") == "rootfs"
    assert load_recipe(examples / "nginx").packages == ["nginx-light"]
    assert load_recipe(examples / "busybox-httpd").busybox is True
    assert recipe_kind(examples / "hello") == "dockerfile"
    assert dockerfile_base(examples / "hello") == "busybox-httpd"
    (tmp_path / "image.yaml").write_text("packages: [nginx-light]\nbusybox: true\nfiles: {a: b}\n")
    with pytest.raises(InputError) as info:
        load_recipe(tmp_path)
    text = str(info.value)
    assert "give either `packages:` (Debian) or `busybox: true`" in text
    assert "files.a: the destination must be absolute" in text
    assert "files.a: no file 'b'" in text
    (tmp_path / "image.yaml").unlink()
    (tmp_path / "Dockerfile").write_text("FROM docker.io/library/nginx\n")
    with pytest.raises(InputError, match="not a local image name"):
        dockerfile_base(tmp_path)
    (tmp_path / "Dockerfile").unlink()
    with pytest.raises(InputError, match=r"neither image\.yaml"):
        recipe_kind(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        recipe_kind(tmp_path / "nothing")
