"""Built-in DEVIS plugins."""
