"""Labs without root, end to end: a plain user that the test creates (and removes)
runs the real `palmnet` command, and the kernel says what happened.

The tests run as root only to make the users (useradd/userdel) and to look at
the machine from outside: the lab's namespaces must be nowhere in the
machine's own (`ip netns`, `ip link`, mounts), and in the holder's mount
namespace instead (/proc/HOLDER/root/run/netns). Each user gets its own
runtime directory (XDG_RUNTIME_DIR, a 0700 directory it owns).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import palmnet
from palmnet.backends.netns.names import outer_names
from palmnet.lab import plan_file
from tests.integration.labs import lab_traces, run, run_json
from tests.integration.test_openwrt import EXT_WEB, EXT_WEB_LAN, NETWORK, _addr
from tests.integration.test_openwrt import LAB as OPENWRT_LAB
from tests.integration.test_routing import DMZ, PROFILES, ring_copy
from tests.integration.test_spine import FARM, _addresses, _reversed_nodes

pytestmark = pytest.mark.root

SRC = Path(palmnet.__file__).resolve().parents[1]
DEADLINE = 30.0


@dataclass
class User:
    """A plain user of this machine and how it runs palmnet."""

    name: str
    uid: int
    runtime: Path  # its XDG_RUNTIME_DIR
    work: Path  # its lab files
    src: Path  # palmnet's sources as it reads them

    @property
    def state(self) -> Path:
        return self.runtime / "palmnet"

    def palmnet(self, *args: str) -> list[str]:
        """`palmnet ARGS` as this user, with nothing of root's environment."""
        env = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"HOME={self.work}",
            f"XDG_RUNTIME_DIR={self.runtime}",
            f"PYTHONPATH={self.src}",
            "LANG=C.UTF-8",
        ]
        runner = ["runuser", "-u", self.name, "--", "env", "-i", *env]
        return [*runner, sys.executable, "-m", "palmnet", *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.palmnet(*args), capture_output=True, text=True, timeout=timeout, cwd=self.work
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{self.name}: palmnet {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> list[dict]:
        return json.loads(self.run(*args, "--format", "json").stdout)

    def exec(self, lab: str, node: str, *argv: str, check: bool = True):  # type: ignore[no-untyped-def]
        return self.run("exec", "--lab", lab, node, "--", *argv, check=check)

    def write(self, relative: str, text: str) -> Path:
        path = self.work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for p in (path, *path.parents):
            if p == self.work.parent:
                break
            os.chown(p, self.uid, -1)
        return path

    def processes(self) -> list[str]:
        """Every live process of this user on the machine (pid and command line). Not
        zombies: they have left their namespaces, and here init may reap them late."""
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid != self.uid:
                    continue
                if Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{entry.name} {cmd[:100]}")
        return found

    def holder(self, lab: str) -> int | None:
        title = f"palmnet-holder {self.state / lab}"
        for line in self.processes():
            pid, _, cmd = line.partition(" ")
            if cmd.startswith(title + " "):
                return int(pid)
        return None


def _readable_sources(user: str, base: Path) -> Path:
    """palmnet's sources where the user can read them: where they are, else a copy."""
    probe = ["runuser", "-u", user, "--", "test", "-r", str(SRC / "palmnet" / "__init__.py")]
    if subprocess.run(probe).returncode == 0:
        return SRC
    copy = base / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return copy


def _make_user(name: str, system: bool = False) -> User:
    subprocess.run(
        ["useradd", *(["-r"] if system else []), "-M", "-d", "/nonexistent", "-s", "/bin/sh", name],
        check=True,
    )
    entry = pwd.getpwnam(name)
    base = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    base.chmod(0o755)
    runtime, work = base / "xdg", base / "work"
    for d in (runtime, work):
        d.mkdir(mode=0o700)
        os.chown(d, entry.pw_uid, entry.pw_gid)
    src = _readable_sources(name, base)
    probe = ["runuser", "-u", name, "--", "env", f"PYTHONPATH={src}", sys.executable]
    if subprocess.run([*probe, "-c", "import palmnet.cli.app"]).returncode != 0:
        _remove_user(User(name, entry.pw_uid, runtime, work, src))
        pytest.skip(f"user {name} cannot run {sys.executable} (a venv it cannot read?)")
    return User(name, entry.pw_uid, runtime, work, src)


def _remove_user(user: User) -> None:
    for line in user.processes():  # only if a test failed half-way: they are its own
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    subprocess.run(["userdel", user.name], check=False)
    shutil.rmtree(user.runtime.parent, ignore_errors=True)


def _user_fixture(suffix: str, system: bool = False) -> Iterator[User]:
    user = _make_user(f"rl{os.getpid() % 100000}{suffix}", system)
    try:
        yield user
    finally:
        left = user.processes()
        if user.state.is_dir():
            for lab in os.listdir(user.state):
                if not lab.startswith("."):
                    user.run("down", lab, check=False)
        _remove_user(user)
        assert left == [], f"processes of {user.name} left after the tests: {left}"


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    yield from _user_fixture("a")


@pytest.fixture(scope="module")
def user2() -> Iterator[User]:
    yield from _user_fixture("b")


@pytest.fixture(scope="module")
def single() -> Iterator[User]:
    """A system user: useradd gives it no subordinate ids, so its labs' user namespaces
    map its own id only (no newuidmap)."""
    yield from _user_fixture("s", system=True)


def wait_for(what: str, test, deadline: float = DEADLINE):  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while True:
        result = test()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline:g} s: {what}")
        time.sleep(0.1)  # poll: the processes and files watched give no event


# -- what the machine itself shows --------------------------------------------------------
def host_view() -> dict[str, set[str]]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f}
    return {
        "netns": set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set(),
        "links": {line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines()},
        "mounts": mounts,
    }


