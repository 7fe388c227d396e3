"""Hook specifications: the contract between DEVIS and its plugins.

Every slot of a pipeline has one *register hook*. DEVIS calls it once per plugin with a
``register`` callable; the plugin calls ``register`` once per component it provides::

    from pydantic import BaseModel
    import devis_core


    class BlurConfig(BaseModel):
        sigma: float = 1.0


    @devis_core.hookimpl
    def devis_register_depth_estimators(register):
        register("blur-depth", BlurDepth, BlurConfig)

``register(name, factory, config, *, description=None)`` takes:

``name``
    The name configs use (``depth: {kind: blur-depth}``): lower case, digits and dashes,
    starting with a letter; any other name fails the plugin at registration. Names are unique
    within a slot; two plugins registering the same name is an error that names both
    distributions.
``factory``
    A callable that takes one argument, the validated config (an instance of ``config``), and
    returns the component. A class whose ``__init__`` takes the config is the usual choice.
``config``
    A pydantic model of the component's own fields. DEVIS forbids unknown keys on it, adds the
    ``kind`` discriminator, and uses it for validation, defaults and the JSON schema.
``description``
    One line for ``devis plugins``; defaults to the first line of the factory's docstring.

The docstrings below are the reference documentation of each hook (the docs site renders
them); they say what the component a hook registers must do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "devis"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., Any]


@hookspec
def devis_register_backbones(register: Register) -> None:
    """Register video generators (slot ``backbone``).

    A backbone completes a render into a video. Its factory returns an object with
    ``generate(cond: Conditions, generator: torch.Generator | None) -> Tensor`` that takes the
    render, its visibility mask, the reference video and the caption (a
    :class:`~devis_core.types.Conditions`) and returns a ``(T, 3, H, W)`` video in ``[0, 1]``
    with the render's frame count and size.

    Backbones that can be trained with reinforcement learning also implement the
    :class:`~devis_core.types.Policy` protocol (stochastic rollouts with per-step
    log-probabilities, trainable parameters and an adapter switch for the reference policy).

    Config key: ``backbone: {kind: <name>, ...}``.
    """


@hookspec
def devis_register_depth_estimators(register: Register) -> None:
    """Register depth estimators (slot ``depth``).

    A depth estimator's factory returns an object with
    ``estimate(video: Tensor, sample: ViewSynthesisSample | None = None) -> Tensor`` mapping a
    ``(T, 3, H, W)`` video to ``(T, H, W)`` positive planar depth in scene units (0 or
    non-finite where unknown). ``sample`` is the dataset sample the video belongs to, for
    estimators that read depth shipped with the data; an estimator that cannot serve a video
    (for example ground truth asked about a generated video) raises
    :class:`~devis_core.errors.UsageError` saying what to configure instead.

    Config key: ``depth: {kind: <name>, ...}``.
    """


@hookspec
def devis_register_accumulators(register: Register) -> None:
    """Register accumulation strategies (slot ``accumulator``).

    An accumulator reaches the target camera of a sample by one or more generation steps
    (ADEVIS, Eq. 7 of the paper). Its factory returns an object with
    ``run(sample, backbone, depth, *, increments=None, generator=None) -> AccumulationResult``:
    ``increments`` is an optional list of :class:`~devis_core.toolkit.geometry.Motion` that
    sums to the sample's motion (when omitted the strategy splits the motion by its own
    config), and the
    result carries the final video, the conditions of the last generation step (needed by
    RL training) and the number of generator calls.

    Config key: ``accumulator: {kind: <name>, ...}``.
    """


@hookspec
def devis_register_reward_terms(register: Register) -> None:
    """Register reward terms (slot ``reward``).

    A reward term's factory returns an object with ``score(batch: RewardInputs) -> Tensor``
    giving one value per video of the batch, and two attributes: ``higher_is_better`` (bool)
    and ``default_range`` (``(low, high)``), the range the composite reward normalises the
    term to ``[0, 1]`` with (Eq. 17). Non-finite scores are allowed: the composite reward
    reports and excludes them.

    Declare both as class attributes of the factory when they do not depend on the config:
    ``register`` checks them without building the term (``higher_is_better`` is True or False;
    ``default_range`` is two finite numbers, low < high), and a plugin that breaks them is not
    loaded, reported with its distribution, the factory and the line that registered it. A
    term that sets them in ``__init__`` (from its config) is checked when it is built.

    Config key: ``rewards: [{kind: <name>, weight: 1.0, range: [low, high], ...}]``.
    """


@hookspec
def devis_register_algorithms(register: Register) -> None:
    """Register training algorithms (slot ``algorithm``).

    An algorithm's factory returns a :class:`~devis_core.training.TrainingAlgorithm`: it
    declares its ``capabilities`` (whether it trains recorded denoising chains or final videos,
    per sample or per group) and implements ``advantages(rewards, group_ids)`` (one value per
    sample of the round), ``trained_steps(num_steps, generator)`` (which chain transitions to
    train) and ``loss(batch, policy) -> tuple[Tensor, dict[str, float]]`` (a scalar loss to
    minimise and the statistics to log: for GRPO the ratio, clip fraction, KL, ...). The
    trainer owns sampling, rewards, optimisation and checkpoints; the algorithm owns only how
    rewards become advantages and the objective.

    Config key: ``algorithm: {kind: <name>, ...}``.
    """


@hookspec
def devis_register_datasets(register: Register) -> None:
    """Register datasets (slot ``dataset``).

    A dataset's factory returns a sized, indexable collection of
    :class:`~devis_core.types.ViewSynthesisSample` (``len(ds)``, ``ds[i]``), already converted
    to the DEVIS conventions: OpenCV camera axes, world-to-camera extrinsics, pixel intrinsics,
    ``(T, 3, H, W)`` videos in ``[0, 1]`` and planar depth. Loaders raise
    :class:`~devis_core.errors.UsageError` naming the file and field for malformed input.

    Config key: ``dataset: {kind: <name>, ...}``.
    """


@hookspec
def devis_register_metrics(register: Register) -> None:
    """Register evaluation metrics (slot ``metric``).

    A metric's factory returns an object with
    ``compute(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor``
    taking ``(T, 3, H, W)`` or batched ``(B, T, 3, H, W)`` videos in ``[0, 1]`` (and an optional
    ``(T, H, W)`` / ``(B, T, H, W)`` visibility mask for masked metrics) and returning one value
    per video, plus a ``higher_is_better`` attribute for tables and plots.

    Config key: ``metrics: [{kind: <name>, ...}]`` (a bare name is shorthand for
    ``{kind: <name>}``).
    """


@hookspec
def devis_register_suites(register: Register) -> None:
    """Register ablation suites (slot ``suite``), run by ``devis ablate NAME``.

    A suite's factory returns an object with ``run(context: SuiteContext) -> SuiteResult``.
    The context gives the registry, the output directory, the base pipeline config and a
    progress switch; the result is a table (one row per variant, one column per metric) that
    DEVIS writes as markdown, CSV and JSON. Suites are how the paper's tables are reproduced.

    Config: ``devis ablate NAME -o field=value`` sets fields of the suite's own config model.
    """
