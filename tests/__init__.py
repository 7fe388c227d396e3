"""DEVIS test suite."""