def assert_invisible(before: dict[str, set[str]], lab: str, path: Path, user: User) -> None:
    """Nothing of the running lab in the machine's namespaces (other labs may come and
    go meanwhile, so only what would be this lab's is looked for)."""
    after = host_view()
    plan = plan_file(path)
    names = {n.name for n in plan.networks} | set(outer_names(plan).values())
    assert not [n for n in after["netns"] - before["netns"] if lab in n]
    assert not (after["links"] - before["links"]) & names
    assert not [m for m in after["mounts"] - before["mounts"] if str(user.runtime) in m]
    assert lab_traces(lab) == []
    # ...and all of it in the holder's own mount namespace, under its own /run/netns.
    holder = user.holder(lab)
    assert holder is not None
    inside = sorted(os.listdir(f"/proc/{holder}/root/run/netns"))
    assert inside == sorted([f"palmnet-{lab}", *(f"palmnet-{lab}.{n.name}" for n in plan.nodes)])


def assert_gone(user: User, lab: str) -> None:
    assert user.processes() == []
    assert not (user.state / lab).exists()
    assert lab_traces(lab) == []


# -- the spine -----------------------------------------------------------------------------
def test_spine_addresses_equal_plan_and_root(user: User) -> None:
    lab = f"rls{os.getpid() % 10000}"
    path = user.write("farm.yaml", FARM.format(name=lab))
    planned = run_json("plan", str(path))
    before = host_view()

    live = user.json("up", str(path))
    assert _addresses(live) == _addresses(planned)
    assert {n["state"] for n in live} == {"RUNNING"}
    macs = {(n["name"], i["name"]): i["mac"] for n in live for i in n["interfaces"]}
    assert macs == {(n["name"], i["name"]): i["mac"] for n in planned for i in n["interfaces"]}
    # The kernel's SLAAC address from radvd's RA, as in the root spine test.
    shown = user.exec(lab, "w2", "ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "global")
    gua = [a for entry in json.loads(shown.stdout) for a in entry["addr_info"] if a]
    assert len(gua) == 1 and gua[0].get("dynamic") is True, gua
    assert gua[0]["local"].startswith("2001:db8:ebbd:2084:216:3eff:fe")
    assert user.exec(lab, "w2", "id", "-u").stdout.strip() == "0"  # root of its namespace
    assert_invisible(before, lab, path, user)

    # The same file as root, the same lab name, at the same time: the same addresses,
    # and neither lab sees the other.
    as_root = run_json("up", str(path))
    try:
        assert _addresses(as_root) == _addresses(live)
        assert {n["state"] for n in user.json("ls", lab)} == {"RUNNING"}
    finally:
        run("down", lab)
    assert lab_traces(lab) == []
    assert {n["state"] for n in user.json("ls", lab)} == {"RUNNING"}

    user.run("down", lab)
    assert_gone(user, lab)
    again = user.json(
        "up", str(user.write("farm-reversed.yaml", _reversed_nodes(path.read_text())))
    )
    assert _addresses(again) == _addresses(planned)
    user.run("down", lab)
    assert_gone(user, lab)


# -- bad input ------------------------------------------------------------------------------
def test_what_needs_root_is_refused_up_front(user: User) -> None:
    lab = f"rlr{os.getpid() % 10000}"
    text = FARM.format(name=lab).replace(
        "domain: farm.example\n", "domain: farm.example\nbackend: lxd\n"
    )
    path = user.write("lxd.yaml", text)
    refused = user.run("up", str(path), check=False)
    assert refused.returncode == 2, refused
    assert f"{path}:3: backend: lxd cannot run a rootless lab" in refused.stderr
    assert "Traceback" not in refused.stderr
    plain = user.write("plain.yaml", FARM.format(name=lab))
    for args in (["--backend", "lxd"], ["--raise-neigh-limit"]):
        refused = user.run("up", *args, str(plain), check=False)
        assert refused.returncode == 2, refused
        assert "rootless" in refused.stderr or "root" in refused.stderr
    planned = run("plan", "--rootless", str(path), check=False)
    assert planned.returncode == 2 and f"{path}:3: backend:" in planned.stderr
    assert_gone(user, lab)


# -- down after a kill -9 of up; two users ----------------------------------------------------
def test_kill_of_up_then_down_leaves_nothing(user: User) -> None:
    lab = f"rlk{os.getpid() % 10000}"
    path = user.write("big.yaml", FARM.format(name=lab).replace("count: 3", "count: 150"))
    proc = subprocess.Popen(
        user.palmnet("up", str(path)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        holder = wait_for("the holder of the lab", lambda: user.holder(lab))
        wait_for(
            "namespaces made in the holder",
            lambda: len(os.listdir(f"/proc/{holder}/root/run/netns")) >= 3,
        )
        up = [p for p in user.processes() if "-m palmnet up" in p]
        assert up, user.processes()
        os.kill(int(up[0].split()[0]), signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode != 0, "up finished before it was killed: nothing was tested"
    assert user.processes(), "the holder goes only with down"
    user.run("down", lab)
    assert_gone(user, lab)


def test_two_users_same_lab_name(user: User, user2: User) -> None:
    lab = f"rl2u{os.getpid() % 1000}"
    text = FARM.format(name=lab)
    first = user.json("up", str(user.write("same.yaml", text)))
    second = user2.json("up", str(user2.write("same.yaml", text)))
    assert _addresses(first) == _addresses(second)  # same plan, two separate kernels' views
    assert user.holder(lab) != user2.holder(lab)
    user.run("down", lab)
    assert_gone(user, lab)
    assert {n["state"] for n in user2.json("ls", lab)} == {"RUNNING"}
    w1 = _addr({n["name"]: n for n in second}, "w1", "eth0", "2001:db8:ebbd:2084:")
    assert user2.exec(lab, "w2", "ping", "-c1", "-W2", w1, check=False).returncode == 0
    user2.run("down", lab)
    assert_gone(user2, lab)


# -- the OpenWrt firewall -------------------------------------------------------------------
def test_openwrt_firewall_as_user(user: User) -> None:
    lab = f"rlo{os.getpid() % 10000}"
    user.write("openwrt/router/network", NETWORK)
    path = user.write("openwrt/lab.yaml", OPENWRT_LAB.format(name=lab))
    nodes = {n["name"]: n for n in user.json("up", str(path))}
    try:

        def curl(node: str, url: str, timeout: float = 3) -> subprocess.CompletedProcess[str]:
            argv = ["curl", "-sS", "-g", "--max-time", str(timeout), "-o", "/dev/null"]
            return user.exec(lab, node, *argv, "-w", "%{http_code}", url, check=False)

        def add_rule(text: str) -> None:
            user.exec(lab, "router", "sh", "-c", f"cat >> /etc/config/firewall <<'EOF'\n{text}EOF")
            user.exec(lab, "router", "/etc/init.d/firewall", "restart")

        wan = _addr(nodes, "router", "eth1", "2001:db8:ebbd:2080:")
        w1 = _addr(nodes, "w1", "eth0", "2001:db8:ebbd:2084:")
        planned = {n["name"]: n for n in run_json("plan", str(path))}
        assert wan == _addr(planned, "router", "eth1", "2001:db8:ebbd:2080:")
        assert w1 == _addr(planned, "w1", "eth0", "2001:db8:ebbd:2084:")
        refused = curl("laptop", f"http://[{wan}]/", timeout=5)
        assert refused.returncode == 7, refused  # fw4's input REJECT: a reset, not a hang
        add_rule(EXT_WEB)
        assert curl("laptop", f"http://[{wan}]/").stdout == "200"
        refused = curl("laptop", f"http://[{w1}]/", timeout=2)
        assert refused.returncode == 7, refused  # wan -> lan: the forward REJECT
        add_rule(EXT_WEB_LAN)
        assert curl("laptop", f"http://[{w1}]/").stdout == "200"
        ruleset = user.exec(lab, "router", "nft", "list", "table", "inet", "fw4").stdout
        assert "ext_web_lan" in ruleset
    finally:
        user.run("down", lab)
    assert_gone(user, lab)


# -- routing: RIPng with BIRD ---------------------------------------------------------------
def test_ripng_ring_as_user(user: User) -> None:
    lab = f"rlrip{os.getpid() % 1000}"
    path = ring_copy(user.work, lab, "ripng", PROFILES["ripng"])
    os.chown(path, user.uid, -1)
    plan = plan_file(path)
    dns = str(plan.node("dns").interfaces[0].ipv6_slaac[0].ip)
    user.run("up", str(path))
    try:
        wait_for(
            "laptop pings dns across the ring",
            lambda: (
                user.exec(lab, "laptop", "ping", "-c1", "-W1", dns, check=False).returncode == 0
            ),
        )
        routes = {r["prefix"]: r for r in user.json("route", "--lab", lab, "r1")}
        assert routes[DMZ]["source"] == "rip"
        assert routes[DMZ]["via"].startswith("fe80::")
        neighbours = wait_for(
            "two RIPng neighbours on r1",
            lambda: (
                (rows := user.json("neighbors", "--lab", lab, "r1")) and len(rows) == 2 and rows
            ),
        )
        assert sorted(r["interface"] for r in neighbours) == ["eth0", "eth1"]
    finally:
        user.run("down", lab)
    assert_gone(user, lab)


# -- a user without subordinate ids: one mapped id -------------------------------------------
CASCADE = Path(__file__).resolve().parents[2] / "examples" / "cascade.yaml"


def test_single_id_user_runs_pd_and_refuses_rdnssd(single: User) -> None:
    assert not [
        line
        for line in Path("/etc/subuid").read_text().splitlines()
        if line.startswith(single.name + ":")
    ]
    for folder in ("cascade-r1", "cascade-r2"):
        for f in (CASCADE.parent / folder).iterdir():
            single.write(f"{folder}/{f.name}", f.read_text())
    lab = f"rlc{os.getpid() % 10000}"
    text = CASCADE.read_text().replace("name: cascade", f"name: {lab}")
    refused = single.run("up", str(single.write("cascade.yaml", text)), check=False)
    assert refused.returncode == 2, refused
    assert "nodes.web: rdnssd cannot run in a rootless lab" in refused.stderr
    assert_gone(single, lab)

    # Without the hosts (rdnssd), the rest runs with one id: radvd, dnsmasq (no group
    # change), kea, and dhcpcd (its privilege drop fails, and it goes on as root).
    data = YAML().load(text)
    for host in ("web", "h1", "h2"):
        del data["nodes"][host]
    out = StringIO()
    YAML().dump(data, out)
    path = single.write("routers.yaml", out.getvalue())
    nodes = single.json("up", str(path))
    try:
        assert {n["name"] for n in nodes} == {"isp", "r1", "r2"}
        services = {
            (n["name"], s["name"]): s["state"]
            for n in single.json("ls", lab)
            for s in n["services"]
        }
        assert set(services.values()) == {"running"}, services
        assert ("r2", "dhcpcd") in services and ("isp", "kea") in services
        rows = wait_for(
            "r1 and r2 hold their planned delegations",
            lambda: (
                (r := json.loads(single.run("ls", lab, "--prefixes", "--format", "json").stdout))
                and all(row["delegated"] == row["planned"] for row in r)
                and r
            ),
        )
        assert {row["name"] for row in rows} == {"r1", "r2"}
        uid_map = single.exec(lab, "r1", "cat", "/proc/self/uid_map").stdout.split()
        assert uid_map == ["0", str(single.uid), "1"]
    finally:
        single.run("down", lab)
    assert_gone(single, lab)


# -- a runtime directory under /run, as systemd-logind makes it --------------------------------
def test_runtime_dir_under_run(user: User) -> None:
    """The holder covers /run with the lab's own tmpfs and binds the user's runtime
    directory back in its place: the outer record is the same file inside and out."""
    if not os.path.isdir("/run/user"):
        pytest.skip("no /run/user on this machine")
    runtime = Path(f"/run/user/{user.uid}")
    if runtime.exists():
        pytest.skip(f"{runtime} exists (a session of that uid?): not ours to use")
    runtime.mkdir(mode=0o700)
    os.chown(runtime, user.uid, -1)
    as_logind = dataclasses.replace(user, runtime=runtime)
    lab = f"rlx{os.getpid() % 10000}"
    try:
        path = as_logind.write("xdg.yaml", FARM.format(name=lab))
        as_logind.run("up", str(path))
        inside = as_logind.exec(lab, "w1", "ls", str(runtime / "palmnet" / lab)).stdout.split()
        assert inside == ["inner", "journal.sqlite"]
        assert (runtime / "palmnet" / lab / "journal.sqlite").exists()
        as_logind.run("down", lab)
        assert_gone(as_logind, lab)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


# -- root asks for it -----------------------------------------------------------------------
def test_root_with_rootless_flag(tmp_path: Path) -> None:
    """`up --rootless` by root: the lab's namespaces are its holder's, not the machine's;
    verbs find it without the flag; `down` leaves nothing."""
    lab = f"rlq{os.getpid() % 10000}"
    path = tmp_path / "farm.yaml"
    path.write_text(FARM.format(name=lab))
    planned = run_json("plan", str(path))
    live = json.loads(run("up", "--rootless", str(path), "--format", "json").stdout)
    try:
        assert _addresses(live) == _addresses(planned)
        assert not [n for n in os.listdir("/run/netns") if lab in n]
        uid_map = run("exec", "--lab", lab, "w1", "--", "cat", "/proc/self/uid_map").stdout
        assert uid_map.split() == ["0", "0", "1"]  # root's lab: a user namespace all the same
        assert "no change" in run("up", str(path)).stderr
    finally:
        run("down", lab)
    assert lab_traces(lab) == []
    assert not Path(f"/run/palmnet/{lab}").exists()
    assert not Path(f"/run/palmnet/.locks/{lab}").exists()  # nor its lock file


# -- NAT64 and CLAT open the tun device as the user ---------------------------------------------
IPV6ONLY = Path(__file__).resolve().parents[2] / "examples" / "ipv6only.yaml"


def test_nat64_needs_a_tun_device_the_user_may_open(user: User) -> None:
    probe = [
        "runuser",
        "-u",
        user.name,
        "--",
        "test",
        "-r",
        "/dev/net/tun",
        "-a",
        "-w",
        "/dev/net/tun",
    ]
    if subprocess.run(probe).returncode == 0:
        pytest.skip("this machine lets users open /dev/net/tun: TAYGA would run rootless")
    for f in (IPV6ONLY.parent / "ipv6only-router").iterdir():
        user.write(f"ipv6only-router/{f.name}", f.read_text())
    lab = f"rl6{os.getpid() % 10000}"
    text = IPV6ONLY.read_text().replace("name: v6only", f"name: {lab}")
    assert f"name: {lab}" in text
    refused = user.run("up", str(user.write("ipv6only.yaml", text)), check=False)
    assert refused.returncode == 2, refused
    assert "nodes.router: tayga opens /dev/net/tun, which your user may not open" in refused.stderr
    assert_gone(user, lab)
