"""The staged search: stage order, fixed-value semantics, resume, refusal, divergence."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from adamtune.config.schema import load_config
from adamtune.errors import ConfigError, SearchFailedError
from adamtune.insight.results import best_result
from adamtune.search import SearchOptions, run_search
from adamtune.search.plan import BASELINE, make_plan
from adamtune.search.rows import trial_rows
from adamtune.search.winner import study_selection
from adamtune.train.params import ADAM_DEFAULTS, AdamParams

STAGE_ORDER = [BASELINE, "lr", "betas", "eps", "weight_decay", "amsgrad"]
STAGE_PARAMS = {
    "lr": {"lr"},
    "betas": {"beta1", "beta2"},
    "eps": {"eps"},
    "weight_decay": {"weight_decay", "decoupled_weight_decay"},
    "amsgrad": {"amsgrad"},
}


def _search(path: Path, storage: str, **kw: object):
    settings = load_config(path)
    run = run_search(settings, SearchOptions(storage=storage, **kw))  # type: ignore[arg-type]
    study = optuna.load_study(study_name=run.study, storage=storage)
    return run, study


@pytest.mark.slow
def test_trial_zero_is_adams_defaults_and_stages_run_in_order(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    _, study = _search(write_config(trials=12), storage_url)
    rows = trial_rows(study)
    assert len(rows) == 12
    assert rows[0].stage == BASELINE and rows[0].params == ADAM_DEFAULTS
    stages = [r.stage for r in rows]
    # Stages appear as contiguous blocks, in the documented order.
    blocks = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert blocks == STAGE_ORDER
    plan = make_plan(load_config(write_config(trials=12)).config.search, 12)
    assert {s.name: stages.count(s.name) for s in plan} == {s.name: s.trials for s in plan}


@pytest.mark.slow
def test_each_stage_fixes_other_params_at_the_incumbent_and_re_tunes_lr_near_it(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    from adamtune.search.selection import incumbent_row
    from adamtune.search.space import LR_RETUNE

    _, study = _search(write_config(trials=16), storage_url)
    rows = trial_rows(study)
    for i, stage in enumerate(STAGE_ORDER[2:], start=2):
        mine = [r for r in rows if r.stage == stage]
        start = rows.index(mine[0])
        base = incumbent_row(rows[:start], STAGE_ORDER[1:i])
        assert base is not None and base.params is not None
        incumbent = base.params.as_dict()
        for row in mine:
            assert row.params is not None
            for name, value in row.params.as_dict().items():
                if name not in STAGE_PARAMS[stage] | {"lr"}:
                    assert value == incumbent[name], (stage, name)
            assert (
                incumbent["lr"] / LR_RETUNE
                <= row.params.lr
                <= incumbent["lr"] * LR_RETUNE * (1 + 1e-12)
            )
        drawn = {json.dumps(r.params.as_dict(), sort_keys=True) for r in mine if r.params}
        assert len(drawn) == len(mine), "a stage should not repeat a candidate"


@pytest.mark.slow
def test_the_local_stage_moves_lr_betas_and_decay_together_near_the_incumbent(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    from adamtune.search.selection import incumbent_row
    from adamtune.search.space import LR_RETUNE

    path = write_config(trials=60)
    _, study = _search(path, storage_url)
    rows = trial_rows(study)
    stages = [r.stage for r in rows if r.stage not in ("noise", "confirm")]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [
        *STAGE_ORDER,
        "local",
    ]
    plan = make_plan(load_config(path).config.search, 60)
    mine = [r for r in rows if r.stage == "local"]
    assert plan[-1].name == "local" and len(mine) == plan[-1].trials
    base = incumbent_row(rows[: rows.index(mine[0])], STAGE_ORDER[1:])
    assert base is not None and base.params is not None
    b = base.params

    def within(value: float, centre: float) -> bool:
        return centre / LR_RETUNE * (1 - 1e-9) <= value <= centre * LR_RETUNE * (1 + 1e-9)

    moved = []
    for row in mine:
        p = row.params
        assert p is not None
        assert (p.eps, p.amsgrad, p.decoupled_weight_decay) == (
            b.eps,
            b.amsgrad,
            b.decoupled_weight_decay,
        )
        assert within(p.lr, b.lr)
        assert within(1 - p.beta1, 1 - b.beta1) and within(1 - p.beta2, 1 - b.beta2)
        assert within(p.weight_decay, b.weight_decay) if b.weight_decay else p.weight_decay == 0
        moved.append(sum(getattr(p, n) != getattr(b, n) for n in ("lr", "beta1", "beta2")))
    assert max(moved) == 3  # together, not one at a time


@pytest.mark.slow
def test_every_trial_records_its_full_params_and_stage(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    _, study = _search(write_config(trials=10), storage_url)
    for trial in study.trials:
        adam = trial.user_attrs["adam"]
        assert set(adam) == set(ADAM_DEFAULTS.as_dict())
        assert trial.user_attrs["stage"] in STAGE_ORDER
        # Alone, the recorded params rebuild the optimizer.
        AdamParams.from_dict(adam).torch_kwargs()
    lr_trial = next(t for t in study.trials if t.user_attrs["stage"] == "lr")
    assert lr_trial.params["lr"] == lr_trial.user_attrs["adam"]["lr"]
    betas = next(t for t in study.trials if t.user_attrs["stage"] == "betas")
    assert math.isclose(1 - betas.params["one_minus_beta1"], betas.user_attrs["adam"]["beta1"])


@pytest.mark.slow
def test_best_is_the_stages_pick_and_names_its_trial(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    from adamtune.search.selection import incumbent_row

    _, study = _search(write_config(trials=12), storage_url)
    best = best_result(study)
    rows = trial_rows(study)
    assert best.trial == incumbent_row(rows, STAGE_ORDER[1:]).number  # type: ignore[union-attr]
    assert best.value == study.trials[best.trial].value
    assert best.params.as_dict() == study.trials[best.trial].user_attrs["adam"]
    # Optuna's best_trial is the lowest single value, which the model need not pick
    assert study.best_value <= best.value


def test_under_ten_trials_tunes_only_lr(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    _, study = _search(write_config(trials=6), storage_url)
    assert [t.user_attrs["stage"] for t in study.trials] == [BASELINE] + ["lr"] * 5


@pytest.mark.slow
def test_resume_continues_up_to_the_budget_and_reproduces(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(trials=12)
    resumed = f"sqlite:///{tmp_path / 'resumed.db'}"
    first, _ = _search(path, resumed, trials=4)  # the defaults and the lr stage, as at 12
    assert len(first.ran) == 4
    second, study = _search(path, resumed)
    assert len(second.ran) == 8 and len(study.trials) == 12
    third, study = _search(path, resumed)
    assert third.ran == [] and len(study.trials) == 12
    # An uninterrupted run draws exactly the same trials.
    _, straight = _search(path, f"sqlite:///{tmp_path / 'straight.db'}")
    assert [t.user_attrs["adam"] for t in straight.trials] == [
        t.user_attrs["adam"] for t in study.trials
    ]


@pytest.mark.slow
def test_changed_config_is_refused_with_the_difference_unless_fresh(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=4)
    _search(path, storage_url)
    path.write_text(path.read_text().replace("epochs: 3", "epochs: 4"))
    with pytest.raises(ConfigError, match=r"train\.epochs: 3 -> 4.*--fresh"):
        _search(path, storage_url)
    run, study = _search(path, storage_url, fresh=True)
    assert len(run.ran) == 4 and len(study.trials) == 4
    # A larger budget alone is not a change: it extends the study.
    run, study = _search(path, storage_url, trials=6)
    assert len(run.ran) == 2


@pytest.mark.slow
def test_diverged_trial_is_pruned_with_reason_and_never_best(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    text = """\
data: {source: diabetes, batch_size: 32}
model: {arch: mlp, hidden: [16, 16]}
train: {epochs: 4}
search:
  trials: 8
  pruner: none
  space:
    lr: {low: 1.0e+6, high: 1.0e+9}
