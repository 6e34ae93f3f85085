"""The web UI's gatekeeping and models, without a lab: Starlette's TestClient on the
real app (token, cookie, CSRF, errors as pages), the rule form checked by fw4's own
parsers, the topology graph, and what `palmnet ui` prints when it starts."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from palmnet.errors import InputError
from palmnet.openwrt.defaults import stock_firewall, stock_network
from palmnet.openwrt.uci import parse
from palmnet.ui import fwform, graph
from palmnet.ui.app import create_app
from palmnet.ui.auth import COOKIE, TokenAuth, csrf_of, new_token

TOKEN = "t0k3n-for-tests"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("PALMNET_STATE_DIR", str(tmp_path / "state"))  # no lab runs here
    return create_app(TOKEN)


def _paths(app) -> list[tuple[str, str]]:
    """Every route of the app as (method, a concrete path)."""
    out = []
    for route in app.routes:
        if isinstance(route, Mount):
            out.append(("GET", "/static/htmx.min.js"))
            continue
        assert isinstance(route, Route)
        path = route.path
        for name, value in (("lab", "l1"), ("node", "n1"), ("job:int", "1"), ("file", "x")):
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, path
        out += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


def test_every_route_is_401_without_the_token(app) -> None:
    client = TestClient(app, follow_redirects=False)
    routes = _paths(app)
    assert len(routes) >= 18
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": f"{COOKIE}=wrong"}):
            reply = client.request(method, path, headers=headers)
            assert reply.status_code == 401, (method, path, headers, reply.status_code)
    assert client.get("/?token=nearly" + TOKEN).status_code == 401


def test_the_token_in_the_url_becomes_a_cookie(app) -> None:
    client = TestClient(app, follow_redirects=False)
    reply = client.get(f"/lab/l1/ls?token={TOKEN}")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/lab/l1/ls"  # the token leaves the address bar
    cookie = reply.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    page = client.get("/")
    assert page.status_code == 200 and "Running labs" in page.text
    for reply in (page, TestClient(app).get("/")):  # a page and a 401 alike
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/cytoscape.min.js").status_code == 200
    bearer = TestClient(app).get("/api/labs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200 and bearer.json() == []


def test_every_write_needs_the_csrf_token(app) -> None:
    client = TestClient(app, follow_redirects=False)
    client.cookies.set(COOKIE, TOKEN)
    posts = [(m, p) for m, p in _paths(app) if m == "POST"]
    assert len(posts) >= 7
    for _, path in posts:
        for data, headers in (
            ({}, {}),
            ({"csrf": "forged"}, {}),
            ({"csrf": csrf_of("another-token")}, {}),
            ({}, {"X-CSRF-Token": "forged"}),
        ):
            reply = client.post(path, data=data, headers=headers)
            assert reply.status_code == 403, (path, data, headers)
            assert "CSRF" in reply.text
    # With it, the request reaches the page (here: bad input, said as a page).
    reply = client.post("/labs/up", data={"csrf": csrf_of(TOKEN), "path": "/nonexistent.yaml"})
    assert reply.status_code == 400 and "no such file" in reply.text
    reply = client.post("/labs/up", data={"path": ""}, headers={"X-CSRF-Token": csrf_of(TOKEN)})
    assert reply.status_code == 400 and "give the path" in reply.text
    multipart = client.post(
        "/labs/up", files={"x": ("a", b"b")}, data={"csrf": csrf_of(TOKEN), "path": ""}
    )
    assert multipart.status_code == 400


def test_a_lab_that_is_not_running_is_unknown_or_gone_never_an_error(app) -> None:
    client = TestClient(app, follow_redirects=False)
    client.cookies.set(COOKIE, TOKEN)
    paths = ("/lab/l1", "/lab/l1/ls", "/lab/l1/node/n1", "/lab/l1/node/n1/firewall")
    for path in paths:
        reply = client.get(path)
        assert reply.status_code == 404, path
        assert (
            "no running lab named l1 (running: none)" in reply.text
            and "Traceback" not in reply.text
        )
    app.state.ui.seen.add("l1")  # a page showed it once: now it is gone
    for path in paths:
        reply = client.get(path)
        assert reply.status_code == 410, path
        assert "is gone" in reply.text and "Traceback" not in reply.text
    reply = client.get("/lab/l1/graph.json")
    assert reply.status_code == 410 and reply.json()["gone"] is True
    alive = client.get("/lab/l1/alive")
    assert alive.status_code == 200 and "gone-banner" in alive.text


def test_tokens_are_random_and_never_blank() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 40 for t in tokens)
    assert csrf_of("a") != csrf_of("b") and csrf_of("a") != "a"
    with pytest.raises(ValueError):
        TokenAuth(lambda *a: None, "")


# -- the rule form ------------------------------------------------------------------
EXT_WEB = {"name": "ext_web", "src": "wan", "proto": "tcp", "dest_port": "80", "target": "ACCEPT"}


def _add(form: dict[str, str]):
    return fwform.edited(stock_firewall(), stock_network("fd00:1::/48"), fwform.Edit("add"), form)


def test_a_rule_from_the_form_is_uci_as_uci_writes_it() -> None:
    package, said = _add(EXT_WEB)
    assert said == "rule 'ext_web' added"
    text = fwform.text_of(package)
    assert text.endswith(
        "config rule\n\toption name 'ext_web'\n\toption src 'wan'\n\toption proto 'tcp'\n"
        "\toption dest_port '80'\n\toption target 'ACCEPT'\n\n"
    )
    assert parse(text, "firewall") == package  # what uci would read back
    rules = fwform.view(parse(text, "firewall")).rules
    assert rules[-1].values["dest_port"] == "80" and rules[-1].enabled


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("dest_port", "99999", "option 'dest_port' specifies invalid value '99999'"),
        ("dest_port", "80-70000", "option 'dest_port' specifies invalid value"),
        ("src", "dmz", "option 'src' specifies invalid value 'dmz'"),
        ("src_ip", "2001:db8::/129", "option 'src_ip' specifies invalid value"),
        ("proto", "tcpp", "option 'proto' specifies invalid value"),
        ("name", "", "a rule needs a name"),
        ("name", "x'; rm -rf / #", "is not a firewall value"),
        ("dest_port", "80\n\toption target 'DROP'", "is not a firewall value"),
        ("target", "MASQ", "must be one of ACCEPT, REJECT, DROP"),
    ],
)
def test_invalid_fields_are_refused_with_the_reason(field: str, value: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        _add({**EXT_WEB, field: value})
    assert reason in str(caught.value)


def test_edit_enable_disable_delete() -> None:
    network = stock_network("fd00:1::/48")
    package, _ = _add(EXT_WEB)
    index = len(package.of_type("rule")) - 1
    off, said = fwform.edited(package, network, fwform.Edit("disable", index), {})
    assert said == "rule 'ext_web' disabled"
    assert off.of_type("rule")[index].get("enabled") == "0"
    assert not fwform.view(off).rules[index].enabled
    on, _ = fwform.edited(off, network, fwform.Edit("enable", index), {})
    assert on.of_type("rule")[index].get("enabled") is None
    changed, said = fwform.edited(
        on, network, fwform.Edit("edit", index), {**EXT_WEB, "dest_port": "8080"}
    )
    assert said == "rule 'ext_web' changed"
    assert changed.of_type("rule")[index].get("dest_port") == "8080"
    with pytest.raises(InputError, match="99999"):
        fwform.edited(on, network, fwform.Edit("edit", index), {**EXT_WEB, "dest_port": "99999"})
    gone, said = fwform.edited(on, network, fwform.Edit("delete", index), {})
    assert said == "rule 'ext_web' deleted" and gone == stock_firewall()
    with pytest.raises(InputError, match="there is no rule 99"):
        fwform.edited(on, network, fwform.Edit("delete", 99), {})


# -- the graph ------------------------------------------------------------------------
LAB = """\
name: g1
networks:
  br0: {}
  lan: {}
