#!/usr/bin/env python3
"""REFERENCE BASELINE, not palmnet code: the field notes' `ipv6-httpd.py`.

Written again from the "Writing IPv6 Apps: Python Webserver" section of
shared/reference/field-notes.txt, so that benchmarks/httpd.py can measure what
users run today. It is kept as the notes have it: `HTTPServer` (one request at
a time) with `address_family = AF_INET6` on `('::', listen_port)`, a
`MyHandler` subclass of `SimpleHTTPRequestHandler` serving the current
directory, the log on stdout/stderr, and "Caught SIGINT, dying" on ^C.

Two departures, both for the benchmark's sake, neither changes how it serves:
- the notes hard-code `listen_port = 8080` and `'::'`; here argv may give the
  port and the address (`reference_server.py [PORT [ADDR]]`), so the benchmark
  can use a free port and stay on loopback (::1). Without arguments it is the
  notes' 8080 on `::`.
- the notes do not show MyHandler's body; it is a plain subclass here.
"""

import os
import signal
import socket
import sys
from http.server import HTTPServer, SimpleHTTPRequestHandler

listen_port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
listen_addr = sys.argv[2] if len(sys.argv) > 2 else "::"


class MyHandler(SimpleHTTPRequestHandler):
    pass


class HTTPServerV6(HTTPServer):
    address_family = socket.AF_INET6


def signal_handler(signum, frame):
    print("Caught SIGINT, dying")
    os._exit(0)


def main():
    global server
    server = HTTPServerV6((listen_addr, listen_port), MyHandler)
    print("Listening on port:" + str(listen_port) + "\nPress ^C to quit", flush=True)
    server.serve_forever()
    os._exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal_handler)
    main()
