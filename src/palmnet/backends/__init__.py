"""Backends realize a plan on a machine and report what is there."""
