"""The schedule stage: does decaying the learning rate help Adam on this model, measured."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from adamtune.cli import app
from adamtune.config.schema import load_config
from adamtune.search import SearchOptions, run_search
from adamtune.search.rows import trial_rows
from adamtune.search.selection import incumbent_row
from adamtune.search.space import LR_RETUNE
from adamtune.train.schedules import NO_SCHEDULE

STUDY = """\
name: {name}
seed: 0
data: {{source: digits, batch_size: 64}}
model: {{arch: mlp, hidden: [32]}}
train: {{epochs: 6}}
search:
  trials: {trials}
  batch: 1
  confirm: {{seeds: 1}}
  space:
    lr: {lr}
    schedule: [none, exponential, cosine, step]
  stages:
    - {{params: [lr], trials: 4}}
    - {{params: [schedule]}}
"""


def _best(storage: str, study: str) -> dict[str, Any]:
    """``adamtune best --format json`` of ``study``."""
    result = CliRunner().invoke(
        app, ["best", "--storage", storage, "--study", study, "--format", "json"]
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _run(path: Path, storage: str) -> optuna.Study:
    run = run_search(load_config(path), SearchOptions(storage=storage))
    return optuna.load_study(study_name=run.study, storage=storage)


@pytest.mark.slow
def test_the_stage_records_each_candidate_with_lr_retuned_within_3x(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(STUDY.format(name="sched", trials=14, lr="{low: 1.0e-4, high: 0.1}"))
    study = _run(path, storage_url)
    rows = trial_rows(study)
    before = [r for r in rows if r.stage in ("defaults", "lr") and r.value is not None]
    base = incumbent_row(rows, ["lr"])  # the lr stage's pick, by its model
    incumbent = base.params if base is not None else None
    mine = [r for r in rows if r.stage == "schedule"]
    assert len(mine) == 9 and incumbent is not None
    kinds = {r.params.schedule.kind for r in mine if r.params}
    assert kinds >= {"exponential", "cosine", "step"}
    # each decaying kind is measured first at a typical end, at the incumbent's own lr
    firsts = [r.params for r in mine[:3] if r.params]
    assert [p.schedule.kind for p in firsts] == ["exponential", "cosine", "step"]
    assert all(p.schedule.end == 0.01 and p.lr == incumbent.lr for p in firsts)
    for r in mine:
        assert r.params is not None
        assert incumbent.lr / LR_RETUNE <= r.params.lr <= incumbent.lr * LR_RETUNE * (1 + 1e-12)
        same = r.params.with_values({"lr": incumbent.lr, "schedule": incumbent.schedule})
        assert same == incumbent  # nothing else moves
        # Decay looks worse early and better late: a scheduled trial is never pruned.
        assert r.state != "pruned" or r.params.schedule == NO_SCHEDULE
    # Every trial's schedule is stored with it: reproducible alone, and in the study's params.
    for t in study.trials:
        if t.user_attrs["stage"] == "schedule":
            assert t.user_attrs["adam"]["schedule"]["kind"] == t.params["schedule"]
    listed = json.loads(
        CliRunner()
        .invoke(app, ["trials", str(path), "--storage", storage_url, "--format", "json"])
        .stdout
    )
    assert {r["schedule"]["kind"] for r in listed if r["stage"] == "schedule"} == kinds
    code = (
        CliRunner()
        .invoke(app, ["trials", str(path), "--storage", storage_url, "--format", "torch"])
        .stdout
    )
    assert "lr schedule: cosine to 0.01x" in code
    best = json.loads(
        CliRunner()
        .invoke(app, ["best", str(path), "--storage", storage_url, "--format", "json"])
        .stdout
    )
    decay = best["decay"]
    assert set(decay["per_schedule"]) == kinds | {"none"}  # the incumbent's constant rate too
    assert all(v is not None for v in decay["per_schedule"].values())
    values = [r.value for r in mine + before if r.value is not None]
    assert min(v for v in decay["per_schedule"].values() if v is not None) == min(values)
    assert decay["sentence"].startswith("LR decay: ")
    assert "schedule" in best


@pytest.mark.slow
def test_decay_that_helps_is_adopted_and_printed_as_torch_code(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    # lr pinned too high for this MLP (the stage then leaves it alone): at a constant 0.03 the
    # loss stalls, decaying it settles lower (a warmup alone does not).
    path = write_config(
        STUDY.format(name="hot", trials=12, lr="0.03")
        .replace("    - {params: [lr], trials: 4}\n", "")
        .replace("hidden: [32]", "hidden: [128]")
        .replace("epochs: 6", "epochs: 10")
    )
    runner = CliRunner()
    searched = runner.invoke(app, ["search", str(path), "--storage", storage_url, "--quiet"])
    assert searched.exit_code == 0, searched.output
    best = json.loads(
        runner.invoke(app, ["best", str(path), "--storage", storage_url, "--format", "json"]).stdout
    )
    assert best["params"]["lr"] == 0.03 and best["stage"] == "schedule"
    decay, schedule = best["decay"], best["schedule"]
    assert decay["helped"] and decay["decayed"] < decay["constant"]
    assert schedule["kind"] == decay["schedule"]["kind"] != "none"
    assert schedule["epochs"] == 10 and schedule["step"] == "epoch"
    # compared with the best constant rate, a warmup-then-constant included
    # the model's value of the best constant rate, near the best raw one on slot 0
    assert decay["constant"] == pytest.approx(decay["per_schedule"]["none"], rel=0.1)
    assert f"LR decay: {schedule['kind']} lowered val loss" in searched.stdout
    code = runner.invoke(app, ["best", str(path), "--storage", storage_url, "--format", "torch"])
    assert "torch.optim.lr_scheduler." in code.stdout and "scheduler.step()" in code.stdout
    table = runner.invoke(app, ["best", str(path), "--storage", storage_url]).stdout
    assert decay["sentence"] in table


@pytest.mark.parametrize("bad", ["[none, linear]", "[]"])
def test_unknown_schedules_are_refused(write_config: Callable[..., Path], bad: str) -> None:
    text = STUDY.format(name="bad", trials=6, lr="0.01").replace(
        "[none, exponential, cosine, step]", bad
    )
    result = CliRunner().invoke(app, ["validate", str(write_config(text))])
    assert result.exit_code == 2 and "search.space.schedule" in result.output


@pytest.mark.slow
def test_a_stage_mixing_lr_and_schedule_runs_and_answers(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    text = STUDY.format(name="mixed", trials=8, lr="{low: 1.0e-3, high: 1.0e-2}").replace(
        "    - {params: [lr], trials: 4}\n    - {params: [schedule]}\n",
        "    - {params: [lr, schedule], name: both}\n",
    )
    study = _run(write_config(text), storage_url)
    mine = [t for t in study.trials if t.user_attrs["stage"] == "both"]
    assert len(mine) == 7 and all("lr_factor" not in t.params for t in mine)
    assert all(1e-3 <= t.user_attrs["adam"]["lr"] <= 1e-2 for t in mine)  # lr drawn itself
    best = _best(storage_url, "mixed")
    assert best["decay"] is not None and best["decay"]["sentence"].startswith("LR decay: ")


@pytest.mark.slow
def test_the_retuned_lr_stays_inside_the_users_range(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    text = STUDY.format(name="bounded", trials=14, lr="{low: 1.0e-3, high: 1.0e-2}")
    rows = trial_rows(_run(write_config(text), storage_url))
    assert all(1e-3 <= r.params.lr <= 1e-2 for r in rows if r.params)


@pytest.mark.slow
def test_the_answer_follows_the_stage_that_searched_the_schedule(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    renamed = STUDY.format(name="renamed", trials=8, lr="{low: 1.0e-4, high: 0.1}").replace(
        "    - {params: [schedule]}", "    - {params: [schedule], name: decay}"
    )
    _run(write_config(renamed), storage_url)
    misnamed = (
        STUDY.format(name="misnamed", trials=6, lr="{low: 1.0e-4, high: 0.1}")
        .replace(
            "    - {params: [lr], trials: 4}\n    - {params: [schedule]}\n",
            "    - {params: [lr], name: schedule}\n",
        )
        .replace("[none, exponential, cosine, step]", "[none]")
    )
    _run(write_config(misnamed), storage_url)
    answers = {name: _best(storage_url, name)["decay"] for name in ("renamed", "misnamed")}
    assert answers["renamed"] is not None and answers["misnamed"] is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["none", "cosine"])
def test_one_listed_schedule_is_no_stage_it_pins_the_schedule(
    write_config: Callable[..., Path], storage_url: str, kind: str
) -> None:
    """``[none]`` (the default) leaves the stage out; ``[cosine]`` trains every trial with it."""
    text = (
        STUDY.format(name=f"only-{kind}", trials=5, lr="{low: 1.0e-4, high: 0.1}")
        .replace("[none, exponential, cosine, step]", f"[{kind}]")
        .replace("    - {params: [schedule]}\n", "")
    )
    study = _run(write_config(text), storage_url)
    assert {t.user_attrs["stage"] for t in study.trials} == {"defaults", "lr"}
    assert {t.user_attrs["adam"]["schedule"]["kind"] for t in study.trials} == {kind}
    best = _best(storage_url, f"only-{kind}")
    assert best["decay"] is None
    assert (best["schedule"] or {"kind": "none"})["kind"] == kind
