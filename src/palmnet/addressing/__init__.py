"""Pure IPv6 arithmetic: no I/O, no root."""
