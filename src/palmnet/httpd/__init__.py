"""palmnet's dual-stack web server, run by `service: http` nodes and `palmnet serve`.

One socket on `::` (IPV6_V6ONLY off) answers IPv4 and IPv6 clients alike and
logs each by its real address. `serve()` blocks; `python -m palmnet.httpd`
runs it in a process of its own, which is how a lab node starts it.
"""

from __future__ import annotations

# Nothing is imported here: `palmnet` reads only the defaults, and loading the
# server (asyncio) on every command cost 45 ms.
