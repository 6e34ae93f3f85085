"""The LXD backend on a real LXD: the spine's promises, images, snapshots, cleanup.

Skipped (with the reason) where LXD is not installed, not running or not
initialised: `scripts/lxd-setup.sh` makes it ready, and `.ci/run` calls it
first. The first test to need the router image builds it (debootstrap, about
a minute, once per machine: LXD keeps it).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration import labs
from tests.integration.labs import lxd_reason, node_exec, run, run_json, write_lab
from tests.integration.test_spine import FARM, _addresses, _reversed_nodes

pytestmark = pytest.mark.root


REASON = lxd_reason()
needs_lxd = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _lxd():
    from palmnet.backends.lxd.client import connect

    return connect()


def lxd_traces(lab: str) -> list[str]:
    """Every LXD object tagged with the lab, and its state dir."""
    traces = labs.lxd_traces(lab)
    if (Path("/run/palmnet") / lab).exists():
        traces.append(f"state dir /run/palmnet/{lab}")
    return traces


def _lab_name(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 100000}"


@pytest.fixture
def lab_name(request):
    names: list[str] = []

    def make(prefix: str) -> str:
        name = _lab_name(prefix)
        names.append(name)
        return name

    yield make
    for name in names:
        run("down", name, check=False)
        assert lxd_traces(name) == []


def _gua(node: dict, prefix: str) -> str:
    return next(
        a.split("/")[0] for i in node["interfaces"] for a in i["ipv6"] if a.startswith(prefix)
    )


SMALL = """\
name: {name}
backend: lxd
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: [2001:db8:77::1/64], ra: true}}
  web:
    interfaces:
      eth0: {{network: lan}}
"""


def test_lxd_not_running_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = _lab_name("n")
    path = write_lab(tmp_path / "lab.yaml", SMALL.format(name=name))
    proc = run("up", "--backend", "lxd", str(path), check=False, env={"LXD_DIR": "/nonexistent"})
    assert proc.returncode == 2, proc.stderr
    assert "palmnet lxd init" in proc.stderr or "pylxd" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (Path("/run/palmnet") / name).exists()
    if REASON is None:
        assert lxd_traces(name) == []


@needs_lxd
def test_spine_stable_addresses_on_lxd(lab_name, tmp_path: Path) -> None:
    """The spine's test on backend lxd: plan == live, the same after down/up reversed."""
    name = lab_name("s")
    path = write_lab(tmp_path / "farm.yaml", FARM.format(name=name))
    planned = run_json("plan", str(path))
    live = run_json("up", "--backend", "lxd", str(path))
    assert _addresses(live) == _addresses(planned)
    assert {n["state"] for n in live} == {"RUNNING"}
    macs = {(n["name"], i["name"]): i["mac"] for n in live for i in n["interfaces"]}
    assert macs == {(n["name"], i["name"]): i["mac"] for n in planned for i in n["interfaces"]}
    w2 = next(n for n in live if n["name"] == "w2")
    assert _gua(w2, "2001:db8:ebbd:2084:").startswith("2001:db8:ebbd:2084:216:3eff:fe")

    # real containers: own hostname, exit codes pass through, the router's radvd inside
    assert node_exec(name, "w3", "hostname").stdout.strip() == "w3"
    assert node_exec(name, "w3", "sh", "-c", "exit 7", check=False).returncode == 7
    assert "radvd" in node_exec(name, "up", "ps").stdout
    far = _gua(next(n for n in live if n["name"] == "alpine"), "2001:db8:ebbd:2080:")
    node_exec(name, "w1", "ping", "-c", "1", "-W", "2", far)
    # the host takes nothing from the lab: no IPv6 on the lab's bridges, no route into it
    from palmnet.backends.lxd.networks import bridge_name

    for net in ("br0", "lxdbr0"):
        bridge = bridge_name(name, net)
        assert Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6").read_text().strip() == "1"
    routes = subprocess.run(["ip", "-6", "route"], capture_output=True, text=True).stdout
    assert "2001:db8:ebbd" not in routes

    run("down", name)
    assert lxd_traces(name) == []
    reversed_path = write_lab(tmp_path / "farm-reversed.yaml", _reversed_nodes(path.read_text()))
    again = run_json("up", "--backend", "lxd", str(reversed_path))
    assert _addresses(again) == _addresses(planned)