"""
    _, study = _search(write_config(text, name="blowup"), storage_url)
    diverged = [t for t in study.trials if t.user_attrs.get("status") == "diverged"]
    assert diverged, "lr >= 1e6 on a two-layer MLP regression should diverge"
    for t in diverged:
        assert t.state == TrialState.PRUNED and t.user_attrs["reason"] == "diverged"
        assert t.user_attrs["epochs"] < 4
    assert study.best_trial.user_attrs["status"] == "complete"
    assert study.best_trial.number not in {t.number for t in diverged}


def test_joint_strategy_searches_everything_at_once(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=8)
    path.write_text(path.read_text() + "  strategy: joint\n")
    _, study = _search(path, storage_url)
    assert [t.user_attrs["stage"] for t in study.trials] == [BASELINE] + ["joint"] * 7
    lrs = {t.user_attrs["adam"]["lr"] for t in study.trials[1:]}
    b1s = {t.user_attrs["adam"]["beta1"] for t in study.trials[1:]}
    assert len(lrs) == 7 and len(b1s) == 7


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["random", "qmc", "gp", "cmaes"])
def test_every_sampler_runs_a_staged_search(
    sampler: str, write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=10)
    path.write_text(path.read_text() + f"  sampler: {sampler}\n  pruner: hyperband\n")
    _, study = _search(path, storage_url)
    assert len(study.trials) == 10
    lr_values = [t.user_attrs["adam"]["lr"] for t in study.trials if t.user_attrs["stage"] == "lr"]
    assert len(set(lr_values)) == len(lr_values)


@pytest.mark.slow
def test_fixed_params_are_held_and_their_stages_skipped(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=12)
    path.write_text(
        path.read_text().replace("  space:\n", "  space:\n    beta2: 0.99\n    amsgrad: false\n")
    )
    _, study = _search(path, storage_url)
    stages = {t.user_attrs["stage"] for t in study.trials}
    assert "amsgrad" not in stages
    for t in study.trials[1:]:
        assert t.user_attrs["adam"]["beta2"] == 0.99 and t.user_attrs["adam"]["amsgrad"] is False


def test_timeout_stops_starting_trials(write_config: Callable[..., Path], storage_url: str) -> None:
    settings = load_config(write_config(trials=50))
    ticks = iter(range(100))
    run = run_search(
        settings, SearchOptions(storage=storage_url, timeout=3), clock=lambda: float(next(ticks))
    )
    # The clock reads 0 at the start, then 1, 2 (a trial each), then 3: time is up.
    assert run.stopped_by == "timeout" and len(run.ran) == 2


def test_a_model_that_raises_fails_the_search_with_exit_1(
    write_config: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    (tmp_path / "brokenmodel.py").write_text(
        "import torch\n"
        "class Broken(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.w = torch.nn.Linear(4, 3)\n"
        "    def forward(self, x):\n"
        "        raise RuntimeError('boom')\n"
    )
    path = write_config(
        "data: {source: iris}\nmodel: {arch: 'brokenmodel:Broken'}\n", name="broken"
    )
    with pytest.raises(SearchFailedError, match="boom") as info:
        _search(path, storage_url)
    assert info.value.exit_code == 1


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_resume_completes_the_budget(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    from adamtune.search import SearchObserver

    class StopAtTrial3(SearchObserver):
        def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None:
            if number == 3:
                raise KeyboardInterrupt

    settings = load_config(write_config(trials=8))
    with pytest.raises(KeyboardInterrupt):
        run_search(settings, SearchOptions(storage=storage_url), StopAtTrial3())
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert study.trials[3].user_attrs["status"] == "interrupted"
    run_search(settings, SearchOptions(storage=storage_url))
    finished = [t for t in study.get_trials() if t.state != TrialState.FAIL]
    assert len(finished) == 8  # the interrupted trial does not count toward the budget
    # ... and is drawn again: the finished trials are those of an uninterrupted run.
    straight = f"{storage_url}-straight.db"
    run_search(settings, SearchOptions(storage=straight))
    expected = optuna.load_study(study_name="tiny", storage=straight).trials
    assert [t.user_attrs["adam"] for t in finished] == [t.user_attrs["adam"] for t in expected]


def test_trials_of_a_killed_process_are_failed_on_resume(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    import socket

    from adamtune.search import open_study
    from adamtune.search.workers import fail_orphans

    settings = load_config(write_config(trials=3))
    study = open_study(settings, SearchOptions(storage=storage_url))
    orphan = study.ask()
    orphan.set_user_attr("worker", f"{socket.gethostname()}:999999999")  # no such process
    elsewhere = study.ask()
    elsewhere.set_user_attr("worker", "another-host:1")
    assert fail_orphans(study) == 1
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {orphan.number: TrialState.FAIL, elsewhere.number: TrialState.RUNNING}


@pytest.mark.slow
def test_raising_the_budget_of_a_finished_study_searches_near_the_winner(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=10)
    _search(path, storage_url)
    run, study = _search(path, storage_url, trials=14)
    assert [r.stage for r in run.ran] == ["local"] * 4
    assert len({json.dumps(t.user_attrs["adam"], sort_keys=True) for t in study.trials}) == 14


@pytest.mark.slow
def test_a_raise_after_the_confirmation_confirms_what_it_finds_or_trains_nothing(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    text = write_config(trials=30).read_text().replace("confirm: {seeds: 1}", "confirm: {seeds: 4}")
    path = write_config(text.replace("batch: 1", "batch: 8"), name="confirmed")
    _, study = _search(path, storage_url)
    winner = study_selection(study)[1].winner
    assert winner is not None
    confirmed = {t.user_attrs["confirms"] for t in study.trials if "confirms" in t.user_attrs}
    # raised by 4: one draw near the winner, then one more candidate on the 3 extra slots
    run, study = _search(path, storage_url, trials=34)
    assert [r.stage for r in run.ran] == ["local", "confirm", "confirm", "confirm"]
    draw = study.trials[30]
    assert draw.user_attrs["reopened"] == 1
    lr = AdamParams.from_dict(draw.user_attrs["adam"]).lr
    assert winner.params.lr / 3 <= lr <= winner.params.lr * 3
    new = {t.user_attrs["confirms"] for t in study.trials[31:]}
    assert len(new) == 1 and not new & confirmed  # a candidate not confirmed before
    # raised by 2 more: too few for a draw and its 3 re-runs, so nothing is trained
    run, study = _search(path, storage_url, trials=36)
    assert run.ran == [] and run.stopped_by == "too_few" and len(study.trials) == 34


@pytest.mark.slow
def test_a_joint_study_raised_after_its_confirmation_draws_no_trial_twice(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    text = write_config(trials=30).read_text().replace("confirm: {seeds: 1}", "confirm: {seeds: 4}")
    text = text.replace("search:\n", "search:\n  strategy: joint\n").replace("batch: 1", "batch: 8")
    path = write_config(text, name="joint")
    _search(path, storage_url)
    _, study = _search(path, storage_url, trials=45)
    drawn = [t for t in study.trials if "confirms" not in t.user_attrs]
    assert len(drawn) > 30 and len(study.trials) == 45
    assert len({json.dumps(t.user_attrs["adam"], sort_keys=True) for t in drawn}) == len(drawn)


@pytest.mark.slow
def test_a_stage_of_choices_runs_each_untried_choice_once(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=12)
    path.write_text(
        path.read_text().replace(
            "  space:\n",
            "  space:\n    weight_decay: 0.01\n    decoupled_weight_decay: [false, true]\n",
        )
    )
    _, study = _search(path, storage_url)
    decoupled = [t for t in study.trials if t.user_attrs["stage"] == "weight_decay"]
    # The untried choice, at lrs near the incumbent's (the stage re-tunes lr)
    assert decoupled and all(t.user_attrs["adam"]["decoupled_weight_decay"] for t in decoupled)
    assert len({json.dumps(t.user_attrs["adam"], sort_keys=True) for t in study.trials}) == 12


def test_baseline_applies_pinned_values(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=4)
    path.write_text(
        path.read_text().replace("  space:\n", "  space:\n    beta2: 0.99\n    amsgrad: true\n")
    )
    _, study = _search(path, storage_url)
    baseline = study.trials[0].user_attrs["adam"]
    assert baseline == {**ADAM_DEFAULTS.as_dict(), "beta2": 0.99, "amsgrad": True}


def test_a_failed_baseline_is_rerun_once_the_model_is_fixed(
    write_config: Callable[..., Path],
    storage_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "brokenfwd.py").write_text(
        "import os\n"
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self, in_features, out_features):\n"
        "        super().__init__(); self.l = torch.nn.Linear(in_features, out_features)\n"
        "    def forward(self, x):\n"
        "        if os.environ.get('BREAK'): raise RuntimeError('broken forward')\n"
        "        return self.l(x)\n"
    )
    path = write_config(
        "data: {source: iris}\nmodel: {arch: 'brokenfwd:M'}\n"
        "train: {epochs: 1}\nsearch: {trials: 3}\n",
        name="fixme",
    )
    monkeypatch.setenv("BREAK", "1")
    with pytest.raises(SearchFailedError, match="broken forward"):
        _search(path, storage_url)
    monkeypatch.delenv("BREAK")
    run, study = _search(path, storage_url)
    assert [r.stage for r in run.ran] == ["defaults", "lr", "lr"]
    assert study.trials[0].state == TrialState.FAIL
    assert study.trials[1].user_attrs["stage"] == "defaults"


def test_sqlite_file_is_left_in_its_ordinary_journal_mode(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    import sqlite3

    db = tmp_path / "rest.db"
    _search(write_config(trials=2), f"sqlite:///{db}")
    assert not (tmp_path / "rest.db-wal").exists() and not (tmp_path / "rest.db-shm").exists()
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.slow
def test_hyperband_resume_prunes_as_an_uninterrupted_run(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(trials=12)
    path.write_text(path.read_text().replace("epochs: 3", "epochs: 6") + "  pruner: hyperband\n")
    resumed = f"sqlite:///{tmp_path / 'hb-resumed.db'}"
    settings = load_config(path)
    for stop_after in (4, 3, 2):  # stop cleanly (a fake clock runs out), then resume
        ticks = iter(range(100))
        run_search(
            settings,
            SearchOptions(storage=resumed, timeout=stop_after),
            clock=lambda ticks=ticks: float(next(ticks)),
        )
    _, study = _search(path, resumed)
    _, straight = _search(path, f"sqlite:///{tmp_path / 'hb-straight.db'}")
    assert [(t.state, t.user_attrs["adam"]) for t in study.trials] == [
        (t.state, t.user_attrs["adam"]) for t in straight.trials
    ]


def test_each_epoch_value_is_stored_for_optuna_and_the_pruner(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    _, study = _search(write_config(trials=10), storage_url)
    for t in study.trials:
        curve = t.user_attrs["val_curve"]
        assert sorted(t.intermediate_values) == list(range(len(curve)))
        running_best = [min(curve[: i + 1]) for i in range(len(curve))]
        assert [t.intermediate_values[i] for i in range(len(curve))] == running_best


@pytest.mark.slow
def test_a_trial_costs_a_few_commits_not_one_per_epoch(
    write_config: Callable[..., Path], storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from adamtune.search import workers

    # Liveness writes come with the clock (a heartbeat every 10 s, the roll every 5 s): on a
    # loaded machine a slow search writes more of them. Only the first of each counts here.
    real_sign = workers.Roll.sign

    def first_sign_only(
        self: workers.Roll, now: float | None = None, *, leaving: bool = False
    ) -> None:
        if leaving or self.signed == -math.inf:
            real_sign(self, now, leaving=leaving)

    monkeypatch.setattr(workers.Roll, "sign", first_sign_only)
    monkeypatch.setattr(workers.Heartbeat, "_run", lambda self, interval: self.stop.wait())
    # The winner's record (a user attribute and optuna-dashboard's note: ~9 commits) is
    # written once per search, at its end, not per trial.
    from adamtune.search import run as search_run

    monkeypatch.setattr(search_run, "record_winner", lambda study: None)
    commits = []

    def count(conn: object) -> None:
        commits.append(1)

    event.listen(Engine, "commit", count)
    try:
        text = write_config(trials=10).read_text().replace("epochs: 3", "epochs: 12")
        run, _ = _search(write_config(text, name="long"), storage_url)
    finally:
        event.remove(Engine, "commit", count)
    # ask, parameters (one commit per coordinate: a stage after lr suggests lr_factor too),
    # the records at start and end, the first heartbeat, tell: about 12-15, whatever the
    # epochs (12 here: one per epoch would be over 24).
    assert len(commits) / len(run.ran) <= 16


@pytest.mark.slow
def test_a_worker_waits_for_trials_another_live_worker_runs_unless_taken_over(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    from typer.testing import CliRunner

    from adamtune.cli import app
    from adamtune.search import open_study

    path = write_config(trials=3)
    study = open_study(load_config(path), SearchOptions(storage=storage_url))
    running = study.ask()
    running.set_user_attr("stage", "defaults")
    running.set_user_attr("worker", "another-host:1")  # alive, for all this host can tell
    waited = CliRunner().invoke(
        app, ["search", str(path), "--storage", storage_url, "--timeout", "1.5"]
    )
    # Stopped by the timeout while the other worker trains the first trial: nothing failed.
    assert waited.exit_code == 0, waited.output
    assert "--timeout came before any trial finished (0 run now)" in waited.output
    assert "waiting for Adam's defaults (trial 0): 1 trial running elsewhere" in waited.output
    assert waited.output.count("waiting for") == 1  # said once, not on every look
    fresh = CliRunner().invoke(app, ["search", str(path), "--storage", storage_url, "--fresh"])
    assert fresh.exit_code == 1 and "is being searched by another-host:1" in fresh.output
    assert "--take-over" in fresh.output  # and the study was not deleted:
    assert optuna.load_study(study_name="tiny", storage=storage_url).trials[0].state == (
        TrialState.RUNNING
    )
    taken = CliRunner().invoke(
        app, ["search", str(path), "--storage", storage_url, "--take-over", "-q"]
    )
    assert taken.exit_code == 0, taken.output
    trials = optuna.load_study(study_name="tiny", storage=storage_url).trials
    assert trials[0].state == TrialState.FAIL  # the other worker's trial, drawn again
    assert sum(1 for t in trials if t.state == TrialState.COMPLETE) == 3
