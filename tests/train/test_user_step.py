"""Your own training function (``train.step``): what it is handed, what ``report`` does
(pruning, divergence, a function that swallows the stop), and a whole staged search with
verify and report on top of it, judged on accuracy and on a custom loss, resumed after Ctrl-C.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pytest
import torch
import torch.nn.functional as F
from optuna.trial import TrialState
from typer.testing import CliRunner

import adamtune
from adamtune.cli import app
from adamtune.config.schema import load_config
from adamtune.task.build import build_task
from adamtune.train.engine import train_trial
from adamtune.train.params import ADAM_DEFAULTS, AdamParams
from adamtune.train.schedules import Schedule
from adamtune.train.user_step import context, train_user_step

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import WriteModule

runner = CliRunner()

# A plain loop with a custom loss (label smoothing) and gradient clipping; it reports either
# the configured metric (``evaluate``) or its own smoothed validation loss.
STEP = """\
import torch
import torch.nn.functional as F


def smoothed(ctx):
    ctx.model.eval()
    total, seen = 0.0, 0
    with torch.no_grad():
        for x, y in ctx.val_loader:
            total += F.cross_entropy(ctx.model(x), y, label_smoothing=0.1).item() * len(x)
            seen += len(x)
    return total / seen


def train(ctx, own_loss=False):
    for epoch in range(ctx.epochs):
        ctx.model.train()
        for x, y in ctx.train_loader:
            x = x + 0.05 * torch.randn_like(x)  # augmentation: drawn from the seed
            loss = F.cross_entropy(ctx.model(x), y, label_smoothing=0.1)
            ctx.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), 1.0)
            ctx.optimizer.step()
        if ctx.scheduler is not None:
            ctx.scheduler.step()
        ctx.report(epoch, smoothed(ctx) if own_loss else ctx.evaluate(), train_loss=loss.item())


def train_own_loss(ctx):
    train(ctx, own_loss=True)
"""


def config(module: str, name: str, metric: str = "", trials: int = 14, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        name: {name}
        data: {{source: iris, batch_size: 32}}
        model: {{arch: mlp, hidden: [16]}}
        train:
          epochs: 4
          device: cpu
          step: "{module}:{"train" if metric else "train_own_loss"}"
        {"  metric: " + metric if metric else ""}
        search:
          trials: {trials}
          confirm: {{seeds: 3, top: 2}}
          space: {{schedule: [none]}}
        {extra}"""
    )


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def trials_of(name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage="sqlite:///adamtune.db").get_trials()