def _busybox_rootfs(tmp_path: Path) -> Path:
    """A user's rootfs tarball: palmnet's busybox rootfs, as a file to import."""
    run("image", "build", "busybox")
    from palmnet.backends.lxd.images import cached_rootfs

    cached = cached_rootfs("busybox")
    assert cached.exists()
    return cached


@needs_lxd
def test_image_import_launch_and_ls(lab_name, tmp_path: Path) -> None:
    from palmnet.backends.lxd import images

    alias = f"pn-test-imp{os.getpid() % 100000}"
    rootfs = _busybox_rootfs(tmp_path)
    lxd = _lxd()
    name = lab_name("i")
    try:
        fingerprint = run("image", "import", str(rootfs), "--alias", alias).stdout.strip()
        meta = lxd.get(f"images/{fingerprint}")
        assert meta["architecture"] == images.lxd_architecture()
        listed = run_json("image", "ls")
        assert any(alias in row["aliases"] for row in listed)
        path = write_lab(tmp_path / "lab.yaml", SMALL.format(name=name))
        planned = run_json("plan", str(path))
        proc = run("up", str(path), "--format", "json", env={"PALMNET_LXD_HOST_IMAGE": alias})
        assert proc.returncode == 0
        live = run_json("ls", name)
        assert _addresses(live) == _addresses(planned)
        inst = lxd.get(f"instances/{name}-web")
        assert inst["config"]["image.description"].startswith(rootfs.name)
        gua = _gua(next(n for n in live if n["name"] == "web"), "2001:db8:77:")
        assert ipaddress.IPv6Address(gua).exploded.startswith("2001:0db8:0077:0000:0216:3eff")
    finally:
        run("down", name, check=False)
        target = images.alias_target(lxd, alias)
        if target:
            images.delete_image(lxd, target)


@needs_lxd
def test_snapshot_publish_and_three_copies(lab_name, tmp_path: Path) -> None:
    """A customised node, snapshot, publish; three copies from the image, each with its
    own stable address; down removes the lab's published image too."""
    from palmnet.addressing.eui64 import eui64_address

    name = lab_name("p")
    path = write_lab(tmp_path / "lab.yaml", SMALL.format(name=name))
    run("up", str(path))
    node_exec(name, "web", "sh", "-c", "echo farm-template > /etc/motd")
    run("snapshot", "--lab", name, "web", "s0")
    alias = f"pn-test-web{os.getpid() % 100000}"
    fingerprint = run("publish", "--lab", name, "web/s0", "--alias", alias).stdout.strip()
    assert len(fingerprint) == 64
    launched = run(
        "launch",
        "--lab",
        name,
        "web",
        "w11",
        "w12",
        "w13",
        "--format",
        "json",
        env={"PALMNET_LXD_HOST_IMAGE": alias},
    )
    assert launched.returncode == 0
    live = {n["name"]: n for n in run_json("ls", name)}
    guas = set()
    for copy in ("w11", "w12", "w13"):
        assert live[copy]["state"] == "RUNNING"
        assert node_exec(name, copy, "cat", "/etc/motd").stdout.strip() == "farm-template"
        iface = live[copy]["interfaces"][0]
        gua = _gua(live[copy], "2001:db8:77:")
        assert ipaddress.IPv6Address(gua) == eui64_address(iface["mac"], "2001:db8:77::/64")
        guas.add(gua)
    assert len(guas) == 3
    # stable: a copy keeps its address across stop/start
    before = _addresses(run_json("ls", name))
    run("stop", "--lab", name, "w12")
    assert {n["name"]: n["state"] for n in run_json("ls", name)}["w12"] == "STOPPED"
    run("start", "--lab", name, "w12")
    assert _addresses(run_json("ls", name)) == before
    run("down", name)
    assert lxd_traces(name) == []
    from palmnet.backends.lxd import images

    assert images.alias_target(_lxd(), alias) is None


