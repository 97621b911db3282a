"""Search quality: do adamtune's winners train better than Adam's defaults and a random search?

A search's own best value is measured on the split, initial weights and batch order it searched
with, so it flatters the winner (the search picked the luckiest draw). Here every winner is
trained again by a plain torch loop written independently of adamtune (it never imports it):
a fresh train/val split (``random_state`` 10_000 + s, which adamtune never uses), fresh initial
weights and batch orders (seeds 20_000 + r, r < ``--rescore-seeds``), the same architecture,
epochs, batch size and loss, and ``torch.optim.Adam`` with the winner's keyword arguments (and
its lr schedule, built from the torch scheduler classes ``best --format json`` names). A
winner's score is the mean over those seeds of the lowest validation loss over epochs
(adamtune's default objective); a non-finite loss scores +inf.

Tasks (scikit-learn's bundled data, nothing downloaded; ``train.device: cpu``):

  digits         MLP 64-128-128-10, batch 64, 20 epochs, cross-entropy
  breast_cancer  linear (logistic regression), batch 32, 30 epochs, weight decay up to 1.0
  diabetes       MLP 10-64-1 with dropout 0.1, MSE on the standardised target, val 25%,
                 batch 32, 40 epochs
  wine           MLP 13-64-3, batch 16, 40 epochs

Methods, each searched with config ``seed: s`` for s < ``--seeds`` (the seed also picks
adamtune's own split) and the same ``--trials`` budget:

  adamtune   adamtune's default search (``strategy: staged``), through the Python API
  joint      the same with ``strategy: joint`` (all parameters at once, TPE)
  random     ``strategy: joint``, ``sampler: random``, ``pruner: none``: a random search
  defaults   Adam's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay), no search

It prints, per task and method, the median over search seeds of the re-scored loss and of
the search's own best value, and per task whether adamtune beats the defaults and matches or
beats random search (medians of re-scored losses; lower is better).

    python benchmarks/quality.py                                  # everything, ~15 min on 2 cores
    python benchmarks/quality.py --tasks wine breast_cancer --seeds 1 --trials 12 --rescore-seeds 2
    python benchmarks/quality.py --methods adamtune defaults --json quality.json

``--json PATH`` writes every raw number (per task, method and seed: the winner, the search's
best and default values, each re-scoring seed's loss, times); a loss of +inf is written as null.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPLIT_SEED = 10_000  # + search seed: a split adamtune never makes (it splits with seed s)
INIT_SEED = 20_000  # + re-scoring seed r: initial weights, batch order, dropout masks


@dataclass(frozen=True)
class Task:
    name: str
    source: str  # a scikit-learn bundled dataset: load_<source>
    arch: str  # linear | mlp
    batch_size: int
    epochs: int
    hidden: tuple[int, ...] = ()
    dropout: float = 0.0
    loss: str = "cross_entropy"  # cross_entropy | mse
    val_fraction: float = 0.2
    space: dict[str, Any] = field(default_factory=dict)  # search.space overrides

    @property
    def classification(self) -> bool:
        return self.loss == "cross_entropy"


TASKS = {
    t.name: t
    for t in (
        Task("digits", "digits", "mlp", batch_size=64, epochs=20, hidden=(128, 128)),
        Task(
            "breast_cancer", "breast_cancer", "linear", batch_size=32, epochs=30,
            space={"weight_decay": {"low": 1.0e-5, "high": 1.0, "zero": True}},
        ),
        Task(
            "diabetes", "diabetes", "mlp", batch_size=32, epochs=40, hidden=(64,), dropout=0.1,
            loss="mse", val_fraction=0.25,
        ),
        Task("wine", "wine", "mlp", batch_size=16, epochs=40, hidden=(64,)),
    )
}

# Extra keys merged into each searching method's ``search:`` mapping.
EXTRA: dict[str, dict[str, Any]] = {
    "adamtune": {},
    "joint": {"strategy": "joint"},
    "random": {
        "strategy": "joint", "sampler": "random", "pruner": "none", "confirm": {"seeds": 1},
    },
}
DEFAULTS = {
    "lr": 1e-3,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.0,
    "amsgrad": False,
    "decoupled_weight_decay": False,
}
METHODS = [*EXTRA, "defaults"]


@dataclass
class Winner:
    """What a method chose: ``params`` are ``torch.optim.Adam`` keyword arguments."""

    params: dict[str, Any]
    # The winner's lr schedule as ``best --format json`` gives it (torch scheduler classes
    # and their kwargs, stepped per epoch), or None for a constant rate.
    schedule: dict[str, Any] | None = None
    search_value: float | None = None  # the search's best val loss, on its own split
    search_default_value: float | None = None  # Adam's defaults in the same study
    search_seconds: float = 0.0
    trials: int = 0


Method = Callable[[Task, int], Winner]


def config_text(task: Task, seed: int, trials: int, extra: dict[str, Any]) -> str:
    """The adamtune config of ``task`` searched with ``seed``, as YAML."""
    model: dict[str, Any] = {"arch": task.arch}
    if task.arch == "mlp":
        model.update(hidden=list(task.hidden), dropout=task.dropout)
    search: dict[str, Any] = {"trials": trials, **extra}
    if task.space:  # the task's own ranges, on top of any --set space keys
        search["space"] = {**search.get("space", {}), **task.space}
    config = {
        "name": f"quality-{task.name}-s{seed}",
        "seed": seed,
        "data": {
            "source": task.source,
            "val_fraction": task.val_fraction,
            "batch_size": task.batch_size,
        },
        "model": model,
        "train": {"epochs": task.epochs, "loss": task.loss, "device": "cpu"},
        "search": search,
    }
    # PyYAML writes floats with a dot (1.0e-05), so they read back as numbers.
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def search_with_adamtune(task: Task, seed: int, trials: int, extra: dict[str, Any]) -> Winner:
    """One study in a fresh directory, through adamtune's library entry points."""
    import optuna

    from adamtune.config import load_config
    from adamtune.results import best_result
    from adamtune.search import SearchOptions, run_search

    with tempfile.TemporaryDirectory(prefix="adamtune-quality-") as tmp:
        path = Path(tmp) / f"quality-{task.name}-s{seed}.yaml"
        path.write_text(config_text(task, seed, trials, extra))
        url = f"sqlite:///{tmp}/q.db"
        settings = load_config(path)
        began = time.perf_counter()
        run = run_search(settings, SearchOptions(storage=url))
        seconds = time.perf_counter() - began
        storage = optuna.storages.RDBStorage(url)
        best = best_result(optuna.load_study(study_name=run.study, storage=storage))
        storage.engine.dispose()  # close the file before its directory goes
    return Winner(
        params=best.params.torch_kwargs(),
        schedule=best.as_dict()["schedule"],
        search_value=best.value,
        search_default_value=best.default_value,
        search_seconds=seconds,
        trials=best.n_trials,
    )


