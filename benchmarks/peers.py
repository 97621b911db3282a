"""The peers of ``quality.py``: plain Optuna loops, written as a practitioner would write them.

Each peer is ``optuna.create_study`` in memory with one sampler (``RandomSampler(seed=s)``,
``TPESampler(seed=s, multivariate=True)`` or ``GPSampler(seed=s)``) and ``MedianPruner()``,
``study.optimize`` for the budget, and ``study.best_trial`` as its winner. Trial 0 is enqueued
as Adam's defaults, as adamtune's trial 0 is. The space is adamtune's default one (README)
with the task's own overrides:

    lr            1e-5..1e-1, log
    beta1, beta2  0.5..0.999 and 0.9..0.9999, drawn as log(1 - beta)
    eps           1e-10..1e-3, log
    weight_decay  a categorical on/off, then (on) 1e-6..1e-1, log
    amsgrad       [False, True]

A trial trains the task's model (``quality_tasks.build_model``, plain torch) with
``torch.optim.Adam`` through a ``DataLoader`` over a ``TensorDataset``, on the train/val split
``train_test_split(random_state=s)`` (stratified for classes; features, and a regression
target, standardised on train when the task standardises, as adamtune does). Every trial of a
study starts from ``torch.manual_seed(s)`` and shuffles with a fresh generator seeded with s,
the usual way to make trials comparable. It reports the val loss after every epoch to the
pruner, and its value is the lowest val loss over epochs. A non-finite loss (a diverged trial)
ends it as pruned, so it is never the winner.

Nothing here imports adamtune.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quality_tasks import Task, adam_kwargs, build_model, loss_fn, split

# adamtune's default search.space (README); a task's ``space`` overrides key by key.
DEFAULT_SPACE: dict[str, Any] = {
    "lr": {"low": 1.0e-5, "high": 1.0e-1},
    "beta1": {"low": 0.5, "high": 0.999},
    "beta2": {"low": 0.9, "high": 0.9999},
    "eps": {"low": 1.0e-10, "high": 1.0e-3},
    "weight_decay": {"low": 1.0e-6, "high": 1.0e-1, "zero": True},
    "amsgrad": [False, True],
}
ADAM_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.0,
    "amsgrad": False,
    "decoupled_weight_decay": False,
}
PEERS = ("random", "tpe", "gp")


def span_seconds(trials: list[Any]) -> float:
    """First trial's start to last trial's end, from an Optuna study's timestamps."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


@dataclass
class Winner:
    """What a method chose: ``params`` are ``torch.optim.Adam`` keyword arguments."""

    params: dict[str, Any]
    # The winner's lr schedule as adamtune's ``best --format json`` gives it (torch scheduler
    # classes and their kwargs, stepped per epoch), or None for a constant rate.
    schedule: dict[str, Any] | None = None
    search_value: float | None = None  # the search's best val loss, on its own split
    search_default_value: float | None = None  # Adam's defaults in the same search
    search_seconds: float = 0.0
    span_seconds: float = 0.0  # first trial's start to last trial's end (set-up left out)
    trials: int = 0
    pruned: int | None = None  # trials pruned (diverged included); None: not known
    # Epochs trained over the whole search, every trial's (re-runs included): with one
    # epoch's cost, what a search's time is made of. None: not known (an older file). The two
    # counts differ at the edges: adamtune counts an epoch whose val loss diverged and
    # nothing for a trial that raised; a plain loop the reverse.
    epochs: int | None = None
    threads: int | None = None  # torch's CPU threads during the search


def space_of(task: Task) -> dict[str, Any]:
    return {**DEFAULT_SPACE, **task.space}


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """Draw Adam's arguments; betas through log(1 - beta), so values near 1 get resolution."""
    lr = trial.suggest_float("lr", space["lr"]["low"], space["lr"]["high"], log=True)
    betas = [
        1.0
        - trial.suggest_float(
            f"one_minus_{name}", 1.0 - space[name]["high"], 1.0 - space[name]["low"], log=True
        )
        for name in ("beta1", "beta2")
    ]
    eps = trial.suggest_float("eps", space["eps"]["low"], space["eps"]["high"], log=True)
    decay = space["weight_decay"]
    weight_decay = 0.0
    if not decay.get("zero", True) or trial.suggest_categorical("weight_decay_on", [False, True]):
        weight_decay = trial.suggest_float("weight_decay", decay["low"], decay["high"], log=True)
    amsgrad = trial.suggest_categorical("amsgrad", list(space["amsgrad"]))
    return {
        "lr": lr,
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "decoupled_weight_decay": False,
    }