@pytest.mark.slow
def test_a_search_judged_on_accuracy_stores_it_as_the_study_maximises_it(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    path = write_config(
        config(user_module(STEP), "acc", metric="accuracy", trials=30), file="acc.yaml"
    )

    result = invoke("search", str(path))

    assert result.exit_code == 0, result.output
    notice = "trials are trained one at a time: train.step"
    assert result.stderr.count(notice) == 1  # said once, not per round
    study = optuna.load_study(study_name="acc", storage="sqlite:///adamtune.db")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(done) >= 20 and {t.user_attrs["stage"] for t in done} >= {"defaults", "lr"}
    for t in done:  # an accuracy, as the function reported it: its best epoch
        assert 0.0 <= t.value <= 1.0
        assert t.value == max(t.user_attrs["val_curve"])
    assert any(t.user_attrs.get("confirms") is not None for t in done)  # confirmation ran
    pruned = [t for t in study.get_trials() if t.state == TrialState.PRUNED]
    assert pruned and all(len(t.user_attrs["val_curve"]) < 4 for t in pruned)
    best = adamtune.load_best("acc.yaml")
    assert best.maximize and best.metric == "val accuracy"
    assert best.default_value is not None and best.verdict in (
        "improved",
        "within_noise",
        "kept_defaults",
    )
    if best.verdict == "improved":
        assert best.value > best.default_value and best.improvement > 0
    # verify and report run the same function on fresh seeds and read the same direction
    verified = invoke("verify", str(path), "--seeds", "2", "--format", "json")
    assert verified.exit_code == 0, verified.output
    assert invoke("report", str(path)).exit_code == 0 and Path("report.html").exists()
    assert invoke("report", str(path), "--format", "md").exit_code == 0
    assert "best higher than the defaults on" in Path("report.md").read_text()


def test_a_custom_loss_from_the_function_is_what_the_study_minimises_to_the_bit(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module(STEP)
    path = write_config(config(module, "own", trials=8), file="own.yaml")

    assert invoke("search", str(path)).exit_code == 0
    trials = {t.number: t for t in trials_of("own")}

    # The defaults' trial again, by hand: the function's own loss, the same seed's draws.
    task = build_task(load_config(path))
    ctx = context(task, ADAM_DEFAULTS)
    assert task.step is not None
    task.step(ctx)
    values = ctx.values
    assert trials[0].user_attrs["stage"] == "defaults"
    assert trials[0].value == min(values)
    assert trials[0].user_attrs["val_curve"] == values
    assert optuna.load_study(study_name="own", storage="sqlite:///adamtune.db").direction == (
        optuna.study.StudyDirection.MINIMIZE
    )
    best = invoke("best", str(path), "--format", "json")
    assert best.exit_code == 0 and '"metric": "val loss"' in best.output


def test_report_prunes_stops_a_diverged_trial_and_holds_even_when_the_stop_is_swallowed(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module(
        """\
        import sys

        def stubborn(ctx):
            for epoch in range(ctx.epochs):
                try:
                    ctx.report(epoch, 1.0 / (epoch + 1))
                except Exception:
                    pass  # StopTrial is no Exception: it passes

        def swallows(ctx):
            for epoch in range(ctx.epochs):
                try:
                    ctx.report(epoch, 1.0 / (epoch + 1))
                except BaseException:
                    pass  # even swallowed, the stop holds

        def exits(ctx):
            sys.exit(3)

        def too_long(ctx):
            for epoch in range(ctx.epochs + 1):
                ctx.report(epoch, 1.0)

        def ignores_scheduler(ctx):
            for epoch in range(ctx.epochs):
                ctx.report(epoch, 1.0)

        def blows_up(ctx):
            for epoch in range(ctx.epochs):
                ctx.report(epoch, float("nan") if epoch == 1 else 1.0)

        def silent(ctx):
            pass
        """
    )
    path = write_config(
        config(module, "units").replace(f"{module}:train_own_loss", f"{module}:stubborn")
    )
    task = build_task(load_config(path))

    pruned = train_user_step(task, ADAM_DEFAULTS, on_epoch=lambda epoch, value: epoch >= 1)
    assert pruned.status == "pruned" and pruned.epochs == 2 and pruned.value is None

    complete = train_user_step(task, ADAM_DEFAULTS)
    assert complete.status == "complete" and complete.value == pytest.approx(0.25)

    task.step = __import__(module).swallows
    held = train_user_step(task, ADAM_DEFAULTS, on_epoch=lambda epoch, value: epoch >= 1)
    assert held.status == "pruned" and held.epochs == 2

    task.step = __import__(module).exits  # would end the whole search: a failed trial instead
    with pytest.raises(RuntimeError, match=r"called sys.exit\(3\)"):
        train_user_step(task, ADAM_DEFAULTS)

    task.step = __import__(module).too_long
    with pytest.raises(ValueError, match="epoch 4 is past train.epochs"):
        train_user_step(task, ADAM_DEFAULTS)

    task.step = __import__(module).ignores_scheduler  # the schedule stage would compare nothing
    decaying = AdamParams(schedule=Schedule("cosine", 0.01))
    with pytest.raises(RuntimeError, match=r"never stepped ctx.scheduler"):
        train_user_step(task, decaying)
    assert train_user_step(task, ADAM_DEFAULTS).status == "complete"  # no scheduler: fine

    task.step = __import__(module).blows_up
    diverged = train_user_step(task, ADAM_DEFAULTS)
    assert diverged.status == "diverged" and diverged.epochs == 1

    task.step = __import__(module).silent
    with pytest.raises(RuntimeError, match=r"without calling ctx.report\(epoch, value\)"):
        train_user_step(task, ADAM_DEFAULTS)


def test_the_context_holds_the_trials_optimizer_and_the_seeds_batches(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    path = write_config(config(user_module(STEP), "ctx", metric="accuracy"))
    task = build_task(load_config(path))
    params = AdamParams(lr=3e-3, beta1=0.8, weight_decay=1e-3)

    ctx = context(task, params, slot=2)
    group = ctx.optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (3e-3, (0.8, 0.999), 1e-3)
    assert ctx.seed == task.seeds_for(2)[0] and ctx.slot == 2
    first = [y.tolist() for _, y in ctx.train_loader]
    second = [y.tolist() for _, y in ctx.train_loader]
    assert first != second  # a new order every epoch ...
    again = context(task, ADAM_DEFAULTS, slot=2)
    assert [y.tolist() for _, y in again.train_loader] == first  # ... the same for every trial
    assert len(ctx.train_loader) == math.ceil(len(task.runs(2)[0][1].train) / 32)
    # evaluate() states the metric in its own direction
    accuracy = ctx.evaluate()
    assert 0.0 <= accuracy <= 1.0
    outputs = torch.cat([ctx.model(x) for x, _ in ctx.val_loader])
    targets = torch.cat([y for _, y in ctx.val_loader])
    assert accuracy == pytest.approx(float((outputs.argmax(1) == targets).float().mean()))
    assert ctx.params["betas"] == (0.8, 0.999)


def test_ctrl_c_inside_the_function_records_the_trial_and_the_search_resumes_to_its_budget(
    write_config: Callable[..., Path], user_module: WriteModule, tmp_path: Path
) -> None:
    module = user_module(
        STEP
        + textwrap.dedent(
            """\

            import os
            import signal
            from pathlib import Path

            def interrupted_once(ctx):
                calls = Path("calls")
                calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
                if len(calls.read_text()) == 5 and not Path("done").exists():
                    Path("done").touch()
                    ctx.report(0, 0.5)
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of a trial
                train(ctx, own_loss=True)
            """
        )
    )
    text = config(module, "resume", trials=10).replace("train_own_loss", "interrupted_once")
    path = write_config(text)

    first = invoke("search", str(path))

    assert first.exit_code == 130
    assert "run the same command to resume" in first.stderr
    trials = trials_of("resume")
    interrupted = [t for t in trials if t.user_attrs.get("reason") == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0].state == TrialState.FAIL
    kept = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert len(kept) == 4  # every trial finished before Ctrl-C is kept

    again = invoke("search", str(path))

    assert again.exit_code == 0, again.output
    after = trials_of("resume")
    counted = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 10 and kept <= {t.number for t in counted}
    assert invoke("best", str(path)).exit_code == 0


def train_in_this_module(ctx: Any) -> None:
    """A training function handed over from Python (``tune(..., train__step=...)``)."""
    for epoch in range(ctx.epochs):
        ctx.model.train()
        for x, y in ctx.train_loader:
            loss = F.cross_entropy(ctx.model(x), y)
            ctx.optimizer.zero_grad()
            loss.backward()
            ctx.optimizer.step()
        ctx.report(epoch, ctx.evaluate())


def test_the_python_api_takes_the_function_itself() -> None:
    result = adamtune.tune(
        {
            "name": "from-python",
            "data": {"source": "iris", "batch_size": 32},
            "model": {"hidden": [16]},
            "train": {"epochs": 3, "device": "cpu", "metric": "accuracy"},
            "search": {"trials": 6, "confirm": {"seeds": 1}, "space": {"schedule": ["none"]}},
        },
        train__step=train_in_this_module,
    )

    assert result.run.ran and result.best.maximize
    stored = optuna.load_study(study_name="from-python", storage="sqlite:///adamtune.db")
    step = stored.user_attrs["adamtune_config"]["train"]["step"]
    assert step.endswith(":train_in_this_module")
    with pytest.raises(adamtune.api.ConfigError, match="top level of a module"):
        adamtune.tune({"data": {"source": "iris"}}, train__step=lambda ctx: None)


def test_a_batched_search_judged_on_accuracy_matches_trials_trained_alone(
    write_config: Callable[..., Path],
) -> None:
    from adamtune.train.batched import train_batch

    path = write_config(
        "data: {source: iris, batch_size: 32}\nmodel: {hidden: [16]}\n"
        "train: {epochs: 3, device: cpu, metric: accuracy}\n"
    )
    task = build_task(load_config(path))
    params = [ADAM_DEFAULTS, AdamParams(lr=1e-2), AdamParams(lr=3e-2, beta1=0.7)]

    together = train_batch(task, params)
    alone = [train_trial(task, p) for p in params]

    for a, b in zip(together, alone, strict=True):
        assert a.value is not None and b.value is not None
        assert a.value < 0  # adamtune's own values: lower is better, an accuracy negated
        assert a.value == pytest.approx(b.value, abs=1e-6)
        assert a.val_curve == pytest.approx(b.val_curve, abs=1e-6)


def test_a_function_that_cannot_take_the_context_is_refused_before_any_trial(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module(
        """\
        def no_args():
            pass

        def two(ctx, extra):
            pass

        def f1(outputs):
            return 1.0
        """
    )
    for key, value, says in (
        ("step", f"{module}:no_args", "must take (ctx); its signature is ()"),
        ("step", f"{module}:two", "must take (ctx); its signature is (ctx, extra)"),
        ("metric", f"{module}:f1", "must take (outputs, targets)"),
    ):
        direction = ", direction: maximize" if key == "metric" else ""
        path = write_config(f"data: {{source: iris}}\ntrain: {{{key}: '{value}'{direction}}}\n")
        result = invoke("validate", str(path))
        assert result.exit_code == 2, result.output
        assert f"train.{key}: '{value}' {says}" in result.stderr


def test_a_function_from_a_script_warns_that_later_commands_cannot_import_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from adamtune.api import import_path

    def script_level(ctx: Any) -> None: ...

    script_level.__module__ = "__main__"
    script_level.__qualname__ = "script_level"
    assert import_path(script_level) == "__main__:script_level"
    assert "commands run later (adamtune verify" in caplog.text


def test_a_trial_that_reached_its_last_epoch_is_never_pruned(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    """Stopping after the last epoch saves nothing: a trial that ran them all is complete,
    even where the pruner would call its last value bad."""
    module = user_module(
        """\
        import math

        def worse_at_the_end(ctx):
            bad = abs(math.log10(ctx.params["lr"]) + 3)  # 0 for Adam's default lr
            for epoch in range(ctx.epochs):
                ctx.report(epoch, bad if epoch == ctx.epochs - 1 else 5.0)
        """
    )
    text = config(module, "last", trials=16, extra="  stages: [{params: [lr]}]\n")
    text = text.replace("train_own_loss", "worse_at_the_end")
    path = write_config(text.replace("  epochs: 4", "  epochs: 4\n  objective: last"))

    assert invoke("search", str(path)).exit_code == 0
    trials = trials_of("last")
    assert len(trials) == 16
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(len(t.user_attrs["val_curve"]) == 4 for t in trials)