def make_methods(trials: int) -> dict[str, Method]:
    methods: dict[str, Method] = {
        name: functools.partial(search_with_adamtune, trials=trials, extra=extra)
        for name, extra in EXTRA.items()
    }
    methods["defaults"] = lambda task, seed: Winner(params=dict(DEFAULTS))
    return methods


# --- re-scoring: a plain torch loop, independent of adamtune --------------------------------


@functools.lru_cache(maxsize=8)
def fresh_split(name: str, split_seed: int) -> tuple[Any, Any, Any, Any, int]:
    """Train/val tensors of task ``name`` split with ``split_seed``, standardised on train,
    and the number of outputs."""
    import numpy as np
    import torch
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    task = TASKS[name]
    x, y = getattr(datasets, f"load_{task.source}")(return_X_y=True)
    x = np.asarray(x, dtype=np.float64)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=task.val_fraction, random_state=split_seed,
        stratify=y if task.classification else None,
    )

    def standardise(train: Any, val: Any) -> tuple[Any, Any]:
        mean, std = train.mean(axis=0), train.std(axis=0)
        std[std == 0] = 1.0  # digits' blank border pixels
        return (train - mean) / std, (val - mean) / std

    x_tr, x_va = standardise(x_tr, x_va)
    if task.classification:
        classes = np.unique(y)
        t_tr = torch.as_tensor(np.searchsorted(classes, y_tr), dtype=torch.long)
        t_va = torch.as_tensor(np.searchsorted(classes, y_va), dtype=torch.long)
    else:
        y_tr, y_va = standardise(
            np.asarray(y_tr, dtype=np.float64)[:, None], np.asarray(y_va, dtype=np.float64)[:, None]
        )
        t_tr = torch.as_tensor(y_tr, dtype=torch.float32)
        t_va = torch.as_tensor(y_va, dtype=torch.float32)
    out = len(np.unique(y)) if task.classification else 1
    as_x = functools.partial(torch.as_tensor, dtype=torch.float32)
    return as_x(x_tr), t_tr, as_x(x_va), t_va, out


