"""The LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017;
fast.ai's ``lr_find``).

Train with Adam while the learning rate rises exponentially, one step per batch, from tiny until
the loss blows up; read off where the smoothed loss falls fastest, not where it is lowest (at the
minimum the rate is already too high to train with).

- The ladder: ``steps`` learning rates evenly spaced in log10(lr) from ``start`` to ``end``, the
  first step included.
- The loss of each step is smoothed by a bias-corrected exponential moving average (beta 0.98,
  as fast.ai); the test stops once the smoothed loss exceeds ``4x`` its minimum or any loss is not
  finite.
- Slopes are taken against log10(lr), not against lr or the step index.

The model starts from the same initial weights as a trial of the seed and sees the same batch
order; the model and optimizer given to ``range_test_model`` are put back exactly as they were.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from adamtune.task.build import Task
from adamtune.train import threads
from adamtune.train.engine import batches, make_optimizer
from adamtune.train.params import ADAM_DEFAULTS, fixed_values

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SUGGESTIONS = ("steep", "valley", "minimum/10", "largest_stable")


@dataclass
class RangeCurve:
    """One range test: the learning rates tried and the losses they gave."""

    lrs: list[float]
    losses: list[float]  # raw training loss of each step
    smoothed: list[float]  # bias-corrected moving average
    stopped: str  # "diverged" (4x the minimum, or not finite) | "end" (the ladder ran out)
    suggestions: dict[str, float | None] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)  # suggestion -> why it is not shown


def ladder(start: float, end: float, steps: int) -> list[float]:
    """``steps`` learning rates evenly spaced in log10 from ``start`` to ``end``, both included."""
    if steps < 2:
        return [start]
    ratio = math.log10(end / start) / (steps - 1)
    return [start * 10 ** (ratio * i) for i in range(steps)]


def range_test_model(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    lrs: list[float],
    beta: float = 0.98,
    diverge: float = 4.0,
) -> RangeCurve:
    """Run the test on ``model`` with ``optimizer`` (one step per learning rate of ``lrs``),
    then put both back as they were, and torch's RNG too."""
    weights = copy.deepcopy(model.state_dict())
    state = copy.deepcopy(optimizer.state_dict())
    rng = torch.get_rng_state()
    try:
        return _run(model, optimizer, batches, loss_fn, lrs, beta, diverge)
    finally:
        model.load_state_dict(weights)
        optimizer.load_state_dict(state)
        torch.set_rng_state(rng)


def _run(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    lrs: list[float],
    beta: float,
    diverge: float,
) -> RangeCurve:
    model.train()
    curve = RangeCurve([], [], [], "end")
    average, best = 0.0, math.inf
    for i, lr in enumerate(lrs):
        threads.pace()  # a step is its unit of work: the test has no epochs
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        loss = loss_fn(model(x).float(), y)
        value = float(loss.detach())
        average = beta * average + (1 - beta) * value
        smoothed = average / (1 - beta ** (i + 1))
        if not math.isfinite(value) or not math.isfinite(smoothed):
            curve.stopped = "diverged"
            break
        curve.lrs.append(lr)
        curve.losses.append(value)
        curve.smoothed.append(smoothed)
        best = min(best, smoothed)
        if smoothed > diverge * best:
            curve.stopped = "diverged"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    curve.suggestions = suggest(curve.lrs, curve.smoothed, curve.losses)
    curve.withheld = withheld(curve)
    return curve


_FELL = 0.02  # the smoothed loss must fall this far below its start for a reading to mean much


def withheld(curve: RangeCurve) -> dict[str, str]:
    """The suggestions a curve cannot stand behind, with the reason: all of them when the loss
    never fell; one outside the learning rates tried, or at the ladder's edge (the first two
    steps, or the last two when the ladder ran out before the loss blew up)."""
    lrs, found = curve.lrs, curve.suggestions
    if len(lrs) < 3:
        return {}
    if min(curve.smoothed) > (1 - _FELL) * curve.smoothed[0]:
        return {name: "the loss never fell" for name, lr in found.items() if lr is not None}
    out = {}
    for name, lr in found.items():
        if lr is None:
            continue
        read = lr * 10 if name == "minimum/10" else lr  # where on the curve it was read
        at = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i] / read)))
        if lr < lrs[0] * (1 - 1e-9):
            out[name] = "below the learning rates tried (lower --start)"
        elif at <= 1:
            out[name] = "at the ladder's start (lower --start)"
        elif at >= len(lrs) - 2 and curve.stopped == "end":
            out[name] = "at the ladder's end, the loss never blew up (raise --end)"
    return out


