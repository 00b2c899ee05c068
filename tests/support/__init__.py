"""Helpers the tests share that are not fixtures (harness, consoles, OAuth flows)."""
