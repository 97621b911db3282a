"""Selection under noise: stages move on a smooth model, one final confirmation judges."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from adamtune.config.schema import load_config
from adamtune.insight.results import best_result
from adamtune.search import SearchOptions, run_search
from adamtune.search.plan import BASELINE
from adamtune.search.rows import TrialRow, trial_rows
from adamtune.search.selection import (
    CONFIRM,
    NOISE,
    bar,
    begun,
    confirm_due,
    final_candidates,
    select,
    stage_pick,
    verdict,
)
from adamtune.train.params import ADAM_DEFAULTS, AdamParams

SEEDS = 4  # the default confirm.seeds
SIGMA = 0.01  # the spread a parameter set's value has around its true level, per seed


class Study:
    """Synthetic trial rows: each seed slot shifts every value alike (init and batch order
    suit every parameter set the same), plus a residual of spread ``SIGMA`` per run."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows: list[TrialRow] = []
        self.slot_shift = [rng.gauss(0, 0.03) for _ in range(SEEDS)]
        self.level: dict[int, float] = {}  # each searched trial's true level

    def value(self, level: float, slot: int) -> float:
        return level + self.slot_shift[slot] + self.rng.gauss(0, SIGMA)

    def add(
        self,
        stage: str,
        params: AdamParams,
        value: float,
        slot: int = 0,
        confirms: int | None = None,
    ) -> TrialRow:
        row = TrialRow(
            len(self.rows), stage, "complete", params, value, 20, slot=slot, confirms=confirms
        )
        self.rows.append(row)
        return row

    def defaults(self, level: float) -> None:
        self.level[self.add(BASELINE, ADAM_DEFAULTS, self.value(level, 0)).number] = level

    def stage(
        self, levels: list[float], lucky: float = 0.0, name: str = "lr", tag: int = 0
    ) -> list[TrialRow]:
        """A stage of trials at true ``levels`` on slot 0, far apart in lr (the model cannot
        pool them); the first is ``lucky`` there (the seed that chose it) and nowhere else."""
        rows = []
        for i, level in enumerate(levels):
            value = self.value(level, 0) - (lucky if i == 0 else 0.0)
            params = AdamParams(lr=1e-3 * 4.0 ** (i - 2), beta1=0.5 + 0.01 * tag)
            rows.append(self.add(name, params, value))
            self.level[rows[-1].number] = level
        return rows

    def confirm(self, stages: list[str], top: int = 3) -> list[TrialRow]:
        """The final confirmation: the candidates and the defaults on every extra slot."""
        picked = final_candidates(self.rows, stages, top)
        for slot in range(1, SEEDS):
            for row in [self.rows[0], *picked]:
                stage = NOISE if row.stage == BASELINE else CONFIRM
                value = self.value(self.level[row.number], slot)
                self.add(stage, row.params, value, slot, row.number)  # type: ignore[arg-type]
        return picked


def test_a_candidate_better_only_by_chance_is_not_claimed() -> None:
    study = Study(random.Random(1))
    study.defaults(0.10)
    # Every lr is as good as the defaults; one drew a seed that flatters it by 5 sigma.
    rows = study.stage([0.10] * 8, lucky=5 * SIGMA)
    assert min(rows, key=lambda r: r.value).number == rows[0].number  # type: ignore[arg-type, return-value]
    study.confirm(["lr"])
    assert verdict(select(study.rows, ["lr"])) != "improved"


def test_a_real_improvement_several_times_the_noise_is_adopted_and_confirmed() -> None:
    study = Study(random.Random(2))
    study.defaults(0.10)
    rows = study.stage([0.10 - 5 * SIGMA, *[0.10] * 7])
    assert select(study.rows, ["lr"], final=False).decisions[0].adopted
    assert study.confirm(["lr"])[0].number == rows[0].number  # the stages' pick comes first
    selection = select(study.rows, ["lr"])
    assert selection.winner is not None and selection.winner.trial == rows[0].number
    assert verdict(selection) == "improved" and selection.overall is not None
    assert len(selection.winner.on(SEEDS).values) == SEEDS - 1  # judged on the fresh slots


