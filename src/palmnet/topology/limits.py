"""How much a lab file may ask for: checked before the work, so a file is refused
at once instead of growing to gigabytes or running for minutes.

Each limit sits well above any lab this machine can run and far below what
would hurt: a 5,000-host lab (issue 15) is half of `MAX_NODES`, and the
largest file that fits `MAX_FILE_BYTES` parses in a few seconds. Every
message that refuses a file names the limit it hit, so a user who really
needs more knows which number to raise.
"""

from __future__ import annotations

MAX_FILE_BYTES = 2 * 1024 * 1024
"""A lab file or a UCI file: 10,000 nodes written out one per line take 460 kB."""

MAX_DEPTH = 32
"""Nesting of mappings and lists; a lab needs 6 (nodes.r.routing.interfaces.eth0.hello)."""

MAX_YAML_NODES = 250_000
"""Scalars, lists and mappings after aliases are expanded (the alias bomb guard:
8 levels of 8 aliases is 16 million). A 10,000-node file without aliases has 110,000;
ruamel's pure-Python parser reads about 50,000 a second, so the largest file that
passes the limit is read in about 5-7 s and 80 MB."""

MAX_NODES = 10_000
"""Nodes of a lab after `count:` (issue 15: 5,000 hosts must be possible)."""

MAX_ITEMS = 100_000
"""Networks, nodes, interfaces, static addresses and routes of a lab after `count:`:
what the plan computes and `up` creates one by one."""

MAX_NUMBER_DIGITS = 30
"""An integer in YAML longer than this is refused before Python converts it (no key
of a lab needs more than 10 digits; 2**64 has 20)."""

SHOWN_CHARS = 60
"""A value quoted in a message is cut to this many characters, and its length said."""
