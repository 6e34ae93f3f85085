"""Topology layer: YAML in, validated model out (pure, no root)."""
