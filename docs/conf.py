"""Sphinx configuration. The hook and configuration references (docs/reference/*.md) are
generated from the code by ``python -m devis_core.docgen`` and committed; a test fails when
they are stale."""

from __future__ import annotations

from devis_core import __version__

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
