"""Every random draw of a training run derives from (seed, round, ...), so a resumed run repeats
exactly the draws an uninterrupted one would have made."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derived_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on ``parts`` (so a resumed round draws the same)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def round_seed(seed: int, round_index: int | str) -> int:
    """The seed of the global generators for round ``round_index`` (or a named phase)."""
    return derived_seed(seed, "round", round_index)


def seed_globals(seed: int, round_index: int | str) -> None:
    """Seed torch, Python and NumPy for a round: dropout and the like repeat on resume."""
    value = round_seed(seed, round_index)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % 2**32)