@needs_lxd
def test_failed_start_is_reported_and_rolled_back(lab_name, tmp_path: Path) -> None:
    """An image without an init: LXD's reason is shown, and nothing of the lab is left."""
    from palmnet.backends.lxd import images

    alias = f"pn-test-broken{os.getpid() % 100000}"
    broken = tmp_path / "broken.tar.gz"
    etc = tmp_path / "broken" / "etc"
    etc.mkdir(parents=True)
    (etc / "hostname").write_text("broken\n")
    with tarfile.open(broken, "w:gz") as tar:
        tar.add(etc, arcname="./etc")
    lxd = _lxd()
    run("image", "import", str(broken), "--alias", alias)
    name = lab_name("f")
    path = write_lab(
        tmp_path / "lab.yaml",
        f"name: {name}\nbackend: lxd\nnetworks:\n  lan: {{}}\nnodes:\n"
        "  h:\n    interfaces:\n      eth0: {network: lan}\n",
    )
    try:
        proc = run("up", str(path), check=False, env={"PALMNET_LXD_HOST_IMAGE": alias})
        assert proc.returncode == 1, proc.stderr
        assert "node h" in proc.stderr and "start" in proc.stderr.lower(), proc.stderr
        assert "removed what it made" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert lxd_traces(name) == []
    finally:
        images.delete_image(lxd, images.alias_target(lxd, alias) or "")


@needs_lxd
def test_image_key_and_security_keys(lab_name, tmp_path: Path) -> None:
    """`image:`, `security.nesting` and `security.privileged` on a node (topology keys)."""
    name = lab_name("k")
    text = (
        f"name: {name}\nbackend: lxd\nnetworks:\n  lan: {{}}\nnodes:\n"
        "  h:\n    image: palmnet-busybox\n    security.nesting: true\n"
        "    interfaces:\n      eth0: {network: lan}\n"
    )
    path = write_lab(tmp_path / "lab.yaml", text)
    plan = run("plan", str(path), check=False)
    if plan.returncode != 0:
        pytest.skip(f"topology keys image/security.* not there yet: {plan.stderr.strip()}")
    run("up", str(path))
    config = _lxd().get(f"instances/{name}-h")["config"]
    assert config["security.nesting"] == "true"
    assert config["image.description"].startswith("busybox")


# -- pure parts (no LXD needed) ----------------------------------------------------------
def test_container_config_pins_plan_macs_and_node_settings(tmp_path: Path) -> None:
    from palmnet.backends.lxd import instances, networks
    from palmnet.lab import plan_file

    path = write_lab(tmp_path / "farm.yaml", FARM.format(name="cfg"))
    plan = plan_file(path)
    up = plan.node("up")
    config = instances.instance_config(plan, up, "palmnet-cfg")
    assert config["name"] == "cfg-up"
    assert config["source"]["alias"] == instances.image_of(up)
    for iface in up.interfaces:
        nic = config["devices"][iface.name]
        assert nic["hwaddr"] == iface.mac and nic["nictype"] == "bridged"
        assert nic["parent"] == networks.bridge_name("cfg", iface.network)
    c = config["config"]
    assert c["user.palmnet.lab"] == "cfg" and c["user.palmnet.node"] == "up"
    assert c["raw.lxc"] == "lxc.uts.name = up"
    assert c["linux.sysctl.net.ipv6.conf.eth1.forwarding"] == "1"
    assert c["linux.sysctl.net.ipv6.conf.all.addr_gen_mode"] == "0"
    assert c["linux.sysctl.net.ipv6.conf.eth0.use_tempaddr"] == "0"
    host = instances.instance_config(plan, plan.node("w1"), "palmnet-cfg")["config"]
    assert host["linux.sysctl.net.ipv6.conf.eth0.accept_ra"] == "1"
    assert host["linux.sysctl.net.ipv6.neigh.eth0.retrans_time_ms"] == "100"
    assert "security.privileged" not in host
    owrt = instances.instance_config(plan, plan.node("w1"), "p", image_os="OpenWrt")
    assert owrt["config"]["security.privileged"] == "true"
    assert owrt["devices"]["ppp"]["path"] == "/dev/ppp"


def test_bridge_names_fit_and_differ_per_lab() -> None:
    from palmnet.backends.lxd.networks import bridge_name

    names = {bridge_name(lab, net) for lab in ("a", "b", "abcdefghijkl") for net in ("br0", "x")}
    assert len(names) == 6
    assert all(len(n) <= 15 for n in names)


def test_metadata_yaml_has_architecture_and_creation_date() -> None:
    import io

    from ruamel.yaml import YAML

    from palmnet.backends.lxd.images import metadata_tarball, metadata_yaml

    text = metadata_yaml("aarch64", {"description": 'a "quoted" one'}, created=1544922658)
    data = YAML(typ="safe").load(text)
    assert data == {
        "architecture": "aarch64",
        "creation_date": 1544922658,
        "properties": {"description": 'a "quoted" one'},
    }
    with tarfile.open(fileobj=io.BytesIO(metadata_tarball(text))) as tar:
        assert tar.getnames() == ["metadata.yaml"]