@pytest.mark.slow
@pytest.mark.parametrize(("confidence", "chance_at_most"), [(0.8, 0.25), (0.9, 0.15)])
def test_over_many_studies_chance_is_seldom_claimed_and_real_gains_are(
    confidence: float, chance_at_most: float
) -> None:
    rng = random.Random(3)
    chance = real = 0
    for _ in range(200):
        study = Study(rng)
        study.defaults(0.10)
        study.stage([0.10] * 8)  # the best of eight equal trials is only the luckiest
        study.confirm(["lr"])
        chance += verdict(select(study.rows, ["lr"], confidence)) == "improved"
        study = Study(rng)
        study.defaults(0.10)
        study.stage([0.10 - 6 * SIGMA, *[0.10] * 7])
        study.confirm(["lr"])
        real += verdict(select(study.rows, ["lr"], confidence)) == "improved"
    assert chance <= 200 * chance_at_most
    assert real >= 200 * 0.9


def test_a_candidate_whose_re_runs_began_finishes_whatever_a_later_draw_ranks() -> None:
    from adamtune.search.plan import Confirmation

    study = Study(random.Random(3))
    study.defaults(0.10)
    first = study.stage([0.08, 0.10, 0.12])[0]
    study.add(CONFIRM, first.params, 0.08, 1, first.number)  # its re-runs began (slot 1)
    killed = TrialRow(99, CONFIRM, "killed", first.params, None, 3, slot=2, confirms=2)
    assert begun([*study.rows, killed]) == {first.number}  # a killed re-run began nothing
    # a later draw repeats its parameters and looks better: the one that began goes on
    study.add("local", first.params, 0.05)
    due = confirm_due(study.rows, ["lr", "local"], Confirmation(1, 3))
    assert {row.number for row, _ in due} == {0, first.number}
    assert sorted(slot for row, slot in due if row.number == first.number) == [2, 3]


def test_the_seed_shift_shared_by_all_runs_of_a_seed_cancels_in_the_bar() -> None:
    from adamtune.search.selection import Measured

    a = Measured(0, ADAM_DEFAULTS, (0.10, 0.20, 0.30))  # spread 0.1 between seeds...
    b = Measured(1, AdamParams(lr=2e-3), (0.09, 0.19, 0.29))  # ...but 0.01 better on each
    assert bar(None, [a, b]) < 1e-9
    # ...down to a tenth of the defaults' spread: smaller gains are not worth a claim
    assert bar(0.1, [a, b]) == pytest.approx(0.01)
    # with one seed nothing separates the seed from the parameters: the defaults' spread
    assert bar(0.1, [a.on(1), b.on(1)]) == 0.1


def test_without_confirmation_the_stages_last_pick_wins() -> None:
    study = Study(random.Random(4))
    study.defaults(0.10)
    rows = study.stage([0.10 - 5 * SIGMA, *[0.10] * 7])
    selection = select(study.rows, ["lr"])
    assert selection.winner is not None and selection.winner.trial == rows[0].number
    assert selection.overall is None and verdict(selection) == "improved"
    decision = selection.decisions[0]
    assert decision.adopted and not decision.confirmed


def test_a_stage_moves_on_the_model_not_on_one_lucky_value() -> None:
    """Neighbours that agree outweigh one isolated value: a broad good region beats a lone
    point that drew a lucky seed."""
    study = Study(random.Random(8))
    study.defaults(0.10)
    lucky = study.add("lr", AdamParams(lr=3e-5), 0.07)  # alone, among bad neighbours
    for lr in (1e-5, 2e-5, 4e-5, 6e-5):
        study.add("lr", AdamParams(lr=lr), 0.12)
    good = [
        study.add("lr", AdamParams(lr=lr), 0.075 + 0.002 * i)
        for i, lr in enumerate((2e-3, 3e-3, 4e-3, 5e-3))
    ]
    pick = stage_pick(study.rows, "lr", study.rows[0])
    assert pick is not None and pick.moves
    assert pick.best.number in {r.number for r in good} and pick.best is not lucky


def test_the_winner_is_judged_on_fresh_slots_not_the_one_that_chose_it() -> None:
    study = Study(random.Random(5))
    study.defaults(0.10)
    study.stage([0.10] * 6, lucky=0.05)  # far better, on the one seed that chose it
    study.confirm(["lr"])
    assert verdict(select(study.rows, ["lr"])) != "improved"


