"""Learning-rate schedules the schedule stage tries, as ``torch.optim.lr_scheduler`` objects.

Whether decay still helps once Adam adapts its step per parameter is an open question (Loshchilov
and Hutter's SGDR and AdamW papers found cosine decay helped Adam; others find a constant rate
enough); the schedule stage answers it per model by measuring. Every schedule is stepped once
per epoch and described by three numbers, so one search space covers all of them:

- ``kind``: ``none`` (constant), ``exponential``, ``cosine`` or ``step``;
- ``end``: the learning rate of the last epoch, as a fraction of the peak (decaying kinds): an
  exponential's ``gamma``, a cosine's floor (``eta_min``) and a step schedule's drop all follow
  from it and the number of epochs; ``step`` drops every third of the run;
- ``warmup``: the share of the run spent in linear warmup (0, or 0.1: a tenth of the epochs,
  at least one), from ``lr / (warmup epochs + 1)`` up to the peak (``LinearLR``, then the schedule,
  joined by ``SequentialLR``).

The schedulers are built from one spec (``spec``), both for training and for the code that
``best --format torch`` prints, so the printed code is what was measured.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from adamtune.config.space import SCHEDULES

if TYPE_CHECKING:
    import torch

DECAYING = SCHEDULES[1:]
END_RANGE = (1e-3, 0.5)  # the last epoch's lr / the peak, searched on a log scale
TYPICAL_END = 0.01  # where each decaying kind is first measured


@dataclass(frozen=True)
class Schedule:
    kind: str = "none"
    end: float = 1.0  # the last epoch's lr as a fraction of the peak; 1 for ``none``
    warmup: float = 0.0  # the share of the epochs spent warming up (0: none)

    @property
    def decays(self) -> bool:
        return self.kind != "none"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Schedule:
        if not data:
            return NO_SCHEDULE
        return cls(str(data["kind"]), float(data.get("end", 1.0)), float(data.get("warmup", 0)))

    def describe(self) -> str:
        """``cosine to 0.01x, warmup 10%``; ``constant`` for none without warmup."""
        text = "constant" if not self.decays else f"{self.kind} to {self.end:.2g}x"
        if self.warmup:
            text += f", warmup {self.warmup:.0%}"
        return text

    def warmup_epochs(self, epochs: int) -> int:
        if not self.warmup or epochs < 2:
            return 0
        return min(max(1, round(self.warmup * epochs)), epochs - 1)


NO_SCHEDULE = Schedule()


WARMUPS = (0.0, 0.1)  # warmup shares the stage tries: none, or a tenth of the run


Spec = tuple[str, dict[str, Any]]  # a scheduler class of torch.optim.lr_scheduler, its kwargs


def spec(schedule: Schedule, lr: float, epochs: int) -> tuple[list[Spec], list[int]]:
    """The schedulers (class name, kwargs) that run ``schedule`` from peak ``lr`` over
    ``epochs`` epochs, and the milestones joining them (``SequentialLR``); empty for none
    without warmup."""
    warmup = schedule.warmup_epochs(epochs)
    decaying = max(epochs - warmup, 1)  # epochs from the peak to the end, the peak included
    steps = max(decaying - 1, 1)  # scheduler steps from the peak to the last epoch
    parts: list[Spec] = []
    if warmup:
        parts.append(
            (
                "LinearLR",
                {"start_factor": 1 / (warmup + 1), "end_factor": 1.0, "total_iters": warmup},
            )
        )
    if schedule.kind == "exponential":
        parts.append(("ExponentialLR", {"gamma": schedule.end ** (1 / steps)}))
    elif schedule.kind == "cosine":
        parts.append(("CosineAnnealingLR", {"T_max": steps, "eta_min": schedule.end * lr}))
    elif schedule.kind == "step":
        # Every third of the run, and never every epoch (that would be an exponential).
        size = max(decaying // 3, 2 if decaying > 2 else 1)
        drops = max(steps // size, 1)
        parts.append(("StepLR", {"step_size": size, "gamma": schedule.end ** (1 / drops)}))
    # none with a warmup: LinearLR alone, which holds the peak once the warmup is over
    return parts, ([warmup] if warmup and len(parts) > 1 else [])


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The scheduler of ``schedule`` on ``optimizer`` (whose lr is the peak); None for a
    constant rate. Call its ``step()`` once after each epoch."""
    from torch.optim import lr_scheduler

    parts, milestones = spec(schedule, optimizer.param_groups[0]["lr"], epochs)
    built = [getattr(lr_scheduler, name)(optimizer, **kwargs) for name, kwargs in parts]
    if not built:
        return None
    if len(built) == 1:
        return built[0]
    return lr_scheduler.SequentialLR(optimizer, built, milestones=milestones)


def lr_sequence(schedule: Schedule, lr: float, epochs: int) -> list[float]:
    """The learning rate of each epoch, as torch's schedulers set it (computed by them, on a
    stand-in optimizer, so a batched trial trains with the very same floats)."""
    if not schedule.decays and not schedule.warmup:
        return [lr] * epochs
    import torch

    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(optimizer, schedule, epochs)
    out = []
    with warnings.catch_warnings():  # stepped without optimizer.step(): nothing to train here
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            out.append(float(optimizer.param_groups[0]["lr"]))
            if scheduler is not None:
                scheduler.step()
    return out


def scheduler_code(schedule: Schedule, lr: float, epochs: int) -> list[str]:
    """Lines of Python that build the scheduler on ``optimizer`` (none for a constant rate)."""
    parts, milestones = spec(schedule, lr, epochs)
    if not parts:
        return []
    calls = [
        f"torch.optim.lr_scheduler.{name}(optimizer, "
        + ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        + ")"
        for name, kwargs in parts
    ]
    note = f"# {schedule.describe()}: call scheduler.step() once after each of the {epochs} epochs"
    if len(calls) == 1:
        return [note, f"scheduler = {calls[0]}"]
    return [
        note,
        "scheduler = torch.optim.lr_scheduler.SequentialLR(",
        "    optimizer,",
        "    [",
        *(f"        {call}," for call in calls),
        "    ],",
        f"    milestones={milestones!r},",
        ")",
    ]