def make_scheduler(optimizer: Any, schedule: dict[str, Any] | None) -> Any:
    """The torch scheduler a ``best --format json`` schedule names; None for a constant rate."""
    from torch.optim import lr_scheduler

    if not schedule:
        return None
    parts = [
        getattr(lr_scheduler, s["name"])(optimizer, **s["kwargs"]) for s in schedule["schedulers"]
    ]
    if len(parts) == 1:
        return parts[0]
    return lr_scheduler.SequentialLR(optimizer, parts, milestones=schedule["milestones"])


def train_once(
    task: Task,
    params: dict[str, Any],
    split_seed: int,
    init_seed: int,
    schedule: dict[str, Any] | None = None,
) -> float:
    """Lowest val loss over ``task.epochs`` of Adam with ``params`` (and ``schedule``, stepped
    after each epoch); +inf if a loss is not finite."""
    import torch
    from torch import nn

    x_tr, y_tr, x_va, y_va, out = fresh_split(task.name, split_seed)
    torch.manual_seed(init_seed)  # initial weights and dropout masks
    layers: list[nn.Module] = []
    width = x_tr.shape[1]
    if task.arch == "mlp":
        for h in task.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if task.dropout > 0:
                layers.append(nn.Dropout(task.dropout))
            width = h
    model = nn.Sequential(*layers, nn.Linear(width, out))
    loss_fn: Callable[..., torch.Tensor] = (
        nn.functional.cross_entropy if task.classification else nn.functional.mse_loss
    )
    kwargs = {**params, "betas": tuple(params["betas"])}
    optimizer = torch.optim.Adam(model.parameters(), **kwargs)
    scheduler = make_scheduler(optimizer, schedule)
    order = torch.Generator().manual_seed(init_seed)
    best = math.inf
    for _ in range(task.epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=order)
        for start in range(0, len(x_tr), task.batch_size):
            idx = perm[start : start + task.batch_size]
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            if not torch.isfinite(loss):
                return math.inf
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(x_va), y_va))
        if not math.isfinite(val):
            return math.inf
        best = min(best, val)
    return best


# --- running and reporting ------------------------------------------------------------------


@dataclass
class Result:
    seed: int
    winner: Winner
    rescored: list[float]
    rescore_seconds: float

    @property
    def score(self) -> float:
        return statistics.fmean(self.rescored)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, width: int = 10) -> str:
    return f"{'-' if value is None else f'{value:.5g}':>{width}}"