def defaults_trial(space: dict[str, Any]) -> dict[str, Any]:
    """Adam's defaults in the parameter names ``suggest`` draws."""
    params: dict[str, Any] = {
        "lr": ADAM_DEFAULTS["lr"],
        "one_minus_beta1": 1.0 - ADAM_DEFAULTS["betas"][0],
        "one_minus_beta2": 1.0 - ADAM_DEFAULTS["betas"][1],
        "eps": ADAM_DEFAULTS["eps"],
        "amsgrad": False,
    }
    if space["weight_decay"].get("zero", True):
        params["weight_decay_on"] = False
    return params


def make_sampler(method: str, seed: int) -> Any:
    import optuna

    samplers: dict[str, Callable[[], Any]] = {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
    }
    return samplers[method]()


def warm_up() -> None:
    """Run each sampler past its start-up once on a toy objective, so that its lazy imports
    (GPSampler: its GP modules; multivariate TPE: scipy) fall outside every timed search."""
    import optuna

    toy = {
        "tpe": optuna.samplers.TPESampler(seed=0, multivariate=True, n_startup_trials=2),
        "gp": optuna.samplers.GPSampler(seed=0, n_startup_trials=2),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for sampler in toy.values():
            study = optuna.create_study(sampler=sampler)
            study.optimize(lambda t: math.log(suggest(t, DEFAULT_SPACE)["lr"]) ** 2, n_trials=4)


def objective(task: Task, seed: int, space: dict[str, Any]) -> Callable[[Any], float]:
    """The study's objective: train once with the drawn arguments, lowest val loss."""
    import optuna
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x_tr, y_tr, x_va, y_va, out = split(task.name, seed)
    data = TensorDataset(x_tr, y_tr)
    loss_of = loss_fn(task)

    def run(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        trial.set_user_attr("adam", params)
        torch.manual_seed(seed)  # initial weights and dropout masks: the same in every trial
        model = build_model(task, x_tr.shape[1], out)
        optimizer = torch.optim.Adam(model.parameters(), **adam_kwargs(params))
        loader = DataLoader(
            data,
            batch_size=task.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        best = math.inf
        for epoch in range(task.epochs):
            model.train()
            for xb, yb in loader:
                loss = loss_of(model(xb), yb)
                if not torch.isfinite(loss):
                    raise optuna.TrialPruned("diverged")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                val = float(loss_of(model(x_va), y_va))
            if not math.isfinite(val):
                raise optuna.TrialPruned("diverged")
            best = min(best, val)
            trial.report(val, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    return run


def search_with_peer(method: str, task: Task, seed: int, trials: int) -> Winner:
    """One plain Optuna study of ``trials`` trials (trial 0: the defaults), timed whole."""
    import optuna
    import torch

    space = space_of(task)
    began = time.perf_counter()
    with warnings.catch_warnings():
        # multivariate TPE and GPSampler are "experimental" / warn about the conditional
        # weight decay, sampled independently; that is what a plain loop gets
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            direction="minimize",
            sampler=make_sampler(method, seed),
            pruner=optuna.pruners.MedianPruner(),
        )
        study.enqueue_trial(defaults_trial(space))
        study.optimize(objective(task, seed, space), n_trials=trials)
    seconds = time.perf_counter() - began
    best = study.best_trial
    first = study.trials[0]
    return Winner(
        params=dict(best.user_attrs["adam"]),
        search_value=best.value,
        search_default_value=first.value if first.state.name == "COMPLETE" else None,
        search_seconds=seconds,
        span_seconds=span_seconds(study.trials),
        trials=len(study.trials),
        pruned=sum(t.state.name == "PRUNED" for t in study.trials),
        epochs=sum(len(t.intermediate_values) for t in study.trials),
        threads=torch.get_num_threads(),
    )
