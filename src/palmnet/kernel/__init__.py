"""Linux primitives: namespace files, rtnetlink, address and link watchers,
processes in namespaces, mount namespaces, sysctl files, the neighbour limit.

Nothing here knows a lab, a plan or a backend: backends, links and the
toolbox build on these, and they import nothing above the kernel.
"""
