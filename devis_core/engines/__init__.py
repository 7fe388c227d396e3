"""Engines: the work behind `devis run`, `eval`, `train` and `ablate`."""
