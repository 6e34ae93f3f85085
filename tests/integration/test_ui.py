"""`palmnet ui` driven by Debian's Chromium (headless, Selenium, no browser download)
against real labs: an OpenWrt router in front of a farm, and a RIPng ring.

What a person would do, judged by what really happens: the topology picture has
every node; a rule added through the firewall form makes the router's port 80
answer from the WAN side while the LAN farm stays closed; port 99999 is refused
and the file is untouched; a link failed from the UI is down in the kernel and
marked in the picture; converge shows its timeline; a lab taken down from the CLI
turns "gone". Screenshots go to $PALMNET_UI_SHOTS (default: pytest's temp dir).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.browser import UiServer, browser, browser_missing, wait_for
from tests.integration.labs import lab_traces, node_tool, run, run_json, write_lab
from tests.integration.test_openwrt import LAB as ROUTER_LAB
from tests.integration.test_openwrt import NETWORK, _addr, _curl

pytestmark = pytest.mark.root

RING = Path(__file__).resolve().parents[2] / "examples" / "ring.yaml"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("PALMNET_UI_SHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("ui-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def router_lab(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("ui-router")
    (folder / "router").mkdir()
    (folder / "router" / "network").write_text(NETWORK)
    name = f"ui{os.getpid() % 100000}"
    path = write_lab(folder / "lab.yaml", ROUTER_LAB.format(name=name))
    nodes = {n["name"]: n for n in run_json("up", str(path))}
    yield name, nodes
    run("down", name, check=False)
    assert lab_traces(name) == []


@pytest.fixture(scope="module")
def ring_lab(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("bird") is None and not Path("/usr/sbin/bird").exists():
        pytest.skip("bird (BIRD 2) is not installed")
    import re

    text = re.sub(r"(?m)^name: .*$", f"name: uir{os.getpid() % 10000}", RING.read_text())
    text = re.sub(r"profiles: &routing \[[^\]]*\]", "profiles: &routing [ripng-tuned]", text)
    name = re.search(r"(?m)^name: (\S+)$", text).group(1)  # type: ignore[union-attr]
    path = write_lab(tmp_path_factory.mktemp("ui-ring") / "ring.yaml", text)
    run("up", str(path), timeout=240)
    yield name
    run("down", name, check=False)
    assert lab_traces(name) == []


@pytest.fixture(scope="module")
def server(router_lab, ring_lab):
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    ui = UiServer()
    yield ui
    err = ui.stop()
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def chrome(server, tmp_path_factory: pytest.TempPathFactory):
    with browser(tmp_path_factory.mktemp("chromium")) as driver:
        driver.get(server.url)  # the token becomes a cookie
        wait_for("the labs page", lambda: driver.find_element("id", "labs"))
        yield driver


@pytest.fixture(scope="module")
def chrome2(server, tmp_path_factory: pytest.TempPathFactory):
    """A second browser (its own profile and cookie): what one changes, the other sees."""
    with browser(tmp_path_factory.mktemp("chromium2")) as driver:
        driver.get(server.url)
        wait_for("the labs page", lambda: driver.find_element("id", "labs"))
        yield driver


def _by(driver, css: str):  # type: ignore[no-untyped-def]
    return driver.find_element("css selector", css)


def _follow(driver, element) -> None:  # type: ignore[no-untyped-def]
    """Click what loads a new page, and wait until the old one is gone.

    A click returns before the browser has left the page, so a lookup right after it
    may search the old page (and miss what only the new one has)."""
    old = driver.find_element("tag name", "html")
    element.click()
    wait_for("the next page", lambda: _stale(old))


def _stale(element) -> bool:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.tag_name  # noqa: B018 - asks the browser whether it still has it
    except StaleElementReferenceException:
        return True
    return False


def _all(driver, css: str):  # type: ignore[no-untyped-def]
    return driver.find_elements("css selector", css)


def _shot(driver, shots: Path, name: str, height: int = 1000) -> Path:  # type: ignore[no-untyped-def]
    driver.set_window_size(1400, height)
    path = shots / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    driver.set_window_size(1400, 1000)
    return path


def _graph_ready(driver, lab: str) -> None:  # type: ignore[no-untyped-def]
    driver.get(f"{_base(driver)}/lab/{lab}")
    wait_for("the topology picture", lambda: _by(driver, "#graph").get_attribute("data-ready"))


def _base(driver) -> str:  # type: ignore[no-untyped-def]
    """scheme://host:port of the page the browser shows."""
    return "/".join(driver.current_url.split("/")[:3])


