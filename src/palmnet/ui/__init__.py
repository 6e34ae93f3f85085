"""`palmnet ui`: a web interface in the spirit of LuCI, on top of the Lab API.

A thin layer like the CLI (DESIGN.md §1): it parses a request, calls the Lab
API (or a toolbox/links verb that goes through it) and renders the answer. It
holds no state of its own about labs: every page asks the running labs again,
so two browsers see the same thing and a lab taken down from the CLI turns
into "gone" on the next refresh.

    auth.py        the access token (cookie) and the CSRF token
    server.py      listening sockets (loopback, dual-stack) and uvicorn
    app.py         the Starlette app: routes, errors, templates
    views/         one module per page
    form.py        a POSTed form, read from a sync endpoint
    jobs.py        long actions (up, down, converge, audit) in threads
    graph.py       a lab as graph elements for cytoscape (pure)
    fwform.py      the firewall page's rule form -> a UCI section, validated
    leases.py      dnsmasq's lease file (pure)
"""
