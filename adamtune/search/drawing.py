"""Drawing a trial's parameters for its stage.

Each stage's parameters are drawn by a sampler that sees only that stage's history (plus the
incumbent it started from, in the stage's coordinates): earlier stages ran under other fixed
values, so their points would mislead it. The history is rebuilt for every draw and the
sampler seeded by the draw's position in the stage, so a resumed search draws exactly what an
uninterrupted one would, and any sampler (TPE, GP, CMA-ES, QMC, random) sees a fixed space.
"""

from __future__ import annotations

import itertools
import json
import zlib
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from adamtune.config.schema import Config
from adamtune.search.plan import REFINE, Stage
from adamtune.search.rows import loss_of, losses_of
from adamtune.search.samplers import in_memory_study, make_sampler
from adamtune.search.space import LR_FACTOR, coordinates, encode, suggest
from adamtune.search.study import counts_toward_budget, stage_of
from adamtune.train.params import AdamParams
from adamtune.train.schedules import DECAYING, TYPICAL_END

_REDRAWS = 5


def is_joint(config: Config, stage_name: str) -> bool:
    """Whether a stage searches everything at once (weight decay then has an off switch)."""
    return config.search.strategy == "joint" or stage_name == REFINE


class StageSampler:
    """``batched``: trials are drawn several at a time, before any of them has a value. The
    draws of a batch are added to the sampler's history as running trials (TPE's constant
    liar steers away from them), and while a stage has fewer finished trials than its sampler's
    start-up count its draws come from a scrambled Sobol sequence: a batch of independent
    random draws clusters, a quasi-random one covers the range (benchmarks/README.md).
    """

    def __init__(self, config: Config, *, batched: bool = False) -> None:
        self.config = config
        self.space = config.search.space
        self.batched = batched
        # The task's data and model move the seed of every stage's sampler: one fixed
        # quasi-random sequence for every task would pick the same lrs everywhere. A data
        # file counts by its name, not its folder: the same study run from another folder
        # (a fresh clone, a temporary directory) draws the same trials.
        data = config.data.model_dump(mode="json")
        if str(data["source"]).endswith((".csv", ".npz")):
            data["source"] = Path(data["source"]).name
        task = json.dumps([data, config.model.model_dump(mode="json")], sort_keys=True)
        self.seed = (config.seed * 1_000_003 + zlib.crc32(task.encode())) % 2**30

    def draw(
        self,
        stage: Stage,
        stage_index: int,
        trials: list[FrozenTrial],
        incumbent: AdamParams,
        incumbent_trial: FrozenTrial | None,
        pending: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Values for ``stage.params`` from a sampler that sees this stage's history only;
        ``pending`` are the draws of the batch being assembled."""
        pending = pending or []
        names, joint = list(stage.params), is_joint(self.config, stage.name)
        # Only trials that count: an interrupted trial is drawn again, as if never started.
        history = [t for t in trials if stage_of(t) == stage.name and counts_toward_budget(t)]
        untried = self._untried_choices(names, history + pending, incumbent, joint)
        if untried is None and names == ["schedule"] and not joint:
            untried = self._untried_schedule(names, history + pending, joint)
        if untried is not None:
            return untried
        # A stage of choices that also re-tunes lr (amsgrad) draws each untried choice in
        # turn, and only the lr from the sampler: a draw at the incumbent's choice would only
        # re-tune lr, which the stage is not for.
        fixed = self._untried_with_lr(names, history + pending, incumbent, joint)
        drawn = [LR_FACTOR] if fixed else names
        startup = max(2, min(10, stage.trials // 3))
        name = self.config.search.sampler
        if self.batched and name != "random" and len(history) < startup:
            name = "qmc"
        sampler = make_sampler(
            name,
            seed=self.seed + stage_index * 10_007,
            position=len(history) + len(pending),
            startup=startup,
            joint=joint,
        )
        shadow = in_memory_study(sampler=sampler)
        anchors = [incumbent_trial] if incumbent_trial is not None else []
        dists = self._distributions(names, joint)
        for t in anchors + history:
            copy = self._shadow_trial(t, names, incumbent if t in anchors else None, joint)
            # An incumbent outside some coordinate (no weight decay, in the weight decay
            # stage) would shrink the samplers' joint space to the coordinates it has: the
            # others would then be drawn independently, QMC's alike in every draw.
            if copy is not None and (t not in anchors or set(copy.params) == set(dists)):
                shadow.add_trial(copy)
        for coords in pending:
            shadow.add_trial(self._pending_trial(coords, names, joint))
        # Trials are deterministic (common random numbers), so a point already measured (or
        # one that lands on it once lr is clipped to its range) teaches nothing: ask again
        # (the unanswered ask stays running, steering constant-liar TPE).
        seen = [self._params(dict(t.params), names, incumbent, joint) for t in history]
        seen += [self._params(c, names, incumbent, joint) for c in pending] + [incumbent]
        for _ in range(_REDRAWS):
            trial = shadow.ask()
            suggest(trial, drawn, self.space, with_zero=joint)
            coords = {**(fixed or {}), **trial.params}
            if self._params(coords, names, incumbent, joint) not in seen:
                break
        return coords

    def _params(
        self, coords: dict[str, Any], names: list[str], base: AdamParams, joint: bool
    ) -> AdamParams:
        """The parameter set a draw's coordinates make on top of ``base``."""
        drawn = suggest(
            optuna.trial.FixedTrial(coords), names, self.space, with_zero=joint, base=base
        )
        return base.with_values(drawn)

    def _other_choices(
        self, names: list[str], incumbent: AdamParams, joint: bool
    ) -> list[dict[str, Any]] | None:
        """Every combination of ``names`` other than the incumbent's, when all of them are
        choices; None when one is continuous."""
        dists = self._distributions(names, joint)
        if not names or not all(isinstance(d, CategoricalDistribution) for d in dists.values()):
            return None
        own = {k: v for k, (v, _) in encode(incumbent, names, self.space).items()}
        combos = itertools.product(*(d.choices for d in dists.values()))  # type: ignore[attr-defined]
        return [c for c in (dict(zip(dists, combo, strict=True)) for combo in combos) if c != own]

    def _untried_with_lr(
        self,
        names: list[str],
        history: list[FrozenTrial | dict[str, Any]],
        incumbent: AdamParams,
        joint: bool,
    ) -> dict[str, Any] | None:
        """For a stage of choices that also re-tunes lr, the combination whose turn it is (the
        one tried least so far, the first of those); None for other stages."""
        if LR_FACTOR not in names:
            return None
        untried = self._other_choices([n for n in names if n != LR_FACTOR], incumbent, joint)
        if not untried:
            return None
        seen = [dict(t if isinstance(t, dict) else t.params) for t in history]
        tries = [sum(all(s.get(k) == v for k, v in c.items()) for s in seen) for c in untried]
        return untried[tries.index(min(tries))]

    def _untried_choices(
        self,
        names: list[str],
        history: list[FrozenTrial | dict[str, Any]],
        incumbent: AdamParams,
        joint: bool,
    ) -> dict[str, Any] | None:
        """For a stage of choices only (amsgrad), the first combination neither the incumbent
        nor an earlier trial of the stage has tried: sampling could repeat one, wasting a trial."""
        seen = [dict(t if isinstance(t, dict) else t.params) for t in history]
        untried = self._other_choices(names, incumbent, joint) or []
        return next((c for c in untried if c not in seen), None)

    def _untried_schedule(
        self, names: list[str], history: list[FrozenTrial | dict[str, Any]], joint: bool
    ) -> dict[str, Any] | None:
        """A schedule stage first measures every listed decaying kind once, at a typical end
        (a hundredth of the peak), no warmup and the incumbent's own lr (the constant rate is
        the incumbent): each candidate then has a value, whatever the sampler does next."""
        tried = {(t if isinstance(t, dict) else t.params).get("schedule") for t in history}
        dists = self._distributions(names, joint)
        for kind in self.space.schedule:
            if kind in DECAYING and kind not in tried:
                typical = {"schedule": kind, "schedule_end": TYPICAL_END, "warmup": 0.0}
                typical["lr_factor"] = 1.0
                return {k: v for k, v in typical.items() if k in dists}
        return None

    def _distributions(self, names: list[str], joint: bool) -> dict[str, BaseDistribution]:
        """The stage's coordinates, by Optuna parameter name."""
        dists: dict[str, BaseDistribution] = {}
        for param in names:
            dists.update(coordinates(param, self.space, with_zero=joint, beside=names))
        return dists

    def _pending_trial(self, coords: dict[str, Any], names: list[str], joint: bool) -> FrozenTrial:
        dists = self._distributions(names, joint)
        return optuna.trial.create_trial(
            params=coords,
            distributions={k: dists[k] for k in coords},
            state=TrialState.RUNNING,
        )

    def _shadow_trial(
        self, t: FrozenTrial, names: list[str], as_params: AdamParams | None, joint: bool
    ) -> FrozenTrial | None:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            return None
        if as_params is not None:  # the incumbent, seen in this stage's coordinates
            coords = encode(as_params, names, self.space, with_zero=joint)
        else:
            coords = {k: (t.params[k], t.distributions[k]) for k in t.params}
        if not coords:
            return None
        return optuna.trial.create_trial(
            params={k: v for k, (v, _) in coords.items()},
            distributions={k: d for k, (_, d) in coords.items()},
            value=loss_of(t),
            intermediate_values=losses_of(t),
            state=t.state,
        )
