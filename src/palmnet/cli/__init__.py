"""Thin CLI: parse, call the Lab API, print. One module per group of verbs."""
