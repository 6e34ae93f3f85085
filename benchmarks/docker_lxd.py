#!/usr/bin/env python3
"""Docker inside LXD nodes: how long each step a user types takes (issue 17).

    sudo .venv/bin/python benchmarks/docker_lxd.py [--rebuild]

A lab `dkbench`: a router with `ra: true`, a node `web` running nginx (Debian
nginx-light, `palmnet docker image build`) in its dockerd with port 80 published,
and a client. Every number is wall time of a `palmnet` command, interpreter start
included:

- image build docker / docker image build nginx: cached unless `--rebuild`
  (then: debootstrap from the Debian mirror apt uses);
- up: returns when every planned address is there and nginx listens in Docker;
- first page: curl from the client to web's planned GUA, right after `up`;
- stop web / start web (the container is run again at start);
- snapshot + publish of web, then `launch --image` of 3 copies, each serving.
Everything is removed in a finally (`palmnet down dkbench`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PALMNET = [sys.executable, "-m", "palmnet"]
LAB = "dkbench"
PREFIX = "2001:db8:d0b:"
TEXT = f"""\
name: {LAB}
backend: lxd
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:d0b::1/64"], ra: true}}
  web:
    interfaces:
      eth0: {{network: lan}}
    docker:
      - {{name: nginx, image: nginx, ports: ["80:80"], volumes: ["site:/var/www/html"]}}
  client:
    image: palmnet-router
    interfaces:
      eth0: {{network: lan}}
"""


def palmnet(*args: str) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run([*PALMNET, *args], capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"palmnet {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return took, proc.stdout


def gua(node: str) -> str:
    rows = json.loads(palmnet("ls", LAB, "--format", "json")[1])
    row = next(n for n in rows if n["name"] == node)
    return next(a.split("/")[0] for i in row["interfaces"] for a in i["ipv6"] if PREFIX in a)


def page(address: str) -> float:
    """Seconds until the client fetched the page (at most 30 tries, each a new exec)."""
    started = time.monotonic()
    for _ in range(30):
        curl = f"curl -s -g --max-time 2 http://[{address}]/ || true"
        _, out = palmnet("exec", "--lab", LAB, "client", "--", "sh", "-c", curl)
        if "nginx in Docker" in out:
            return time.monotonic() - started
    raise SystemExit(f"no page from [{address}] in 30 tries")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild", action="store_true", help="rebuild both images")
    args = parser.parse_args()
    force = ["--force"] if args.rebuild else []
    rows = []
    took, _ = palmnet("image", "build", "docker", *force)
    rows.append(("image build docker" + (" (rebuilt)" if force else " (cached)"), took))
    took, _ = palmnet(
        "docker", "image", "build", "nginx", str(ROOT / "examples/docker/nginx"), *force
    )
    rows.append(("docker image build nginx" + (" (rebuilt)" if force else " (cached)"), took))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "site").mkdir()
        (folder / "site/index.html").write_text("<h1>nginx in Docker in LXD</h1>\n")
        os.chmod(folder, 0o755)
        path = folder / "lab.yaml"
        path.write_text(TEXT)
        try:
            rows.append(("up (3 nodes, nginx in Docker listening)", palmnet("up", str(path))[0]))
            address = gua("web")
            rows.append(("first page after up", page(address)))
            rows.append(("stop web", palmnet("stop", "--lab", LAB, "web")[0]))
            rows.append(
                ("start web (container run again)", palmnet("start", "--lab", LAB, "web")[0])
            )
            assert gua("web") == address
            rows.append(("first page after start", page(address)))
            rows.append(("snapshot web", palmnet("snapshot", "--lab", LAB, "web", "s0")[0]))
            publish = ("publish", "--lab", LAB, "web/s0", "--alias", f"{LAB}-web")
            rows.append(("publish web/s0", palmnet(*publish)[0]))
            launch = ("launch", "--lab", LAB, "web", "c1", "c2", "c3", "--image", f"{LAB}-web")
            rows.append(("launch 3 copies --image", palmnet(*launch)[0]))
            for copy in ("c1", "c2", "c3"):
                rows.append((f"first page from {copy}", page(gua(copy))))
        finally:
            subprocess.run([*PALMNET, "down", LAB], capture_output=True, check=False)
    width = max(len(r[0]) for r in rows)
    for what, seconds in rows:
        print(f"{what:<{width}}  {seconds:6.1f} s")


if __name__ == "__main__":
    main()
