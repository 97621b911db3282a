"""The independent re-scoring loop of ``quality.py``: a plain torch loop written apart from
adamtune (it never imports it) that trains a search's winner again on a split and seeds no
search used.

A winner of search seed s is trained on the split ``random_state`` ``SPLIT_SEED`` + s with
initial weights, batch orders and dropout masks from seeds ``INIT_SEED`` + r, r < the number
of re-scoring seeds; its score is the mean over those seeds of the lowest validation loss
over epochs (adamtune's default objective), +inf where a loss is not finite.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from peers import Winner
from quality_tasks import Task, adam_kwargs, build_model, loss_fn, split

SPLIT_SEED = 10_000  # + search seed: a split no search makes (each splits with seed s)
INIT_SEED = 20_000  # + re-scoring seed r: initial weights, batch order, dropout masks


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

    x_tr, y_tr, x_va, y_va, out = split(task.name, split_seed)
    torch.manual_seed(init_seed)  # initial weights and dropout masks
    model = build_model(task, x_tr.shape[1], out)
    loss_of = loss_fn(task)
    optimizer = torch.optim.Adam(model.parameters(), **adam_kwargs(params))
    scheduler = make_scheduler(optimizer, schedule)
    order = torch.Generator().manual_seed(init_seed)
    best = math.inf
    for _ in range(task.epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=order)
        for start in range(0, len(x_tr), task.batch_size):
            idx = perm[start : start + task.batch_size]
            loss = loss_of(model(x_tr[idx]), y_tr[idx])
            if not torch.isfinite(loss):
                return math.inf
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_of(model(x_va), y_va))
        if not math.isfinite(val):
            return math.inf
        best = min(best, val)
    return best


@dataclass
class Result:
    seed: int
    winner: Winner
    rescored: list[float]
    rescore_seconds: float

    @property
    def score(self) -> float:
        return statistics.fmean(self.rescored)


def rescore(task: Task, seed: int, winner: Winner, seeds: int) -> Result:
    start = time.perf_counter()
    rescored = [
        train_once(task, winner.params, SPLIT_SEED + seed, INIT_SEED + r, winner.schedule)
        for r in range(seeds)
    ]
    return Result(seed, winner, rescored, time.perf_counter() - start)
