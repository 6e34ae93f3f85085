"""The LXD backend: every node a system container, every network a bridge LXD manages.

pylxd is imported lazily (it is an optional dependency, extra `lxd`); everything
here talks to LXD's REST API, never parses `lxc` output.
"""