def _json_number(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def summary(task: str, scores: dict[str, float | None]) -> str:
    ours = scores.get("adamtune")
    parts = []
    for other, test in (("defaults", "beats"), ("random", "<=")):
        theirs = scores.get(other)
        if ours is None or theirs is None:
            continue
        yes = ours < theirs if test == "beats" else ours <= theirs
        gain = f", {(ours - theirs) / theirs:+.1%}" if theirs and math.isfinite(theirs) else ""
        parts.append(
            f"adamtune {test} {other}: {'yes' if yes else 'NO'} ({ours:.5g} vs {theirs:.5g}{gain})"
        )
    return f"{task}: " + ("; ".join(parts) if parts else "no adamtune/defaults/random to compare")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--trials", type=int, default=60, help="budget of every search")
    parser.add_argument("--seeds", type=int, default=3, help="search seeds 0..N-1")
    parser.add_argument("--rescore-seeds", type=int, default=5,
                        help="fresh init/shuffle seeds each winner is re-trained with")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch threads (small models gain nothing from more)")
    parser.add_argument("--json", type=Path, help="write every raw number here")
    parser.add_argument("--set", metavar="JSON", type=json.loads, default={},
                        help="extra search keys for the adamtune and joint methods, e.g. "
                             "'{\"confirm\": {\"seeds\": 4}}'")
    args = parser.parse_args()
    for name in ("adamtune", "joint"):
        EXTRA[name] = {**EXTRA[name], **args.set}

    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    methods = make_methods(args.trials)
    results: dict[str, dict[str, list[Result]]] = {}
    began = time.perf_counter()
    for name in args.tasks:
        task = TASKS[name]
        for seed in range(args.seeds):
            for method in args.methods:
                winner = methods[method](task, seed)
                start = time.perf_counter()
                rescored = [
                    train_once(
                        task, winner.params, SPLIT_SEED + seed, INIT_SEED + r, winner.schedule
                    )
                    for r in range(args.rescore_seeds)
                ]
                result = Result(seed, winner, rescored, time.perf_counter() - start)
                results.setdefault(name, {}).setdefault(method, []).append(result)
                print(f"{name} seed {seed} {method}: search {_fmt(winner.search_value, 0)} "
                      f"({winner.search_seconds:.1f} s), rescored {result.score:.5g} "
                      f"({result.rescore_seconds:.1f} s)", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - began

    import adamtune

    print(f"quality: {args.trials} trials per search, search seeds {args.seeds}, "
          f"rescore seeds {args.rescore_seeds}, torch {torch.__version__} threads "
          f"{args.threads}, {elapsed:.0f} s; adamtune from {Path(adamtune.__file__).parent}")
    print(f"{'task':<14} {'method':<9} {'rescored':>10} {'search':>10} {'defaults@s':>10} "
          f"{'search s':>9}  rescored per seed")
    scores: dict[str, dict[str, float | None]] = {}
    for name, per_method in results.items():
        for method, rs in per_method.items():
            score = _median([r.score for r in rs])
            scores.setdefault(name, {})[method] = score
            per_seed = " ".join(f"{r.score:.4g}" for r in rs)
            print(f"{name:<14} {method:<9} {_fmt(score)} "
                  f"{_fmt(_median([r.winner.search_value for r in rs]))} "
                  f"{_fmt(_median([r.winner.search_default_value for r in rs]))} "
                  f"{sum(r.winner.search_seconds for r in rs):>9.1f}  {per_seed}")
    print("(medians over search seeds; rescored: mean val loss of the winner retrained on a "
          "fresh split and seeds; search: its best on its own split; defaults@s: Adam's "
          "defaults in that study)")
    for name in results:
        print(summary(name, scores[name]))

    if args.json:
        raw = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "seconds": elapsed,
            "tasks": {name: asdict(TASKS[name]) for name in results},
            "results": {
                name: {
                    method: [
                        {
                            "seed": r.seed,
                            **asdict(r.winner),
                            "rescored": [_json_number(v) for v in r.rescored],
                            "rescored_mean": _json_number(r.score),
                            "rescore_seconds": r.rescore_seconds,
                        }
                        for r in rs
                    ]
                    for method, rs in per_method.items()
                }
                for name, per_method in results.items()
            },
            "median_rescored": {
                name: {m: _json_number(v) for m, v in s.items()} for name, s in scores.items()
            },
        }
        args.json.write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
