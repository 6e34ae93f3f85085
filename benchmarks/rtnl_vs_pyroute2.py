#!/usr/bin/env python3
"""Time per netlink operation: pyroute2's IPRoute against palmnet's Rtnl.

    sudo .venv/bin/python benchmarks/rtnl_vs_pyroute2.py [--links 200] [--nodes 20] [--rounds 3]

The shape of a lab bring-up (backends/netns/build.py): a switch namespace
holding one bridge, and `--nodes` node namespaces. Timed, for each client:

- veth:  `--links` veth pairs made from the switch, the peer put straight
         into its node with a MAC, the local end enslaved to the bridge and up;
- up:    every peer brought up by name, from inside its node;
- index: every peer's index looked up by name (build.py needs it for addresses);
- addr:  one IPv6 address (nodad) added on every peer.

Clients: `pyroute2` (IPRoute, one per namespace, as build.py holds them),
`rtnl` (one request, one ACK) and `rtnl-pipe` (each namespace's requests sent
in batches inside `Rtnl.pipeline()`, ACKs collected at the end). The row
`encode` is the time pyroute2 takes only to encode Rtnl's messages, without
sending them: the part of `rtnl` spent in Python, not in the kernel.
Sockets are opened before timing. Every round runs in fresh namespaces named
pnrtnl-bench-*, deleted afterwards, then `--settle` seconds are left to the
kernel to free them (it does so in the background, on the same CPUs); the
best round is shown.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pyroute2.iproute.linux import IPRoute

from palmnet.kernel import namespaces, nsfs
from palmnet.kernel.rtnl import IFA_F_NODAD, Rtnl

PREFIX = "pnrtnl-bench"
OPS = ("veth", "up", "index", "addr")


@dataclass
class Lab:
    switch: str
    nodes: list[str]
    links: list[tuple[str, str, str, str, int]]  # (outer, inner, mac, address, node)
    fds: list[int] = field(default_factory=list)


@contextlib.contextmanager
def lab(links: int, nodes: int, tag: str) -> Iterator[Lab]:
    names = [f"{PREFIX}-{tag}-n{i}" for i in range(nodes)]
    made: list[str] = []
    try:
        for name in [f"{PREFIX}-{tag}-sw", *names]:
            namespaces.create_netns(name)
            made.append(name)
        spec = [
            (
                f"v{i:04x}",
                f"eth{i // nodes}",
                f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}",
                f"2001:db8:{i:x}::1",
                i % nodes,
            )
            for i in range(links)
        ]
        lb = Lab(made[0], names, spec)
        lb.fds = [os.open(nsfs.netns_path(n), os.O_RDONLY) for n in names]
        try:
            yield lb
        finally:
            for fd in lb.fds:
                os.close(fd)
    finally:
        for name in made:
            namespaces.delete_netns(name)


def _ipr(netns: str) -> IPRoute:
    with nsfs.netns(nsfs.netns_path(netns)):
        return IPRoute()


def run_pyroute2(lb: Lab) -> dict[str, float]:
    sw = _ipr(lb.switch)
    node = [_ipr(n) for n in lb.nodes]
    out: dict[str, float] = {}
    try:
        sw.link("add", ifname="br0", kind="bridge", br_stp_state=0, br_forward_delay=0)
        br = sw.link("get", ifname="br0")[0]["index"]
        sw.link("set", index=br, state="up")
        t = time.perf_counter()
        for outer, inner, mac, _, n in lb.links:
            sw.link(
                "add",
                ifname=outer,
                kind="veth",
                peer={"ifname": inner, "net_ns_fd": lb.fds[n], "address": mac},
                master=br,
                state="up",
            )
        out["veth"] = time.perf_counter() - t
        t = time.perf_counter()
        for _, inner, _, _, n in lb.links:
            node[n].link("set", ifname=inner, state="up")
        out["up"] = time.perf_counter() - t
        t = time.perf_counter()
        index = [node[n].link("get", ifname=inner)[0]["index"] for _, inner, _, _, n in lb.links]
        out["index"] = time.perf_counter() - t
        t = time.perf_counter()
        for (_, _, _, addr, n), idx in zip(lb.links, index, strict=True):
            node[n].addr("add", index=idx, address=addr, prefixlen=64, flags=IFA_F_NODAD)
        out["addr"] = time.perf_counter() - t
    finally:
        for ipr in (sw, *node):
            ipr.close()
    return out


def run_rtnl(lb: Lab, piped: bool) -> dict[str, float]:
    sw = Rtnl.open(nsfs.netns_path(lb.switch))
    node = [Rtnl.open(nsfs.netns_path(n)) for n in lb.nodes]

    def batch(rt: Rtnl) -> contextlib.AbstractContextManager[object]:
        return rt.pipeline() if piped else contextlib.nullcontext()

    out: dict[str, float] = {}
    try:
        br = sw.add_bridge("br0")
        t = time.perf_counter()
        with batch(sw):
            for outer, inner, mac, _, n in lb.links:
                sw.add_veth(outer, inner, lb.fds[n], mac, br, up=True)
        out["veth"] = time.perf_counter() - t
        t = time.perf_counter()
        with contextlib.ExitStack() as stack:
            for rt in node:
                stack.enter_context(batch(rt))
            for _, inner, _, _, n in lb.links:
                node[n].set_up(inner)
        out["up"] = time.perf_counter() - t
        t = time.perf_counter()
        index = [node[n].index_of(inner) for _, inner, _, _, n in lb.links]
        out["index"] = time.perf_counter() - t
        t = time.perf_counter()
        with contextlib.ExitStack() as stack:
            for rt in node:
                stack.enter_context(batch(rt))
            for (_, _, _, addr, n), idx in zip(lb.links, index, strict=True):
                node[n].add_address(idx, addr, 64, IFA_F_NODAD)
        out["addr"] = time.perf_counter() - t
    finally:
        for rt in (sw, *node):
            rt.close()
    return out


class _EncodeOnly(Rtnl):
    """Builds and encodes every message as Rtnl does, and sends nothing."""

    def _submit(self, msg, what, want_replies=False):  # type: ignore[no-untyped-def]
        msg["header"]["sequence_number"] = 1
        msg.encode()
        return []


def run_encode(lb: Lab) -> dict[str, float]:
    import socket

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    rt = _EncodeOnly(sock)
    out: dict[str, float] = {}
    try:
        t = time.perf_counter()
        for outer, inner, mac, _, n in lb.links:
            rt.add_veth(outer, inner, lb.fds[n], mac, 2, up=True)
        out["veth"] = time.perf_counter() - t
        t = time.perf_counter()
        for _, inner, _, _, _ in lb.links:
            rt.set_up(inner)
        out["up"] = time.perf_counter() - t
        t = time.perf_counter()
        for _, inner, _, _, _ in lb.links:
            with contextlib.suppress(OSError):  # encoded, then "no answer"
                rt.index_of(inner)
        out["index"] = time.perf_counter() - t
        t = time.perf_counter()
        for _, _, _, addr, _ in lb.links:
            rt.add_address(2, addr, 64, IFA_F_NODAD)
        out["addr"] = time.perf_counter() - t
    finally:
        sock.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--links", type=int, default=200)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds to wait after a round: the kernel frees deleted namespaces "
        "in the background, which would otherwise slow the next one",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    clients: dict[str, Callable[[Lab], dict[str, float]]] = {
        "pyroute2": run_pyroute2,
        "rtnl": lambda lb: run_rtnl(lb, piped=False),
        "rtnl-pipe": lambda lb: run_rtnl(lb, piped=True),
        "encode": run_encode,
    }
    best: dict[str, dict[str, float]] = {c: {} for c in clients}
    for r in range(args.rounds):
        for name, run in clients.items():  # interleaved, so drift hits all alike
            with lab(args.links, args.nodes, f"{r}{name[0]}{len(name)}") as lb:
                for op, secs in run(lb).items():
                    best[name][op] = min(best[name].get(op, secs), secs)
            time.sleep(args.settle)
    n = args.links
    print(f"{n} links over {args.nodes} nodes, best of {args.rounds} rounds, µs per operation")
    print(f"{'':10}" + "".join(f"{op:>10}" for op in OPS) + f"{'total ms':>12}")
    for name, ops in best.items():
        total = sum(ops.values()) * 1e3
        print(f"{name:10}" + "".join(f"{ops[op] / n * 1e6:10.0f}" for op in OPS) + f"{total:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