def _firewall_text(lab: str) -> str:
    from palmnet.lab import LabAPI

    with LabAPI().session(lab) as s:
        text = s.running_node("router").read_file("/etc/config/firewall")
    assert text is not None
    return text


# -- tests, in the order a person would go -----------------------------------------------
def test_without_the_token_every_page_is_401(server) -> None:
    for path in ("/", "/api/labs", "/lab/x", "/lab/x/graph.json", "/static/htmx.min.js"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server.base + path, timeout=10)
        assert caught.value.code == 401, path
    request = urllib.request.Request(
        server.base + "/labs/up", data=b"path=x", method="POST",
        headers={"Authorization": f"Bearer {server.token}"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 403  # the token alone does not make a write


def test_labs_page_shows_both_labs(chrome, router_lab, ring_lab, shots) -> None:
    chrome.get(_base(chrome) + "/")
    rows = {r.get_attribute("data-lab"): r.text for r in _all(chrome, "#labs tr[data-lab]")}
    assert router_lab[0] in rows and ring_lab in rows
    assert "netns" in rows[router_lab[0]] and "running" in rows[router_lab[0]]
    assert rows[router_lab[0]].split()[2] == str(len(router_lab[1]))  # node count
    _shot(chrome, shots, "labs", 600)


def test_topology_has_every_node_and_a_click_opens_it(chrome, router_lab, shots) -> None:
    lab, nodes = router_lab
    _graph_ready(chrome, lab)
    drawn = chrome.execute_script(
        "return palmnetGraph.nodes().filter(n => n.data('kind') !== 'network')"
        ".map(n => [n.data('label'), n.data('kind'), n.data('state')])"
    )
    assert sorted(d[0] for d in drawn) == sorted(nodes)
    assert {d[0]: d[1] for d in drawn}["router"] == "openwrt"
    assert all(d[2] == "running" for d in drawn), drawn
    networks = chrome.execute_script(
        "return palmnetGraph.nodes('[kind = \"network\"]').map(n => n.data('label'))"
    )
    assert any("2001:db8:ebbd:2084::/64" in n for n in networks)
    _shot(chrome, shots, "topology")
    # a real click where the router is drawn
    x, y = chrome.execute_script(
        "const p = palmnetGraph.getElementById('node:router').renderedPosition();return [p.x, p.y];"
    )
    from selenium.webdriver.common.action_chains import ActionChains

    box = _by(chrome, "#graph")
    size = box.size
    ActionChains(chrome).move_to_element_with_offset(
        box, int(x - size["width"] / 2), int(y - size["height"] / 2)
    ).click().perform()
    wait_for("the router's page", lambda: chrome.current_url.endswith(f"/lab/{lab}/node/router"))
    assert "openwrt" in _by(chrome, "h1").text
    assert "br-lan" in _by(chrome, "#addresses").text
    _shot(chrome, shots, "node-router", 1200)


def test_ls_page_has_copy_buttons(chrome, router_lab) -> None:
    lab, nodes = router_lab
    chrome.get(f"{_base(chrome)}/lab/{lab}/ls")
    rows = _all(chrome, "#ls tr[data-node]")
    assert sorted(r.get_attribute("data-node") for r in rows) == sorted(nodes)
    w1 = _addr(nodes, "w1", "eth0", "2001:db8:ebbd:2084:")
    assert w1 in [b.get_attribute("data-copy") for b in _all(chrome, "button.copy")]


def test_router_page_shows_live_leases(chrome, router_lab) -> None:
    lab, nodes = router_lab
    chrome.get(f"{_base(chrome)}/lab/{lab}/node/router")
    leases = _by(chrome, "#live-leases").text
    w1v4 = _addr(nodes, "w1", "eth0", "198.51.100.")
    assert any(line.startswith(f"w1 {w1v4} ") for line in leases.splitlines()), leases
    assert "dnsmasq" in _by(chrome, "#services").text


def test_audit_on_demand(chrome, router_lab) -> None:
    lab, _ = router_lab
    chrome.get(f"{_base(chrome)}/lab/{lab}/node/w1")
    _by(chrome, "#audit summary").click()
    quick = ("slaac", "default_route_ll", "rdnss_dnssl")
    for box in _all(chrome, "#audit-form input[type='checkbox']"):
        if box.get_attribute("name").removeprefix("check_") not in quick:
            box.click()
    _by(chrome, "#run-audit").click()
    assert _job_ends(chrome) == "done", _by(chrome, "#job-body").text
    card = _by(chrome, "#job-result").text
    assert "PASS: 3 pass, 0 fail" in card, card
    assert "slaac: PASS" in _by(chrome, "#job-lines").text


def test_firewall_rule_from_the_form_opens_port_80_on_the_wan_only(chrome, router_lab, shots):
    from selenium.webdriver.support.ui import Select

    lab, nodes = router_lab
    wan = _addr(nodes, "router", "eth1", "2001:db8:ebbd:2080:")
    w1 = _addr(nodes, "w1", "eth0", "2001:db8:ebbd:2084:")
    assert _curl(lab, "laptop", f"http://[{wan}]/").returncode == 7  # refused before
    chrome.get(f"{_base(chrome)}/lab/{lab}/node/router")
    _by(chrome, "#open-firewall").click()
    wait_for("the firewall page", lambda: _by(chrome, "#zones"))
    zones = _by(chrome, "#zones").text
    assert "wan REJECT ACCEPT DROP yes wan wan6" in zones
    form = _by(chrome, "#add-rule")
    form.find_element("name", "name").send_keys("ext_web")
    Select(form.find_element("name", "src")).select_by_visible_text("wan")
    Select(form.find_element("name", "proto")).select_by_visible_text("tcp")
    form.find_element("name", "dest_port").send_keys("80")
    Select(form.find_element("name", "target")).select_by_visible_text("ACCEPT")
    form.find_element("id", "save-apply").click()
    note = wait_for("the note of the apply", lambda: _by(chrome, "#note").text)
    assert "rule 'ext_web' added" in note and "firewall reloaded" in note, note
    assert "ext_web" in _by(chrome, "#rules").text
    assert "\toption name 'ext_web'\n\toption src 'wan'\n" in _firewall_text(lab)
    # what really happens: the router's port 80 answers from the WAN side ...
    assert _curl(lab, "laptop", f"http://[{wan}]/").stdout == "200"
    # ... while the LAN farm stays closed (wan -> lan forward is still rejected)
    assert _curl(lab, "laptop", f"http://[{w1}]/", timeout=2).returncode == 7
    _shot(chrome, shots, "firewall", 1250)


def test_port_99999_is_refused_and_nothing_is_written(chrome, router_lab, shots) -> None:
    lab, _ = router_lab
    before = _firewall_text(lab)
    chrome.get(f"{_base(chrome)}/lab/{lab}/node/router/firewall")
    form = _by(chrome, "#add-rule")
    form.find_element("name", "name").send_keys("too_far")
    form.find_element("name", "dest_port").send_keys("99999")
    form.find_element("id", "save-apply").click()
    note = wait_for("the refusal", lambda: _by(chrome, "#note").text)
    assert "refused, nothing written" in note
    assert "option 'dest_port' specifies invalid value '99999'" in note
    assert (
        _by(chrome, "#add-rule").find_element("name", "dest_port").get_attribute("value") == "99999"
    )  # the form keeps what was typed
    assert _firewall_text(lab) == before
    _shot(chrome, shots, "firewall-refused", 900)


def _note_with(chrome, text: str) -> str:  # type: ignore[no-untyped-def]
    """The page's note once it says `text` (the previous action's note may still
    be showing while the next one runs)."""
    note = _by(chrome, "#note").text
    return note if text in note else ""


def test_saving_an_unchanged_rule_keeps_what_the_form_has_no_choice_for(chrome, router_lab):
    from palmnet.openwrt.uci import parse

    lab, _ = router_lab
    before = parse(_firewall_text(lab), "firewall")
    chrome.get(f"{_base(chrome)}/lab/{lab}/node/router/firewall")
    _follow(
        chrome,
        _by(chrome, "#rules tr[data-rule='Allow-IPSec-ESP']").find_element("link text", "Edit"),
    )
    proto = _by(chrome, "#add-rule select[name='proto']")
    assert proto.get_attribute("value") == "esp"  # not in the list: kept as it is
    _by(chrome, "#save").click()
    note = wait_for("the note", lambda: _by(chrome, "#note").text)
    assert "rule 'Allow-IPSec-ESP' changed" in note, note
    assert parse(_firewall_text(lab), "firewall") == before


def test_edit_disable_and_delete_the_rule(chrome, router_lab) -> None:
    lab, nodes = router_lab
    wan = _addr(nodes, "router", "eth1", "2001:db8:ebbd:2080:")
    chrome.get(f"{_base(chrome)}/lab/{lab}/node/router/firewall")
    row = _by(chrome, "#rules tr[data-rule='ext_web']")
    _follow(chrome, row.find_element("link text", "Edit"))
    port = _by(chrome, "#add-rule").find_element("name", "dest_port")
    assert port.get_attribute("value") == "80"
    port.clear()
    port.send_keys("99999")
    _by(chrome, "#save").click()
    note = wait_for("the refusal", lambda: _by(chrome, "#note").text)
    assert "refused, nothing written" in note and "'99999'" in note, note
    form = _by(chrome, "#add-rule")  # still an edit of ext_web, with what was typed
    assert form.find_element("name", "action").get_attribute("value") == "edit"
    assert "Edit rule ext_web" in _by(chrome, "#rule-form").text
    port = form.find_element("name", "dest_port")
    assert port.get_attribute("value") == "99999"
    port.clear()
    port.send_keys("8080")
    _by(chrome, "#save").click()  # written, not applied
    note = wait_for("the note", lambda: _note_with(chrome, "changed"))
    assert "rule 'ext_web' changed" in note and "not applied yet" in note, note
    assert "option dest_port '8080'" in _firewall_text(lab)
    assert _curl(lab, "laptop", f"http://[{wan}]/").stdout == "200"  # the loaded one stays
    # the file changed behind the page's back: the page's edit is refused
    odd = (  # a hand-written rule with an option fw4 does not know: it warns
        "\nconfig rule\n\toption name 'odd'\n\toption src 'wan'\n\toption proto 'tcp'\n"
        "\toption dest_port '9'\n\toption colour 'blue'\n\toption target 'REJECT'\n"
    )
    run("exec", "--lab", lab, "router", "--", "sh", "-c", f'printf "{odd}" >> /etc/config/firewall')
    row = _by(chrome, "#rules tr[data-rule='ext_web']")
    row.find_element("xpath", ".//button[text()='Delete']").click()
    chrome.switch_to.alert.accept()
    note = wait_for("the refusal", lambda: _note_with(chrome, "changed since"))
    assert "changed since this page was loaded" in note and "nothing written" in note
    assert _firewall_text(lab).endswith("\toption colour 'blue'\n\toption target 'REJECT'\n")
    row = _by(chrome, "#rules tr[data-rule='ext_web']")
    row.find_element("xpath", ".//button[text()='Disable']").click()
    wait_for("the note", lambda: "disabled" in _by(chrome, "#note").text)
    assert "option enabled '0'" in _firewall_text(lab)
    _by(chrome, "#apply").click()
    note = wait_for("the reload", lambda: _note_with(chrome, "reloaded"))
    assert "firewall reloaded; fw4 says:" in note, note
    assert "Section @rule[10] (odd) specifies unknown option 'colour'" in note
    assert _curl(lab, "laptop", f"http://[{wan}]/").returncode == 7
    row = _by(chrome, "#rules tr[data-rule='ext_web']")
    row.find_element("xpath", ".//button[text()='Delete']").click()
    chrome.switch_to.alert.accept()
    wait_for("the note", lambda: "deleted" in _by(chrome, "#note").text)
    assert "ext_web" not in _firewall_text(lab)


def test_ndp_view_shows_messages_as_they_happen(chrome, router_lab) -> None:
    lab, _ = router_lab
    chrome.get(f"{_base(chrome)}/lab/{lab}/node/w1/ndp")
    wait_for("the watch", lambda: "watching eth0" in _by(chrome, "#ndp-status").text)
    node_tool(lab, "w1", "rdisc6", "-1", "-w", "1000", "eth0")  # an RS, answered by an RA
    rows = wait_for(
        "RS and RA in the table",
        lambda: (
            {"RS", "RA"} <= {r.text.split()[3] for r in _all(chrome, "#ndp tr")[1:]}
            and _all(chrome, "#ndp tr")
        ),
    )
    assert len(rows) > 2


def test_link_failed_from_the_ui_is_down_and_marked(chrome, chrome2, ring_lab, shots) -> None:
    lab = ring_lab
    chrome.get(f"{_base(chrome)}/lab/{lab}/experiments")
    row = _by(chrome, "#links tr[data-link='r1:r2']")
    row.find_element("xpath", ".//button[@value='down']").click()
    wait_for("the note", lambda: "down" in _by(chrome, "#note").text)
    shown = json.loads(run("link", "show", "--lab", lab, "--format", "json").stdout)
    assert [(s["link"], s["state"]) for s in shown] == [("r1:r2", "down")]
    chrome2.get(f"{_base(chrome2)}/lab/{lab}/experiments")  # the other browser sees it too
    assert "down" in _by(chrome2, "#links tr[data-link='r1:r2']").text
    _graph_ready(chrome, lab)
    states = chrome.execute_script(
        "return palmnetGraph.edges().map(e => [e.id(), e.data('state')])"
    )
    down = sorted(i for i, s in states if s == "down")
    assert down == ["port:r1:eth0", "port:r2:eth1"] or len(down) == 2, states
    assert "r1:r2" in _by(chrome, "#failed-links").text
    _shot(chrome, shots, "link-down")
    chrome.get(f"{_base(chrome)}/lab/{lab}/experiments")
    row = _by(chrome, "#links tr[data-link='r1:r2']")
    row.find_element("xpath", ".//button[@value='restore']").click()
    wait_for("the note", lambda: "whole" in _by(chrome, "#note").text)
    assert json.loads(run("link", "show", "--lab", lab, "--format", "json").stdout) == []


def test_router_page_lists_its_routing_neighbours(chrome, ring_lab) -> None:
    chrome.get(f"{_base(chrome)}/lab/{ring_lab}/node/r1")
    rows = wait_for(
        "two RIPng neighbours of r1",
        lambda: _reload_rows(chrome, "#neighbors tr", 3),
        deadline=20,
        every=1,
    )
    assert all(r.text.startswith("fe80::") for r in rows[1:]), [r.text for r in rows]
    assert "Routing neighbours (ripng)" in chrome.page_source


def _reload_rows(chrome, css: str, count: int):  # type: ignore[no-untyped-def]
    chrome.refresh()
    rows = _all(chrome, css)
    return rows if len(rows) == count else None


def test_converge_from_the_form_shows_its_picture(chrome, ring_lab, shots) -> None:
    from selenium.webdriver.support.ui import Select

    lab = ring_lab
    chrome.get(f"{_base(chrome)}/lab/{lab}/experiments")
    form = _by(chrome, "#converge-form")
    Select(form.find_element("name", "source")).select_by_visible_text("laptop")
    Select(form.find_element("name", "target")).select_by_visible_text("dns")
    Select(form.find_element("name", "fail")).select_by_visible_text("r1:r2")
    form.find_element("id", "run-converge").click()
    wait_for("the job page", lambda: "/jobs/" in chrome.current_url)
    state = wait_for(
        "the converge job to end",
        lambda: (
            _by(chrome, "#job-state").text in ("done", "failed") and _by(chrome, "#job-state").text
        ),
        deadline=180,
        every=0.5,
    )
    assert state == "done", _by(chrome, "#job-body").text
    wait_for(
        "the timeline picture",
        lambda: chrome.execute_script(
            "const i = document.getElementById('timeline');return i && i.complete && i.naturalWidth"
        ),
    )
    table = _by(chrome, "#converge-table").text
    assert "laptop → dns" in table and "Restored yes" in table
    _shot(chrome, shots, "converge", 1300)
    assert json.loads(run("link", "show", "--lab", lab, "--format", "json").stdout) == []


SMALL = """\
name: {name}
networks:
  n1: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: n1, ipv6: [2001:db8:77::1/64], ra: true}}
  h:
    interfaces:
      eth0: {{network: n1}}
"""


def _job_ends(chrome) -> str:  # type: ignore[no-untyped-def]
    wait_for("the job page", lambda: "/jobs/" in chrome.current_url)
    return wait_for(
        "the job to end",
        lambda: (
            _by(chrome, "#job-body").get_attribute("data-state") != "running"
            and _by(chrome, "#job-state").text
        ),
        deadline=120,
        every=0.3,
    )


def test_bring_a_lab_up_and_down_from_the_labs_page(chrome, tmp_path: Path) -> None:
    name = f"uis{os.getpid() % 10000}"
    path = write_lab(tmp_path / "small.yaml", SMALL.format(name=name))
    try:
        chrome.get(_base(chrome) + "/")
        _by(chrome, "input[name='path']").send_keys(str(path))
        _by(chrome, "input[name='path']").submit()
        assert _job_ends(chrome) == "done", _by(chrome, "#job-body").text
        assert f"lab {name}: created" in _by(chrome, "#job-result").text
        steps = _by(chrome, "#job-steps").text  # the backend's progress, as the CLI's bar
        assert "namespaces 1 of 1" in steps and "links" in steps, steps
        assert {n["name"] for n in run_json("ls", name)} == {"r", "h"}
        chrome.get(_base(chrome) + "/")
        row = _by(chrome, f"#labs tr[data-lab='{name}']")
        _follow(chrome, row.find_element("xpath", ".//button[contains(text(), 'Take down')]"))
        _follow(chrome, _by(chrome, "#confirm-down"))  # the confirmation page
        assert _job_ends(chrome) == "done"
        assert f"lab {name} removed" in _by(chrome, "#job-result").text
        assert lab_traces(name) == []
    finally:
        run("down", name, check=False)


def test_a_lab_taken_down_from_the_cli_turns_gone(chrome, server, ring_lab) -> None:
    lab = ring_lab
    _graph_ready(chrome, lab)
    run("stop", "--lab", lab, "dns")  # live state: the picture follows
    wait_for(
        "dns drawn as stopped",
        lambda: (
            chrome.execute_script("return palmnetGraph.getElementById('node:dns').data('state')")
            == "stopped"
        ),
        deadline=20,
    )
    first, base = chrome.current_window_handle, _base(chrome)
    chrome.switch_to.new_window("tab")  # a second page of the lab, open meanwhile
    chrome.get(f"{base}/lab/{lab}/ls")
    second = chrome.current_window_handle
    assert "STOPPED" in _by(chrome, "#ls tr[data-node='dns']").text
    run("down", lab)
    wait_for("the ls page's gone banner", lambda: _by(chrome, "#gone-banner"), deadline=20)
    chrome.close()
    chrome.switch_to.window(first)
    assert second not in chrome.window_handles
    wait_for(
        "the page to say GONE",
        lambda: "GONE" in _by(chrome, "#graph-status").text,
        deadline=20,
    )
    chrome.get(f"{_base(chrome)}/lab/{lab}")
    assert "is gone" in _by(chrome, "#gone").text
    for path in (f"/lab/{lab}", f"/lab/{lab}/ls", f"/lab/{lab}/node/r1", f"/lab/{lab}/graph.json"):
        request = urllib.request.Request(
            server.base + path, headers={"Authorization": f"Bearer {server.token}"}
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 410, path
    chrome.get(_base(chrome) + "/")
    assert lab not in [r.get_attribute("data-lab") for r in _all(chrome, "#labs tr[data-lab]")]
