"""IPv6 toolbox: small tools to look at and reach a lab from the outside.

`forwarder` lets a browser on localhost reach a service on a scoped
link-local address (RFC 4007 zone) inside a node; `ndp` and `ndp_capture`
decode Neighbour Discovery live on a node's links. Decoding is pure and kept
apart from capture so it can be tested with crafted packets and no root.
"""