def test_a_candidate_that_diverged_on_a_fresh_seed_is_never_the_winner() -> None:
    study = Study(random.Random(6))
    study.defaults(0.10)
    row = study.add("lr", AdamParams(lr=2e-3), 0.0)
    study.level[row.number] = 0.0
    for slot in (1, 2, 3):
        study.add(NOISE, ADAM_DEFAULTS, study.value(0.10, slot), slot, 0)
    for slot in (1, 2):
        study.add(CONFIRM, row.params, study.value(0.0, slot), slot, row.number)  # type: ignore[arg-type]
    study.rows.append(
        TrialRow(
            len(study.rows), CONFIRM, "diverged", row.params, None, 2, slot=3, confirms=row.number
        )
    )
    selection = select(study.rows, ["lr"])
    assert selection.winner is not None and selection.winner.params == ADAM_DEFAULTS
    assert verdict(selection) == "kept_defaults"


CONFIRMED = """\
name: confirmed
seed: 0
data: {source: iris, batch_size: 32}
model: {arch: mlp, hidden: [16]}
train: {epochs: 3}
search:
  trials: 30
  batch: 1
"""


@pytest.mark.slow
def test_a_search_confirms_once_at_the_end_and_meets_its_budget(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    settings = load_config(write_config(text=CONFIRMED))
    run_search(settings, SearchOptions(storage=storage_url))
    study = optuna.load_study(study_name="confirmed", storage=storage_url)
    rows = trial_rows(study)
    assert len(rows) == 30
    # 30 trials: one candidate and the defaults on 3 extra slots, last, slot by slot
    assert [(r.stage, r.slot) for r in rows[-6:]] == [
        (NOISE, 1),
        (CONFIRM, 1),
        (NOISE, 2),
        (CONFIRM, 2),
        (NOISE, 3),
        (CONFIRM, 3),
    ]
    assert all(r.confirms is None for r in rows[:-6])
    assert {r.confirms for r in rows if r.stage == NOISE} == {0}
    confirms = [t for t in study.trials if t.user_attrs["stage"] == CONFIRM]
    for t in confirms:
        original = study.trials[t.user_attrs["confirms"]]
        assert t.user_attrs["of"] == CONFIRM  # the confirmation's own budget
        assert t.user_attrs["adam"] == original.user_attrs["adam"]
    # a re-run trains on other seeds: it does not repeat the original's value
    assert all(t.value != study.trials[t.user_attrs["confirms"]].value for t in confirms)
    best = best_result(study).as_dict()
    assert best["noise"]["seeds"] == 4 and best["noise"]["std"] > 0
    assert best["seeds"] == 3 and best["default_seeds"] == 3  # the confirming seeds
    assert best["verdict"] in ("improved", "within_noise", "kept_defaults")
    counted = sum(s["trials"] + s["confirm_runs"] for s in best["stages"])
    assert counted + 1 + 3 == best["n_trials"] == 30  # every trial accounted for
    # the stage whose confirmed pick is the winner says so; the defaults are no stage's
    won = [s for s in best["stages"] if s["won"]]
    if best["trial"] == 0:
        assert won == []
    else:
        assert [s["name"] for s in won] == [best["stage"]]
    json.dumps(best, allow_nan=False)


@pytest.mark.slow
def test_a_search_interrupted_during_confirmation_resumes_as_an_uninterrupted_one(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    from adamtune.search import SearchObserver

    class StopAtFirstConfirmation(SearchObserver):
        stage = ""

        def trial_started(self, number: int, stage: str, params: AdamParams) -> None:
            self.stage = stage

        def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None:
            if self.stage == CONFIRM:
                raise KeyboardInterrupt

    settings = load_config(write_config(text=CONFIRMED))
    with contextlib.suppress(KeyboardInterrupt):
        run_search(settings, SearchOptions(storage=storage_url), StopAtFirstConfirmation())
    run_search(settings, SearchOptions(storage=storage_url))
    straight = f"{storage_url}-straight.db"
    run_search(settings, SearchOptions(storage=straight))

    def finished(url: str) -> list[tuple[object, ...]]:
        study = optuna.load_study(study_name="confirmed", storage=url)
        return [
            (r.stage, r.slot, r.confirms is not None, r.params, r.value)
            for r in trial_rows(study)
            if r.state in ("complete", "pruned", "diverged")
        ]

    assert finished(storage_url) == finished(straight)


@pytest.mark.slow
def test_the_pruner_compares_a_trial_with_its_own_stage_only(
    write_config: Callable[..., Path], storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A noise or confirmation run trains on another seed and split, where the curves sit
    elsewhere: in the pruner's history they pruned every later trial of a study (seen on
    digits: all of betas, eps and weight_decay stopped at epoch 5). Nor do earlier stages'
    trials: a faster learning rate's early losses pruned every trial at the slower one kept."""
    import adamtune.search.trial_runs
    from adamtune.search.pruning import PruneMirror

    mirrors: list[Recording] = []

    class Recording(PruneMirror):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)  # type: ignore[arg-type]
            self.numbers: list[int] = []
            mirrors.append(self)

        def finish(self, twin: optuna.Trial, number: int, *args: object) -> None:
            self.numbers.append(number)
            super().finish(twin, number, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(adamtune.search.trial_runs, "PruneMirror", Recording)
    settings = load_config(write_config(text=CONFIRMED))
    run_search(settings, SearchOptions(storage=storage_url))
    rows = trial_rows(optuna.load_study(study_name="confirmed", storage=storage_url))
    stage = {r.number: r.stage for r in rows}
    reruns = {r.number for r in rows if r.confirms is not None}
    searched = [set(m.numbers) for m in mirrors if set(m.numbers) - reruns]
    assert reruns and set().union(*searched) == set(stage) - reruns
    for numbers in searched:  # one stage each: a stage is pruned against its own trials only
        assert not numbers & reruns and len({stage[n] for n in numbers}) == 1


STAGES = ["lr", "betas", "eps", "weight_decay", "amsgrad"]


@pytest.mark.slow
def test_chance_picks_across_five_stages_do_not_add_up_to_a_claimed_gain() -> None:
    """Every stage's pick and the last incumbent are confirmed together; a gain is claimed only
    when the winner beats the defaults at a confidence that counts every candidate's chance."""
    rng = random.Random(7)
    kept = found = 0
    for _ in range(100):
        study = Study(rng)
        study.defaults(0.10)
        for tag, name in enumerate(STAGES):
            study.stage([0.10] * 8, name=name, tag=tag)
        study.confirm(STAGES)
        kept += verdict(select(study.rows, STAGES)) != "improved"
        study = Study(rng)
        study.defaults(0.10)
        for tag, name in enumerate(STAGES):
            study.stage([0.10 - (6 * SIGMA if tag == 0 else 0.0), *[0.10] * 7], name=name, tag=tag)
        study.confirm(STAGES)
        found += verdict(select(study.rows, STAGES)) == "improved"
    assert kept >= 100 * 0.75
    assert found >= 100 * 0.85


def test_a_study_from_before_confirmation_compares_as_run_without_it() -> None:
    from adamtune.config.schema import Config
    from adamtune.search.study import config_changes, relevant_config

    def current(**search: object) -> dict[str, object]:
        return relevant_config(
            Config.model_validate({"data": {"source": "iris"}, "search": search})
        )

    stored = current()
    del stored["search"]["confirm"]  # type: ignore[attr-defined]
    del stored["data"]["folds"]  # type: ignore[attr-defined]
    del stored["search"]["space"]["lr"]["auto"]  # type: ignore[index]
    assert config_changes(stored, current(confirm={"seeds": 1, "top": 2})) == []
    assert config_changes(stored, current(confirm={"top": 2})) == ["search.confirm.seeds: 1 -> 4"]


def test_a_study_of_the_earlier_search_method_is_not_resumed_by_this_one() -> None:
    from adamtune.config.schema import Config
    from adamtune.search.study import config_changes, relevant_config

    current = relevant_config(Config.model_validate({"data": {"source": "iris"}}))
    stored = json.loads(json.dumps(current))
    del stored["search_method"]  # stored by a version before the method was recorded
    assert "search_method: 1 -> 2" in config_changes(stored, current)
    assert config_changes(current, current) == []
