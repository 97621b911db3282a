"""Optuna samplers and pruners by name, and the two small samplers the search needs."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from adamtune.search.optuna_private import IN_MEMORY_LOGGER


class PresetSampler(BaseSampler):
    """Returns values chosen elsewhere. The real study records a trial's parameters through
    it, while the choice itself is made by a stage's own sampler on that stage's history."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.values[param_name]


class _IndexedQMC(optuna.samplers.QMCSampler):
    """QMC whose position in the sequence is the number of trials already in the stage.

    Optuna keeps that position in the study; a stage's history is rebuilt for every trial
    (so that resumed and concurrent searches sample alike), so it is derived instead.
    """

    def _find_sample_id(self, study: Study, *_: Any) -> int:  # 4.x passes no search space
        return len(study.get_trials(deepcopy=False))


def make_sampler(name: str, seed: int, *, position: int, startup: int, joint: bool) -> BaseSampler:
    """A sampler for one draw at ``position`` in a stage. The history is rebuilt for every
    draw, so the seed moves with the position (else random draws would repeat); QMC keeps one
    seed per stage and walks its sequence by position instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "qmc":
            return _IndexedQMC(
                seed=seed,
                scramble=True,
                warn_independent_sampling=False,
                warn_asynchronous_seeding=False,
            )
        seed += position
        if name == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=startup,
                multivariate=True,
                group=joint,
                constant_liar=True,
            )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "gp":
            return optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=startup,
                deterministic_objective=True,
                warn_independent_sampling=False,
            )
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(
                seed=seed, n_startup_trials=startup, warn_independent_sampling=False
            )
    raise ValueError(f"unknown sampler {name!r}")


def in_memory_study(**kwargs: Any) -> optuna.Study:
    """A throwaway in-memory study, without Optuna's "new study created" log line (one is
    made per draw and per search)."""
    logger = logging.getLogger(IN_MEMORY_LOGGER)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return optuna.create_study(direction="minimize", **kwargs)
    finally:
        logger.setLevel(level)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        # A few epochs of warm-up: early losses of good and bad learning rates cross over.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 5))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.NopPruner()
