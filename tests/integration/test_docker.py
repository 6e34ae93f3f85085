"""Docker inside LXD nodes (issue 17) on a real LXD: nginx in Docker in a node, by the
node's planned GUA; the source address each publishing mode gives the application;
copies launched from a published node; bad input refused before anything is made.

Skipped (with the reason) where LXD cannot start. Images are built once per machine
and kept: palmnet-docker and palmnet-router in LXD (about a minute each), the nginx
Docker image in palmnet's cache (debootstrap, about a minute); later runs reuse them.
One lab serves the tests that look at a running lab (module fixture).
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import labs
from tests.integration.labs import lxd_reason, node_exec, run, run_json, write_lab

pytestmark = pytest.mark.root

REASON = lxd_reason()
needs_lxd = pytest.mark.skipif(REASON is not None, reason=REASON or "")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docker"
PREFIX = "2001:db8:d0c:"
PAGE = "palmnet: nginx in Docker in an LXD node"
# The name of the lab of this test run: dk + the pid (other helpers' labs never collide).
LAB = f"dk{os.getpid() % 100000}"

LAB_FILE = """\
name: {name}
backend: lxd
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:d0c::1/64"], ra: true}}
  web:                      # Docker's defaults: the userland proxy publishes port 80
    interfaces:
      eth0: {{network: lan}}
    docker:
      - name: nginx
        image: nginx
        ports: ["80:80"]
        volumes: ["site:/var/www/html"]
      - name: hello         # a Dockerfile FROM busybox-httpd, built in the node
        image: hello
        ports: ["8080:80"]
  real:                     # no proxy: ip6tables DNAT to an IPv6 docker network
    interfaces:
      eth0: {{network: lan}}
    docker_real_source: true
    docker:
      - name: nginx
        image: nginx
        ports: ["[::]:80:80"]
        volumes: ["site:/var/www/html"]
  plain:                    # palmnet's web server on the node itself
    interfaces:
      eth0: {{network: lan}}
    service: http
  client:
    image: palmnet-router   # has curl
    interfaces:
      eth0: {{network: lan}}
"""


def gua(node: dict) -> str:
    return next(
        a.split("/")[0] for i in node["interfaces"] for a in i["ipv6"] if a.startswith(PREFIX)
    )


def nodes_by_name(rows: object) -> dict[str, dict]:
    assert isinstance(rows, list)
    return {n["name"]: n for n in rows}


def fetch(lab: str, client: str, address: str, port: int = 80) -> str:
    url = f"http://[{address}]:{port}/"
    proc = node_exec(lab, client, "curl", "-sS", "--max-time", "5", "-g", url, check=False)
    return proc.stdout if proc.returncode == 0 else ""


def build_images() -> None:
    """The Docker images the lab uses, from the examples (cached: seconds after the first)."""
    run("docker", "image", "build", "nginx", str(EXAMPLES / "nginx"), timeout=600)
    run("docker", "image", "build", "busybox-httpd", str(EXAMPLES / "busybox-httpd"))
    run("docker", "image", "build", "hello", str(EXAMPLES / "hello"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if REASON is not None:
        pytest.skip(REASON)
    folder = tmp_path_factory.mktemp("docker")
    (folder / "site").mkdir()
    (folder / "site" / "index.html").write_text(f"<h1>{PAGE}</h1>\n")
    build_images()
    path = write_lab(folder / "lab.yaml", LAB_FILE.format(name=LAB))
    planned = nodes_by_name(run_json("plan", str(path)))
    try:
        run("up", str(path), timeout=600)
        yield {"path": path, "planned": planned}
    finally:
        run("down", LAB, check=False)
        assert labs.lxd_traces(LAB) == []


def access_log(lab: str, node: str) -> str:
    """The nginx container's log (it logs to stdout: `docker logs`)."""
    proc = node_exec(lab, node, "docker", "logs", "nginx")
    return proc.stdout + proc.stderr


@needs_lxd
def test_docker_node_serves_nginx_by_planned_gua(lab: dict) -> None:
    planned = lab["planned"]
    web = gua(planned["web"])
    live = nodes_by_name(run_json("ls", LAB))
    assert gua(live["web"]) == web  # the address `plan` printed
    assert ipaddress.IPv6Address(web).exploded.startswith("2001:0db8:0d0c:0000:0216:3eff")
    # `up` returned once nginx listened in Docker: the first fetch is served
    assert PAGE in fetch(LAB, "client", web)
    # `ls` shows the node's containers as its dockerd reports them; `plan` what it will run
    containers = [(c["name"], c["state"]) for c in live["web"]["docker"]]
    assert sorted(containers) == [("hello", "running"), ("nginx", "running")]
    # the busybox httpd image, and one built from a Dockerfile FROM it, offline
    assert "hello from a Dockerfile" in fetch(LAB, "client", web, 8080)
    nginx = next(c for c in live["web"]["docker"] if c["name"] == "nginx")
    assert "80->80/tcp" in nginx["ports"]
    assert planned["web"]["docker"][0]["ports"] == ["80:80/tcp"]
    assert "docker" not in live["client"]  # other nodes keep the contract's shape
    # overlay2 on any LXD pool (on btrfs dockerd would pick btrfs, which copies break)
    driver = node_exec(LAB, "web", "docker", "info", "--format", "{{.Driver}}").stdout
    assert driver.strip() == "overlay2", driver
    # the UI's node page lists them too
    from starlette.testclient import TestClient

    from palmnet.ui.app import create_app

    token = "dk-test-token"
    with TestClient(create_app(token)) as browser:
        html = browser.get(f"/lab/{LAB}/node/web", headers={"Authorization": f"Bearer {token}"})
    assert html.status_code == 200, html.text[:500]
    assert '<table id="docker">' in html.text and "nginx:latest" in html.text
    # the LXD keys Docker needs are on the container
    from palmnet.backends.lxd.client import connect

    config = connect().get(f"instances/{LAB}-web")["config"]
    assert config["security.nesting"] == "true"
    assert config["security.syscalls.intercept.mknod"] == "true"
    assert config["security.syscalls.intercept.setxattr"] == "true"

    # stop/start: the same address, the container runs again and serves the page
    run("stop", "--lab", LAB, "web")
    assert nodes_by_name(run_json("ls", LAB))["web"]["state"] == "STOPPED"
    assert fetch(LAB, "client", web) == ""
    run("start", "--lab", LAB, "web", timeout=300)
    again = nodes_by_name(run_json("ls", LAB))["web"]
    assert gua(again) == web
    assert {c["state"] for c in again["docker"]} == {"running"}
    assert PAGE in fetch(LAB, "client", web)


