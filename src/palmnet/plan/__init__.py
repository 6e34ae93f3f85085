"""Plan layer: every name, MAC, address and daemon config, computed offline."""
