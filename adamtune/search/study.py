"""What adamtune keeps in an Optuna study, and how it reads it back.

Each trial records, beside the Optuna parameters its stage searched, user attributes:
``stage``, ``adam`` (the full parameter set, so any trial is reproducible alone), ``status``
(complete, pruned, diverged, failed, interrupted), ``epochs``, the learning curves and the
worker that ran it. The study records the search-relevant config, so a resumed search can
refuse a changed one.
"""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune.config.schema import Config, metric_label
from adamtune.errors import ConfigError
from adamtune.search import trial_attrs
from adamtune.search.plan import BASELINE

CONFIG_ATTR = "adamtune_config"
# The config's folder, where its relative paths and import paths are read: ``verify --study``
# run from elsewhere reads them there. Not part of the config: a clone elsewhere resumes alike.
CONFIG_DIR_ATTR = "adamtune_config_dir"
# Not search-relevant: changing these never changes a trial's result (or only the budget).
_NOT_RELEVANT = {
    ("name",),
    ("search", "trials"),
    ("search", "timeout"),
    ("search", "storage"),
    ("search", "batch"),
    ("train", "device"),
}


def stage_of(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get(trial_attrs.STAGE, "?"))


def status_of(trial: FrozenTrial) -> str:
    if trial_attrs.STATUS in trial.user_attrs:
        return str(trial.user_attrs[trial_attrs.STATUS])
    if trial.state == TrialState.FAIL:
        # Its worker died before it could say how the trial ended. A trial is drawn again
        # once; a retry that dies too (its parameters may be what kills the worker: out of
        # host memory, say) counts as failed.
        return "failed" if trial_attrs.RETRY_OF in trial.user_attrs else "killed"
    return {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "pruned",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }[trial.state]


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished trials count; a failure counts only when the trial itself raised (it would
    fail again), not when its process was killed or interrupted (it is retried)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    # A baseline that raised is run again once the user has fixed their model or data.
    return (
        trial.state == TrialState.FAIL
        and status_of(trial) == "failed"
        and stage_of(trial) != BASELINE
    )


# How the staged search plans and selects, stored beside the config: a study run by another
# method is not resumed by this one (2: lr re-tuned in every stage, wide rounds, one final
# confirmation).
METHOD_KEY, SEARCH_METHOD = "search_method", 2


def metric_of(study: optuna.Study) -> str:
    """What the study's values measure, as output names it (``val loss``, ``val accuracy``),
    from the config it stored."""
    stored = study.user_attrs.get(CONFIG_ATTR, {})
    train = stored.get("train", {}) if isinstance(stored, dict) else {}
    return metric_label(str(train.get("metric", "val_loss")))


def relevant_config(config: Config) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    data[METHOD_KEY] = SEARCH_METHOD
    for path in _NOT_RELEVANT:
        node = data
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    return data


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: data}


# Keys added since studies were first stored, with the value that matches how those studies
# were run: an older study compares as if it had them (it ran without confirmation).
_ADDED = {
    "search.confirm.seeds": 1,
    "search.confirm.top": 2,
    "search.confirm.confidence": 0.8,
    "data.folds": None,
    "search.space.lr.auto": False,
    "train.step": None,
    "train.metric": "val_loss",
    "train.direction": "auto",
    METHOD_KEY: 1,
}


def config_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    old, new = {**_ADDED, **_flatten(stored)}, _flatten(current)
    return [
        f"{key}: {json.dumps(old.get(key))} -> {json.dumps(new.get(key))}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def check_same_config(study: optuna.Study, config: Config, source: str) -> None:
    """Refuse to resume a study whose search-relevant config changed, showing what changed."""
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        return
    changes = config_changes(stored, relevant_config(config))
    if changes:
        raise ConfigError(
            f"{source}: the search config changed since study {study.study_name!r} started "
            f"({'; '.join(changes)}); run with --fresh to start over, or give the study a new name"
        )