@needs_lxd
def test_source_address_docker_proxy_vs_real(lab: dict) -> None:
    """Docker's userland proxy: nginx logs the node's docker0 address, not the client's.
    A node with `docker_real_source: true` (no proxy, ip6tables DNAT, an IPv6 docker
    network) and `service: http` on a plain node: the client's own GUA."""
    planned = lab["planned"]
    client = gua(planned["client"])
    for node in ("web", "real", "plain"):
        assert fetch(LAB, "client", gua(planned[node])), f"no page from {node}"

    proxied = access_log(LAB, "web")
    assert client not in proxied
    # docker-proxy connects to the container over docker0 (IPv4, 198.51.100.1 here)
    assert "198.51.100.1 - -" in proxied, proxied

    real = access_log(LAB, "real")
    assert f"{client} - -" in real, real

    served = labs.service_host_path(LAB, "plain", "httpd", "access.log")
    assert served.read_text().startswith(f"{client} - -"), served.read_text()


@needs_lxd
def test_three_copies_from_published_image(lab: dict) -> None:
    """snapshot + publish + launch, as the field notes do: every copy has its own planned
    address, and its container comes up and serves the page there."""
    from palmnet.addressing.eui64 import eui64_address
    from palmnet.backends.lxd import images
    from palmnet.backends.lxd.client import connect

    run("snapshot", "--lab", LAB, "web", "s0")
    alias = f"{LAB}-web-template"
    run("publish", "--lab", LAB, "web/s0", "--alias", alias, timeout=300)
    copies = ["web2", "web3", "web4"]
    started = time.monotonic()
    run("launch", "--lab", LAB, "web", *copies, "--image", alias, timeout=600)
    launch_s = time.monotonic() - started
    live = nodes_by_name(run_json("ls", LAB))
    addresses = set()
    for name in copies:
        iface = next(i for i in live[name]["interfaces"] if i["name"] == "eth0")
        address = gua(live[name])
        assert ipaddress.IPv6Address(address) == eui64_address(iface["mac"], f"{PREFIX}:/64")
        assert {c["state"] for c in live[name]["docker"]} == {"running"}
        assert PAGE in fetch(LAB, "client", address), f"{name} [{address}]"
        addresses.add(address)
    assert len(addresses) == 3 and gua(live["web"]) not in addresses
    assert (
        connect()
        .get(f"instances/{LAB}-web3")["config"]["image.description"]
        .startswith(f"palmnet lab {LAB}")
    )
    print(f"launch of 3 docker copies from the published image: {launch_s:.1f} s")
    run("down", LAB)
    assert images.alias_target(connect(), alias) is None  # the lab's image went with it


# -- bad input -----------------------------------------------------------------------
BAD = """\
name: {name}
backend: {backend}
networks:
  lan: {{}}
nodes:
  web:
    interfaces:
      eth0: {{network: lan}}
    docker:
      - name: nginx
        image: {image}
        ports: ["{port}"]
"""


@pytest.mark.parametrize(
    ("case", "backend", "image", "port", "expected"),
    [
        (
            "netns",
            "netns",
            "busybox-httpd",
            "80:80",
            ":9: nodes.web.docker: docker: needs `backend: lxd`",
        ),
        (
            "port",
            "lxd",
            "busybox-httpd",
            "[::]:80:70000",
            ":12: nodes.web.docker[0].ports[0]: port 70000 is out of range (1-65535)",
        ),
        (
            "image",
            "lxd",
            "no-such-image",
            "80:80",
            ":11: nodes.web.docker[0].image: unknown docker image 'no-such-image'",
        ),
    ],
)
def test_bad_docker_input_exits_2_and_makes_nothing(
    case: str, backend: str, image: str, port: str, expected: str, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if REASON is None:
        build_images()  # so that only the image named wrong is unknown
    name = f"dkbad{case[:3]}"
    path = write_lab(
        tmp_path / "bad.yaml", BAD.format(name=name, backend=backend, image=image, port=port)
    )
    for verb in (["plan"], ["up"]):
        proc = run(*verb, str(path), check=False)
        assert proc.returncode == 2, proc.stderr
        assert f"{path}{expected}" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (Path("/run/palmnet") / name).exists()
    assert labs.lab_traces(name) == []
    if REASON is None:
        assert labs.lxd_traces(name) == []


def test_up_on_netns_of_a_docker_lab_is_refused(tmp_path: Path) -> None:
    """`up --backend netns` of a file that says `backend: lxd`: exit 2 at the key."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = "dkbadnet"
    text = BAD.format(name=name, backend="lxd", image="busybox-httpd", port="80:80")
    path = write_lab(tmp_path / "bad.yaml", text)
    if REASON is None:
        build_images()
    proc = run("up", "--backend", "netns", str(path), check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:9: nodes.web.docker: docker: needs the lxd backend, not netns" in proc.stderr
    assert labs.lab_traces(name) == []
