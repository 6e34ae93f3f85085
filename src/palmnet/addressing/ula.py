"""Unique local /48 prefixes (RFC 4193).

A lab that must not leak onto the Internet, or that wants addresses which
survive a change of ISP, numbers itself from a ULA /48: fd00::/8 (the L bit
set) followed by a 40-bit Global ID, leaving 16 bits for 65,536 /64 subnets.

The Global ID must be random so that two networks that later merge (or are
routed together by RIPng, as in the field notes) do not clash. By default it
comes from `secrets`, a better source than RFC 4193 3.2.1 asks for.

With a seed the prefix is reproducible, so a lab file or a test can name the
same /48 on every machine. It follows the RFC 4193 3.2.2 algorithm: the key
is hashed with SHA-1 and the least significant 40 bits of the digest are the
Global ID. The seed replaces that algorithm's key, the 64-bit NTP time of day
concatenated with an EUI-64 of the machine (steps 1-3); steps 4 and 5 are
unchanged. The randomness is then only as good as the seed: two labs seeded
with the same text get the same prefix, which is the point.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets

from palmnet.errors import InputError

ULA_BLOCK = ipaddress.IPv6Network("fc00::/7")
LOCAL_BLOCK = ipaddress.IPv6Network("fd00::/8")  # fc00::/7 with L = 1 (locally assigned)
GLOBAL_ID_BITS = 40


def global_id_from_seed(seed: str) -> int:
    """The 40-bit Global ID of RFC 4193 3.2.2, with `seed` as the hashed key."""
    if not seed:
        raise InputError("the ULA seed is empty: give some text, e.g. --seed palm")
    # surrogateescape: a seed from argv that is not UTF-8 hashes as its raw bytes.
    key = seed.encode("utf-8", "surrogateescape")
    digest = hashlib.sha1(key, usedforsecurity=False).digest()
    return int.from_bytes(digest, "big") & ((1 << GLOBAL_ID_BITS) - 1)


def random_global_id() -> int:
    """A 40-bit Global ID from the operating system's random source."""
    return secrets.randbits(GLOBAL_ID_BITS)


def ula_prefix(global_id: int) -> ipaddress.IPv6Network:
    """The /48 of a Global ID: fd, then the 40 bits, then zeros."""
    if not 0 <= global_id < 1 << GLOBAL_ID_BITS:
        raise ValueError(f"global ID {global_id:#x} does not fit in {GLOBAL_ID_BITS} bits")
    base = int(LOCAL_BLOCK.network_address) | (global_id << 80)
    return ipaddress.IPv6Network((base, 48))


def generate_ula(seed: str | None = None) -> ipaddress.IPv6Network:
    """A ULA /48: reproducible from `seed`, random without one."""
    gid = random_global_id() if seed is None else global_id_from_seed(seed)
    return ula_prefix(gid)


def global_id_of(prefix: ipaddress.IPv6Network) -> int:
    """The 40-bit Global ID inside a ULA prefix."""
    return (int(prefix.network_address) >> 80) & ((1 << GLOBAL_ID_BITS) - 1)
