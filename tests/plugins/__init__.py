"""Fixture plugins: small, complete plugins the tests register without installing them."""
