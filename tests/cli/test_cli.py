"""The command line, run in-process (CliRunner) and once as the installed program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from adamtune.cli import app

runner = CliRunner()
COMMANDS = ["search", "best", "trials", "lr-find", "validate", "init"]


def invoke(*args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    return runner.invoke(app, list(args), env=env)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example: adamtune" in result.stdout


@pytest.mark.slow
def test_search_then_best_end_to_end(write_config: Callable[..., Path]) -> None:
    path = write_config(trials=10)
    result = invoke("search", str(path), "--quiet")
    assert result.exit_code == 0, result.output
    assert "trial 0 [defaults] complete" in result.stderr
    assert "torch CPU threads: 1\n" in result.stderr  # conftest pins ADAMTUNE_THREADS=1
    assert "vs Adam's defaults" in result.stdout
    assert Path("adamtune.db").exists()  # the default storage, in the working directory

    best = json.loads(invoke("best", "--format", "json").stdout)
    for key in (
        "study",
        "value",
        "trial",
        "stage",
        "params",
        "schedule",
        "default_value",
        "n_trials",
    ):
        assert key in best
    assert best["study"] == "tiny" and best["n_trials"] == 10 and best["schedule"] is None
    assert best["value"] <= best["default_value"]
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), **best["params"])
    group = optimizer.param_groups[0]
    assert group["lr"] == best["params"]["lr"] and list(group["betas"]) == best["params"]["betas"]

    code = invoke("best", "--format", "torch").stdout
    scope: dict[str, object] = {"torch": torch, "model": model}
    exec(code, scope)
    pasted = scope["optimizer"].param_groups[0]  # type: ignore[attr-defined]
    assert pasted["lr"] == best["params"]["lr"] and pasted["eps"] == best["params"]["eps"]

    as_yaml = yaml.safe_load(invoke("best", "tiny.yaml", "--format", "yaml").stdout)
    assert as_yaml["value"] == best["value"]
    table = invoke("best")
    assert table.exit_code == 0 and "weight_decay" in table.stdout


@pytest.mark.slow
def test_trials_lists_defaults_then_stages_in_order(write_config: Callable[..., Path]) -> None:
    path = write_config(trials=12)
    assert invoke("search", str(path), "-q").exit_code == 0
    rows = json.loads(invoke("trials", str(path), "--format", "json").stdout)
    assert rows[0]["stage"] == "defaults" and rows[0]["params"]["lr"] == 1e-3
    order = [r["stage"] for i, r in enumerate(rows) if i == 0 or rows[i - 1]["stage"] != r["stage"]]
    assert order == ["defaults", "lr", "betas", "eps", "weight_decay", "amsgrad"]
    table = invoke("trials", str(path)).stdout
    assert "defaults" in table and "amsgrad" in table


BAD = [
    (
        "misspelt key",
        "data: {source: iris}\ntrain:\n  epoch: 3\n",
        ":3: train.epoch: unknown key (did you mean 'epochs'?)",
    ),
    (
        "beta1 >= 1",
        "data: {source: iris}\nsearch:\n  space:\n    beta1: 1.5\n",
        ":4: search.space.beta1: must be >= 0 and < 1 (got 1.5)",
    ),
    (
        "lr from 0",
        "data: {source: iris}\nsearch:\n  space:\n    lr: {low: 0, high: 0.1}\n",
        ":4: search.space.lr.low: must be > 0 on a log scale (got 0)",
    ),
    ("missing csv", "data: {source: nothere.csv, target: y}\n", ":1: data.source: file not found"),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("command", ["search", "validate"])
def test_bad_config_exits_2_with_file_line_and_key(
    command: str, case: str, text: str, expected: str, write_config: Callable[..., Path]
) -> None:
    path = write_config(text, name="bad")
    result = invoke(command, str(path))
    assert result.exit_code == 2
    assert f"error: {path}{expected}" in result.stderr
    assert "Traceback" not in result.output
    assert not Path("adamtune.db").exists()


def test_validate_accepts_every_bundled_config() -> None:
    root = Path(__file__).resolve().parents[2]
    configs = sorted((root / "configs").glob("*.yaml")) + [
        root / "examples" / "custom-model" / "config.yaml"
    ]
    assert len(configs) >= 5
    for config in configs:
        result = invoke("validate", str(config))
        assert result.exit_code == 0, result.output
        assert "valid" in result.stdout


def test_init_writes_a_starter_config_that_validates() -> None:
    assert invoke("init", "starter.yaml").exit_code == 0
    text = Path("starter.yaml").read_text()
    assert text.count("#") > 20  # commented
    assert invoke("validate", "starter.yaml").exit_code == 0
    again = invoke("init", "starter.yaml")
    assert again.exit_code == 2 and "--force" in again.stderr


def test_read_commands_on_a_missing_storage_exit_2_and_create_nothing() -> None:
    for command in ("best", "trials"):
        result = invoke(command)
        assert result.exit_code == 2 and "no study found" in result.stderr
    assert not Path("adamtune.db").exists()


def test_best_of_an_unknown_study_names_the_ones_there(write_config: Callable[..., Path]) -> None:
    assert invoke("search", str(write_config(trials=2)), "-q").exit_code == 0
    result = invoke("best", "--study", "nope")
    assert result.exit_code == 2 and "studies there: tiny" in result.stderr


def test_unknown_format_is_a_usage_error() -> None:
    result = invoke("best", "--format", "xml")
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [("nonsense", "expected a database URL"), ("sqlite://", "would lose the study")],
)
def test_bad_storage_url_exits_2(write_config: Callable[..., Path], url: str, message: str) -> None:
    result = invoke("search", str(write_config()), "--storage", url)
    assert result.exit_code == 2 and message in result.stderr


def test_storage_password_never_shown(write_config: Callable[..., Path]) -> None:
    url = "postgresql://tuner:hunter2@127.0.0.1:9/studies"
    result = invoke("search", str(write_config()), "--storage", url)
    assert result.exit_code in (1, 2)
    assert "hunter2" not in result.output and "tuner:***@" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_device_cuda_without_a_gpu_exits_2(write_config: Callable[..., Path]) -> None:
    result = invoke("search", str(write_config()), "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU" in result.stderr
    assert not Path("adamtune.db").exists()


def test_debug_shows_the_traceback_and_keeps_the_exit_code(
    write_config: Callable[..., Path],
) -> None:
    result = invoke("validate", str(write_config("data: {source: nothere.csv}\n")), "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr


def _program(name: str) -> str:
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed as a program")
    return found


@pytest.mark.slow
def test_installed_program_and_optuna_agree(write_config: Callable[..., Path]) -> None:
    path = write_config(trials=3)
    adamtune = _program("adamtune")
    run = subprocess.run(
        [adamtune, "search", str(path)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "trial 2 [lr]" in run.stderr  # not a terminal: plain lines
    best = json.loads(
        subprocess.run(
            [adamtune, "best", "--format", "json"], capture_output=True, text=True, check=True
        ).stdout
    )
    optuna_cli = subprocess.run(
        [
            _program("optuna"),
            "best-trial",
            "--study-name",
            "tiny",
            "--storage",
            "sqlite:///adamtune.db",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(optuna_cli.stdout)["value"] == pytest.approx(best["value"], rel=1e-12)
    module = subprocess.run(
        [sys.executable, "-m", "adamtune", "--version"], capture_output=True, text=True, check=True
    )
    assert module.stdout.startswith("adamtune ")


@pytest.mark.slow
def test_best_without_arguments_reads_the_most_recently_updated_study(
    write_config: Callable[..., Path],
) -> None:
    assert invoke("search", str(write_config(name="first", trials=2)), "-q").exit_code == 0
    assert invoke("search", str(write_config(name="second", trials=2)), "-q").exit_code == 0
    assert json.loads(invoke("best", "-f", "json").stdout)["study"] == "second"
    assert invoke("search", str(write_config(name="first", trials=3)), "-q").exit_code == 0
    assert json.loads(invoke("best", "-f", "json").stdout)["study"] == "first"


def test_trials_as_torch_code_builds_every_optimizer(write_config: Callable[..., Path]) -> None:
    assert invoke("search", str(write_config(trials=4)), "-q").exit_code == 0
    scope: dict[str, object] = {}
    exec(invoke("trials", "--format", "torch").stdout, scope)
    table = scope["ADAM_PARAMS"]
    assert isinstance(table, dict) and sorted(table) == [0, 1, 2, 3]
    torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), **table[3])


@pytest.mark.parametrize("stem", ["2024", "true", "my-study"])
def test_init_names_the_study_after_any_file_name(stem: str) -> None:
    assert invoke("init", f"{stem}.yaml").exit_code == 0
    result = invoke("validate", f"{stem}.yaml")
    assert result.exit_code == 0 and f"study {stem}:" in result.stdout


def test_non_positive_timeout_is_refused(write_config: Callable[..., Path]) -> None:
    result = invoke("search", str(write_config()), "--timeout", "0")
    assert result.exit_code == 2 and "--timeout: must be a number of seconds > 0" in result.stderr
    assert not Path("adamtune.db").exists()


def test_user_text_is_printed_literally(write_config: Callable[..., Path]) -> None:
    result = invoke("search", str(write_config(trials=2)), "--study", "run [x]", "-q")
    assert result.exit_code == 0 and "study run [x]:" in result.stdout
    assert "run [x]" in invoke("trials", "--study", "run [x]").stdout


NOTHING_TO_GAIN = """\
name: flat
data: {source: iris, batch_size: 32}
model: {arch: mlp, hidden: [16]}
train: {epochs: 3}
search:
  trials: 30
  batch: 1
  space:  # lr within 1% of Adam's default, everything else pinned: nothing real to gain
    lr: {low: 0.00099, high: 0.00101}
    beta1: 0.9
    beta2: 0.999
    eps: 1.0e-8
    weight_decay: 0
    amsgrad: false
    schedule: none
