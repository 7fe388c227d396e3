"""Sphinx configuration. The hook and configuration references are generated from the code
(devis_core.docgen) at every build, from the plugins installed where the docs are built."""

from __future__ import annotations

from pathlib import Path

from devis_core import __version__
from devis_core.docgen import write_reference
from devis_core.plugins import load_registry

project = "DEVIS"
author = "The DEVIS developers"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "results"]  # results/: committed suite outputs, not pages
html_theme = "furo"
html_title = f"DEVIS {version}"
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"

write_reference(Path(__file__).parent / "reference" / "generated", load_registry())
