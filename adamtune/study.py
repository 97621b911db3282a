"""What adamtune keeps in an Optuna study, and how it reads it back.

Each trial records, beside the Optuna parameters its stage searched, user attributes:
``stage``, ``adam`` (the full parameter set, so any trial is reproducible alone), ``status``
(complete, pruned, diverged, failed, interrupted), ``epochs``, the learning curves and the
worker that ran it. The study records the search-relevant config, so a resumed search can
refuse a changed one.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune.config import Config
from adamtune.errors import ConfigError
from adamtune.plan import BASELINE

CONFIG_ATTR = "adamtune_config"
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
    return str(trial.user_attrs.get("stage", "?"))


def status_of(trial: FrozenTrial) -> str:
    if "status" in trial.user_attrs:
        return str(trial.user_attrs["status"])
    if trial.state == TrialState.FAIL:
        return "killed"  # its process died before it could say how it ended
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


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphans(study: optuna.Study) -> int:
    """Mark as failed the RUNNING trials whose process on this host is gone (killed, crashed).
    Trials of live workers, here or on other hosts, are left alone."""
    host = socket.gethostname()
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get("worker", ""))
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL)  # no status: shown as killed
            failed += 1
    return failed


def refuse_if_busy(study: optuna.Study, take_over: bool = False) -> None:
    """One worker per study for now: refuse to search a study that another live worker is
    searching (its RUNNING trials remain after ``fail_orphans``); ``take_over`` marks them
    failed instead (they are drawn again), for a worker known to be gone."""
    from adamtune.errors import SearchFailedError

    mine = worker_id()
    others = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if str(t.user_attrs.get("worker", "")) != mine
    ]
    if not others:
        return
    if take_over:
        for trial in others:
            study.tell(trial.number, state=TrialState.FAIL)  # no status: retried, as killed
        return
    workers = sorted({str(t.user_attrs.get("worker", "?")) for t in others})
    raise SearchFailedError(
        f"study {study.study_name!r} is being searched by {', '.join(workers)} "
        f"({len(others)} trials running); several workers on one study are not there yet: "
        f"wait for it, or, if that worker is gone, rerun with --take-over (its running trials "
        f"are marked failed and drawn again)"
    )


def relevant_config(config: Config) -> dict[str, Any]:
    data = config.model_dump(mode="json")
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
