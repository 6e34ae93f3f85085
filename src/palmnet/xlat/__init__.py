"""What runs inside a node for 464XLAT: the CLAT's start (prefix discovery, then TAYGA)."""
