"""Every daemon adapter, by name. A new daemon is a new module listed here."""

from __future__ import annotations

from palmnet.services.base import Service
from palmnet.services.radvd import Radvd

SERVICES: tuple[type[Service], ...] = (Radvd,)


def services_for(node_kind_plan) -> list[type[Service]]:  # type: ignore[no-untyped-def]
    return [s for s in SERVICES if s.wanted(node_kind_plan)]
