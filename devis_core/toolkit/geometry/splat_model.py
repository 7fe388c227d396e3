"""The constants of the splatting model, shared by both backends of the forward warp.

Kept apart from :mod:`devis_core.toolkit.geometry.warp` so the compiled backend
(:mod:`devis_core.toolkit.geometry._warp_numba`) reads the same model without importing the module
that imports it.
"""

SOFT_ZBUFFER_SHARPNESS = 50.0
"""TrajectoryCrafter's exponent: weight ``exp(-50 * log(1 + z) / max log(1 + z))``."""

MAX_SPLAT_DEPTH = 1000.0
"""Target depths are clamped to [0, this] before the soft z-buffer weight (TrajectoryCrafter)."""

HARD_ZBUFFER_RTOL = 1e-2
"""``zbuffer="hard"``: splats count where their depth is within this fraction of the nearest."""

CLEAN_KERNEL = 5
"""``clean=True`` dilates the holes once with a square kernel of this size (TrajectoryCrafter)."""