GATEWAY = """\
name: {name}
backend: lxd
domain: gw.example
networks:
  lan: {{}}
  wan: {{}}
nodes:
  gw:
    kind: openwrt
    uci: gw
    interfaces:
      eth0: {{network: lan}}
      eth1: {{network: wan}}
  w:
    count: 1
    interfaces:
      eth0: {{network: lan}}
"""

GW_NETWORK = """\
config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'eth0'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ip6addr '2001:db8:78::1/64'

config interface 'wan'
\toption device 'eth1'
\toption proto 'static'
\toption ipaddr '192.0.2.2'
\toption netmask '255.255.255.0'
"""


@needs_lxd
def test_launch_firewall_and_dns_on_lxd(lab_name, tmp_path: Path) -> None:
    """The lab verbs that read or change a running lab work on LXD as on netns: the
    openwrt node's firewall (compiled on the host, loaded in the container's
    namespace), `launch` of a copy that DNS then knows, `restart` of a node."""
    name = lab_name("g")
    (tmp_path / "gw").mkdir()
    (tmp_path / "gw" / "network").write_text(GW_NETWORK)
    path = write_lab(tmp_path / "lab.yaml", GATEWAY.format(name=name))
    run("up", str(path))
    shown = run("firewall", "show", "--lab", name, "gw").stdout
    assert "table inet fw4" in shown and "chain input" in shown
    run("firewall", "reload", "--lab", name, "gw")
    assert run("firewall", "check", "--lab", name, "gw", check=False).returncode == 0
    proc = run("firewall", "show", "--lab", name, "w1", check=False)
    assert proc.returncode == 2 and "only openwrt nodes have a firewall" in proc.stderr

    live = run_json("launch", "--lab", name, "w", "w2")
    w2 = next(n for n in live if n["name"] == "w2")
    gua = _gua(w2, "2001:db8:78:")
    answer = node_exec(name, "w1", "nslookup", "w2.gw.example", "2001:db8:78::1").stdout
    assert gua in answer, answer

    def planned(nodes: object) -> object:  # DHCPv6 leases (/128) are not planned yet
        return {k: {a for a in v if not a.endswith("/128")} for k, v in _addresses(nodes).items()}

    before = planned(run_json("ls", name))
    run("restart", "--lab", name, "w2")
    assert planned(run_json("ls", name)) == before


@pytest.mark.serial  # lowers the machine's neighbour limit for a moment
@needs_lxd
def test_raised_neighbour_limit_is_restored_after_down_on_lxd(lab_name, tmp_path: Path) -> None:
    """`up --raise-neigh-limit` raises the machine's gc_thresh1/2/3 on LXD too, and `down`
    puts them back. The limits are lowered first (and restored after) below what `up`
    raises them to even on an empty table (2 x the lab's need), so the small lab has
    something to raise whatever other labs come and go meanwhile; they stay that low
    only until `up` starts, well under a second."""
    from palmnet.kernel import neigh_limit
    from palmnet.lab.host import ENTRIES_PER_INTERFACE

    original = {k: neigh_limit.read(k) for k in neigh_limit.KEYS}
    floor = neigh_limit.values_for(ENTRIES_PER_INTERFACE * 2)  # SMALL: 2 interfaces
    lowered = {k: max(v - 1, 1) for k, v in floor.items()}
    name = lab_name("n")
    path = write_lab(tmp_path / "lab.yaml", SMALL.format(name=name))
    try:
        for key in ("gc_thresh3", "gc_thresh2", "gc_thresh1"):
            neigh_limit.write(key, lowered[key])
        proc = run("up", "--raise-neigh-limit", str(path))
        assert "raised gc_thresh" in proc.stderr, proc.stderr
        assert neigh_limit.read("gc_thresh3") > lowered["gc_thresh3"]
        run("down", name)
        # the machine's table is over the lowered gc_thresh3 (other labs), so `down`
        # handed the restore to a detached process, which waits up to 10 s for room
        assert labs.restores_done(), "the restore handed over by `down` did not finish"
        assert {k: neigh_limit.read(k) for k in neigh_limit.KEYS} == lowered
    finally:
        run("down", name, check=False)
        for key in ("gc_thresh1", "gc_thresh2", "gc_thresh3")[::-1]:
            neigh_limit.write(key, original[key])
        assert {k: neigh_limit.read(k) for k in neigh_limit.KEYS} == original
