"""Every daemon adapter, by name. A new daemon is a new module listed here.

Order is start order within a node: the routers' RA and DNS first, then what
consumes them.
"""

from __future__ import annotations

from palmnet.plan.model import NodePlan
from palmnet.services.base import Service
from palmnet.services.bird import Bird
from palmnet.services.clat import Clat
from palmnet.services.dhcpcd import Dhcpcd
from palmnet.services.dnsmasq import Dnsmasq
from palmnet.services.httpd import Httpd
from palmnet.services.kea import Kea
from palmnet.services.radvd import Radvd
from palmnet.services.rdnssd import Rdnssd
from palmnet.services.tayga import Tayga
from palmnet.services.unbound import Unbound

SERVICES: tuple[type[Service], ...] = (
    Tayga,
    Bird,
    Radvd,
    Dnsmasq,
    Unbound,
    Rdnssd,
    Kea,
    Dhcpcd,
    Httpd,
    Clat,
)


def services_for(node: NodePlan) -> list[type[Service]]:
    return [s for s in SERVICES if s.wanted(node)]


def service_named(name: str) -> type[Service]:
    for s in SERVICES:
        if s.name == name:
            return s
    raise KeyError(name)