def suggest(
    lrs: list[float], smoothed: list[float], losses: list[float] | None = None
) -> dict[str, float | None]:
    """The four readings of a curve (None where the curve is too short to say):

    - ``steep``: where the smoothed loss falls fastest against log10(lr);
    - ``valley``: the middle of the longest descending stretch, as fast.ai's ``valley``;
    - ``minimum/10``: a tenth of the lr at the lowest smoothed loss;
    - ``largest_stable``: the last lr before the loss, past its lowest point, rises back to
      where it started; read on a centred running median of the raw ``losses`` (the smoothed
      curve when they are not given), against the median of the first five steps.

    Why a centred median for the last one: the moving average lags by tens of steps, and the
    ladder rises ~20% a step, so on full-batch least squares (whose limit is known in closed
    form) reading the smoothed curve overshot the limit by 1.6-2.4x, the median 1.0-1.7x
    (tests/train/test_lr_find.py); unlike the raw loss of one step, it ignores a lone bad batch.
    """
    out: dict[str, float | None] = dict.fromkeys(SUGGESTIONS)
    if len(lrs) < 3:
        return out
    logs = [math.log10(lr) for lr in lrs]
    slopes = [
        (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1])
        for i in range(1, len(lrs) - 1)
    ]
    out["steep"] = lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]
    out["valley"] = lrs[_valley(smoothed)]
    out["minimum/10"] = lrs[min(range(len(lrs)), key=smoothed.__getitem__)] / 10
    out["largest_stable"] = _largest_stable(lrs, losses if losses is not None else smoothed)
    return out


def _largest_stable(lrs: list[float], losses: list[float], half: int = 2) -> float | None:
    centred = [
        statistics.median(losses[max(0, i - half) : i + half + 1]) for i in range(len(losses))
    ]
    start = statistics.median(losses[: 2 * half + 1])
    # The first rise above the start after the lowest point: a network that blew up can
    # come back below the start later, dead (predicting a constant), which is not stability.
    lowest = min(range(len(centred)), key=centred.__getitem__)
    if centred[lowest] >= start:
        return None
    above = next((i for i in range(lowest, len(centred)) if centred[i] >= start), len(centred))
    return lrs[above - 1]


def _valley(losses: list[float]) -> int:
    """fast.ai's valley: the longest decreasing subsequence of the losses, and the point about
    two-thirds of the way down it (``fastai.callback.schedule.valley``)."""
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


@dataclass
class Suggestion:
    """One suggestion over several seeds: its median and spread (max / min)."""

    name: str
    values: list[float | None]  # per seed; None where the seed's curve withheld it
    reasons: list[str | None] = field(default_factory=list)  # why, per seed

    @property
    def withheld(self) -> str | None:
        """Why the suggestion is not shown, when no seed gives it."""
        if self.found:
            return None
        return next((r for r in self.reasons if r), None)

    @property
    def found(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def median(self) -> float | None:
        # On a log scale: the median of the exponents.
        found = self.found
        return 10 ** statistics.median(math.log10(v) for v in found) if found else None

    @property
    def spread(self) -> float | None:
        """max / min over the seeds: 1 when every seed agrees, 10 when they span a decade."""
        found = self.found
        return max(found) / min(found) if found else None


def summarise(curves: list[RangeCurve]) -> list[Suggestion]:
    """Each suggestion over the seeds, as shown: medians and spreads over the values no curve
    withheld (the spread rule reads what the table shows)."""
    return [
        Suggestion(
            name,
            [None if name in c.withheld else c.suggestions.get(name) for c in curves],
            [c.withheld.get(name) for c in curves],
        )
        for name in SUGGESTIONS
    ]


def _cycle(task: Task, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches in a trial's order for ``seed``, epoch after epoch."""
    generator = torch.Generator().manual_seed(seed)
    size = task.settings.config.data.batch_size
    while True:
        yield from batches(task.data.train, size, generator, task.device)


def run_range_test(
    task: Task,
    seeds: int = 1,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
) -> list[RangeCurve]:
    """The range test of ``task``'s model with Adam's defaults (and the values pinned in the
    space), once per seed: the search's seed first, then the fresh seeds of slots 1, 2, ..."""
    params = ADAM_DEFAULTS.with_values(fixed_values(task.settings.config.search.space))
    curves = []
    for slot in range(seeds):
        seed = task.seeds_for(slot)[0]
        model = task.new_model(seed)
        optimizer = make_optimizer(model, params)
        torch.manual_seed(seed)  # dropout masks, as a trial of this seed draws them
        curves.append(
            range_test_model(
                model, optimizer, _cycle(task, seed), task.loss_fn, ladder(start, end, steps)
            )
        )
    return curves