nodes:
  up:
    kind: router
    interfaces:
      eth0: {network: br0, ipv6: [2001:db8:1::1/64], ra: true}
  router:
    kind: openwrt
    interfaces:
      eth0: {network: lan}
      eth1: {network: br0}
  h:
    count: 2
    interfaces:
      eth0: {network: lan}
"""


def test_graph_has_every_node_network_and_port(tmp_path) -> None:
    from palmnet.lab import plan_file

    path = tmp_path / "g1.yaml"
    path.write_text(LAB)
    plan = plan_file(path)
    live = {"up": "RUNNING", "router": "DEGRADED", "h1": "RUNNING", "h2": "STOPPED"}
    elements = graph.elements(plan, live, {("h1", "eth0"): "loss 30%"}, prefix="/lab/g1/node/")
    ids = {e["data"]["id"]: e["data"] for e in elements}
    assert {i for i in ids if i.startswith("node:")} == {
        "node:up",
        "node:router",
        "node:h1",
        "node:h2",
    }
    assert ids["node:router"]["kind"] == "openwrt" and ids["node:router"]["state"] == "degraded"
    assert ids["node:h2"]["state"] == "stopped" and ids["node:up"]["href"] == "/lab/g1/node/up"
    assert ids["net:br0"]["label"].splitlines() == ["br0", "2001:db8:1::/64"]
    assert "fd" in ids["net:lan"]["label"]  # the router's ULA /64 on its LAN
    assert ids["port:h1:eth0"]["state"] == "impaired"
    assert ids["port:h1:eth0"]["label"] == "eth0: loss 30%"
    assert ids["net:lan"]["state"] == "failed" and ids["net:br0"]["state"] == "up"
    assert ids["port:router:eth0"]["target"] == "net:lan"  # br-lan's port, not br-lan


# -- starting -------------------------------------------------------------------------
def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "palmnet", "ui", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err  # SIGTERM is a clean stop
    return err


def _get(host: str, port: int, path: str) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((host, port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        return s.recv(200).decode()


def test_starts_on_both_loopbacks_and_prints_the_url_first() -> None:
    proc, first = _start()
    try:
        match = re.fullmatch(r"http://\[::1\]:(\d+)/\?token=([A-Za-z0-9_-]{40,})", first)
        assert match, first
        port = int(match.group(1))
        assert " 401 " in _get("::1", port, "/").splitlines()[0]
        assert " 401 " in _get("127.0.0.1", port, "/").splitlines()[0]
        assert " 303 " in _get("::1", port, f"/?token={match.group(2)}").splitlines()[0]
    finally:
        err = _stop(proc)
    assert "WARNING" not in err


def test_listen_on_any_address_says_so_loudly() -> None:
    proc, first = _start("--listen", "::")
    try:
        port = int(re.fullmatch(r"http://\[::1\]:(\d+)/\?token=\S+", first).group(1))  # type: ignore[union-attr]
        assert " 401 " in _get("127.0.0.1", port, "/").splitlines()[0]  # dual-stack
    finally:
        err = _stop(proc)
    assert "WARNING: palmnet ui listens on ::, not only on loopback" in err


def test_bad_listen_address_is_bad_input() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "palmnet", "ui", "--listen", "not-an-address"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "not an IP address" in proc.stderr


def test_dnsmasq_leases() -> None:
    from palmnet.ui.leases import parse_leases

    text = (
        "1796238775 00:16:3e:24:db:54 198.51.100.136 w1 01:00:16:3e:24:db:54\n"
        "0 00:16:3e:31:5e:67 198.51.100.186 * *\n"
        "duid 00:01:00:01:2c:aa:bb:cc:00:16:3e:dd:14:51\n"
        "1796238774 1 2001:db8:ebbd:2084::116a w1 00:03:00:01:00:16:3e:24:db:54\n"
        "garbage line here\n"
    )
    leases = parse_leases(text)
    assert [(x.family, x.address, x.hostname, x.expires) for x in leases] == [
        (4, "198.51.100.136", "w1", 1796238775),
        (4, "198.51.100.186", "", 0),
        (6, "2001:db8:ebbd:2084::116a", "w1", 1796238774),
    ]
    assert leases[2].client == "00:03:00:01:00:16:3e:24:db:54"
