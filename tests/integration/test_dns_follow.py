"""Waiting for the lab's DNS to answer changed names (lab/dns_follow.py), against a
real dnsmasq: it answers what its hosts file said when it last read it, and palmnet
waits until the answer is the planned one, or says what it still answers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from palmnet.errors import LabError
from palmnet.lab import LabAPI
from palmnet.lab.dns_follow import answer, planned_aaaa, wait_answers
from palmnet.services.dnsmasq import HOSTS
from tests.integration.labs import lab_traces, run, service_host_path, write_lab

LAB = """\
name: {name}
domain: follow.example
networks:
  lan: {{}}
nodes:
  r:
    kind: isp  # an upstream serves the lab's names (an OpenWrt router does too)
    delegate: {{pool: 2001:db8:f100::/48, length: 56}}
    interfaces:
      eth0: {{network: lan, ipv6: [2001:db8:f0::1/64], ra: true}}
  h:
    interfaces:
      eth0: {{network: lan}}
"""
NAME = "h.follow.example"
MOVED = "2001:db8:f1::99"


def test_waits_for_dnsmasq_to_re_read_and_says_what_it_still_answers(tmp_path: Path) -> None:
    lab = f"df{os.getpid() % 100000}"
    run("up", str(write_lab(tmp_path / "lab.yaml", LAB.format(name=lab))))
    try:
        with LabAPI().session(lab) as s:
            plan, r = s.plan, s.running_node("r")
            planned = planned_aaaa(plan.node("r"))[NAME]
            assert planned and answer(r, NAME, 53) == planned
            wait_answers(s.running_node, plan, {"r": {NAME: planned}}, time.monotonic() + 5)

            hosts = service_host_path(lab, "r", "dnsmasq", HOSTS)
            text = hosts.read_text()
            hosts.write_text(text + f"{MOVED} {NAME}\n")  # not told yet: still the old answer
            with pytest.raises(LabError) as failed:
                wait_answers(s.running_node, plan, {"r": {NAME: {MOVED}}}, time.monotonic() + 1)
            message = str(failed.value)
            assert f"r's DNS answers {NAME} with {', '.join(sorted(planned))}" in message
            assert f"planned {MOVED}" in message

            pid = r.service_pid("dnsmasq")
            assert pid
            os.kill(pid, signal.SIGHUP)
            both = planned | {MOVED}
            wait_answers(s.running_node, plan, {"r": {NAME: both}}, time.monotonic() + 5)
            assert answer(r, NAME, 53) == both
    finally:
        run("down", lab, check=False)
    assert lab_traces(lab) == []
