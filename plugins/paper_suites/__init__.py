"""The suites that reproduce the paper's tables, one plugin because they share their setup.

- ``main`` (Table 1, :mod:`.main`) and ``accumulation`` (Table 2, :mod:`.accumulation`):
  evaluation suites over methods and datasets;
- ``grpo-vs-vanilla`` (Table 3) and ``paradigms`` (Table 4), :mod:`.training`: methods trained
  from one warm start and scored on held-out scenes.

:mod:`.assets` holds what they share: the toy/paper scale switch, the toy and paper-scale
component entries, the paper's metrics and the packaged toy training config
(``presets/grpo-toy.yaml``). It names built-in kinds, which is why it lives in a plugin and not
in the core.
"""

from __future__ import annotations

import devis_core
from devis_plugins.paper_suites.accumulation import AccumulationSuite, AccumulationSuiteConfig
from devis_plugins.paper_suites.main import MainSuite, MainSuiteConfig
from devis_plugins.paper_suites.training import (
    GRPOVsVanillaConfig,
    GRPOVsVanillaSuite,
    ParadigmsSuite,
    TrainingSuiteConfig,
)


@devis_core.hookimpl
def devis_register_suites(register):
    register("main", MainSuite, MainSuiteConfig)
    register("accumulation", AccumulationSuite, AccumulationSuiteConfig)
    register("grpo-vs-vanilla", GRPOVsVanillaSuite, GRPOVsVanillaConfig)
    register("paradigms", ParadigmsSuite, TrainingSuiteConfig)
