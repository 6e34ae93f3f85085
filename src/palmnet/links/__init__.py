"""Links of a running lab: naming them (`A:B`, `A:IFACE`) and failing them.

`names` resolves a link name against the plan (pure), `nft` renders the
impairment table (pure), `control` changes and reads the kernel.
"""

from palmnet.links.names import Link, LinkEnd, links_of, resolve_link

__all__ = ["Link", "LinkEnd", "links_of", "resolve_link"]