"""


@pytest.mark.slow
def test_best_says_plainly_when_the_defaults_are_within_noise(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(NOTHING_TO_GAIN, file="flat.yaml")
    searched = invoke("search", str(path), "--quiet")
    assert searched.exit_code == 0, searched.output
    assert "Adam's defaults are within noise of the best found: keep them" in searched.stdout
    assert "noise: ±" in searched.stdout and "across 4 seeds" in searched.stdout
    best = json.loads(invoke("best", str(path), "--format", "json").stdout)
    # Whatever won on the fresh seeds, it was not established: the defaults are as good
    assert best["verdict"] in ("kept_defaults", "within_noise")
    assert 0.00099 <= best["params"]["lr"] <= 0.00101
    assert best["seeds"] == best["default_seeds"] == 3 and best["noise"]["seeds"] == 4
    table = invoke("best", str(path)).stdout
    assert "noise: ±" in table and "Adam's defaults are within noise" in table
    rows = json.loads(invoke("trials", str(path), "--format", "json").stdout)
    assert rows[0]["stage"] == "defaults"
    assert [r["stage"] for r in rows if r["stage"] == "noise"] == ["noise"] * 3
    assert any(r["stage"] == "confirm" and r["confirms"] is not None for r in rows)
    assert "noise #0 seed 1" in invoke("trials", str(path)).stdout


@pytest.mark.parametrize(
    ("verdict", "stage", "says"),
    [
        ("improved", "betas", "best val loss 0.0764 ± 0.014 over 3 seeds (trial 32, stage betas)"),
        (
            "within_noise",
            "betas",
            "Adam's defaults are within noise of the best found: keep them, "
            "or confirm it with more seeds",
        ),
        (
            "kept_defaults",
            "defaults",
            "Adam's defaults are within noise of the best found: keep "
            "them (val loss 0.0808 ± 0.012 over 3 seeds)",
        ),
    ],
)
def test_the_answer_line_of_each_verdict(verdict: str, stage: str, says: str) -> None:
    from adamtune.cli.render import gain_line
    from adamtune.insight.results import BestResult
    from adamtune.train.params import AdamParams

    best = BestResult(
        study="s",
        value=0.0764 if stage != "defaults" else 0.0808,
        trial=32,
        stage=stage,
        params=AdamParams(beta1=0.68),
        default_value=0.0808,
        n_trials=60,
        stages=[],
        value_std=0.014 if stage != "defaults" else 0.012,
        seeds=3,
        default_std=0.012,
        default_seeds=3,
        noise=0.021,
        noise_seeds=4,
        verdict=verdict,
        overall_bar=0.006,
    )
    line = gain_line(best)
    assert says in line
    if verdict == "within_noise":
        assert "an established gain needs 0.006" in line and "-5.4%" in line
    assert json.loads(json.dumps(best.as_dict()))["verdict"] == verdict


def test_help_does_not_import_torch() -> None:
    """--help stays fast: torch (about 1 s to import) loads inside the commands only."""
    probe = "import sys, adamtune.cli; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.slow
def test_trials_sorts_and_filters_in_every_format(write_config: Callable[..., Path]) -> None:
    path = write_config(trials=8)
    assert invoke("search", str(path), "-q").exit_code == 0
    every = json.loads(invoke("trials", str(path), "--format", "json").stdout)
    rows = json.loads(
        invoke(
            "trials", str(path), "--sort", "value", "--state", "complete", "--format", "json"
        ).stdout
    )
    values = [r["value"] for r in rows]
    assert values == sorted(values) and {r["state"] for r in rows} == {"complete"}
    assert len(rows) == sum(1 for r in every if r["state"] == "complete")
    lr = json.loads(
        invoke(
            "trials", str(path), "--stage", "lr", "--stage", "defaults", "--format", "json"
        ).stdout
    )
    assert {r["stage"] for r in lr} == {"lr", "defaults"}
    table = invoke("trials", str(path), "--stage", "lr").stdout
    assert f"{sum(1 for r in every if r['stage'] == 'lr')} of {len(every)} trials" in table
    torch_code = invoke("trials", str(path), "--stage", "defaults", "--format", "torch").stdout
    assert "    0: dict(" in torch_code and "    1: dict(" not in torch_code
    for bad, says in [
        (["--stage", "nope"], "no trial of stage 'nope'"),
        (["--state", "done"], "expected one of complete"),
        (["--sort", "lr"], "--sort: expected one of number, value, stage"),
    ]:
        result = invoke("trials", str(path), *bad)
        assert result.exit_code == 2 and says in result.output


@pytest.mark.slow
def test_a_reader_that_goes_away_ends_the_command_quietly(
    write_config: Callable[..., Path],
) -> None:
    # ``adamtune best | head``: a closed pipe is no error, as for other command-line tools.
    path = write_config(trials=3)
    adamtune = _program("adamtune")
    subprocess.run([adamtune, "search", str(path), "--quiet"], capture_output=True, check=True)
    for args in (["best"], ["best", "--format", "torch"], ["trials", "--format", "json"]):
        run = subprocess.Popen(
            [adamtune, *args, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert run.stdout is not None and run.stderr is not None
        run.stdout.close()
        assert (run.wait(timeout=120), run.stderr.read().decode()) == (0, ""), args


@pytest.mark.parametrize(
    "command", ["search", "best", "trials", "lr-find", "report", "verify", "check", "validate"]
)
def test_help_shows_no_placeholder_for_flags_and_only_formats_a_command_takes(
    command: str,
) -> None:
    text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    assert "<bool>" not in text
    if command in ("verify", "lr-find"):
        line = next(x for x in text.splitlines() if "--format" in x)
        assert "<table|json>" in line and "torch" not in line and "yaml" not in line


def test_what_the_quickstart_leaves_is_ignored_by_git() -> None:
    root = Path(__file__).resolve().parents[2]
    ignored = (root / ".gitignore").read_text().split()
    for left in ("*.db", "*.db.lock", "report.html", "report_files/", "lr-find.png"):
        assert left in ignored


def test_lr_find_takes_threads_as_search_does(write_config: Callable[..., Path]) -> None:
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(
            app,
            ["lr-find", str(write_config()), "--steps", "5", "--threads", "2", "-f", "json"],
        )
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_fresh_says_what_it_deletes(write_config: Callable[..., Path]) -> None:
    path = str(write_config(trials=3))
    assert CliRunner().invoke(app, ["search", path, "--quiet"]).exit_code == 0
    again = CliRunner().invoke(app, ["search", path, "--quiet", "--fresh"])
    assert again.exit_code == 0, again.output
    assert "--fresh: deleted study tiny (3 trials) from sqlite:///adamtune.db" in again.stderr


def test_the_batch_line_states_the_widest_round_not_the_batch_size() -> None:
    from adamtune.cli.progress import batch_line
    from adamtune.search.events import SearchStart
    from adamtune.search.plan import Confirmation, Stage

    plan = [Stage("lr", ("lr",), 3), Stage("betas", ("beta1", "beta2"), 4)]
    start = SearchStart("s", "x", "t", plan, 12, 0, batch=32, confirm=Confirmation(1, 2))
    assert batch_line(start) == "up to 4 trials trained together per batch (--batch 32)"


def test_validate_trains_the_model_on_one_batch(
    write_config: Callable[..., Path], user_module: Callable[[str], str]
) -> None:
    # A model for 3 inputs on iris' 4: valid keys, but it cannot train. validate says so in
    # one line with exit 2, instead of the search failing on trial 0.
    name = user_module(
        """
        from torch import nn

        def Net():
            return nn.Sequential(nn.Linear(3, 3))
        """
    )
    text = f"data: {{source: iris}}\nmodel: {{arch: '{name}:Net'}}\ntrain: {{device: cpu}}\n"
    result = CliRunner().invoke(app, ["validate", str(write_config(text))])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.arch: cannot train on this data's first batch" in lines[0]
    good = CliRunner().invoke(app, ["validate", str(write_config())])
    assert good.exit_code == 0 and "(the model trained on one batch)" in good.stdout
    assert "confirm" not in good.stdout or "more seeds" in good.stdout


def test_validate_s_plan_counts_every_trial_the_study_runs(
    write_config: Callable[..., Path],
) -> None:
    import re

    text = "data: {source: iris}\ntrain: {device: cpu}\nsearch: {trials: 40}\n"
    result = CliRunner().invoke(app, ["validate", str(write_config(text))])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("staged search, 40 trials"))
    counts = [int(n) for n in re.findall(r"(?:^|, )\w+ (\d+)", line.split(": ", 1)[1])]
    assert sum(counts) == 40 and "confirm" in line
