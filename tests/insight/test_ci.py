"""The CI contract: search --json, the GitHub step summary, the regression gate, no secrets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adamtune.cli import app
from adamtune.insight.ci import SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def searched(write_config: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """A finished tiny study, its search --json summary and the step summary it appended."""
    path, summary, step = write_config(trials=6), tmp_path / "out" / "s.json", tmp_path / "step.md"
    step.write_text("earlier content\n")
    result = invoke(
        "search", str(path), "--json", str(summary), env={"GITHUB_STEP_SUMMARY": str(step)}
    )
    assert result.exit_code == 0, result.output
    return path, summary, step


def test_search_writes_a_versioned_summary_and_a_step_summary(
    searched: tuple[Path, Path, Path],
) -> None:
    path, summary, step = searched
    data = json.loads(summary.read_text())
    assert data["schema"] == SCHEMA and data["study"] == "tiny"
    assert data["trials_run"] == data["trials_total"] == data["budget"] == 6
    assert data["stopped_by"] == "budget" and sum(data["states"].values()) == 6
    best = json.loads(invoke("best", str(path), "--format", "json").stdout)
    assert data["best"] == best
    text = step.read_text()
    assert text.startswith("earlier content\n### adamtune: tiny")  # appended, not replaced
    assert "| parameter | best | Adam default |" in text and "| stage | trials |" in text


def test_check_passes_on_its_baseline_and_fails_with_exit_3_on_a_regression(
    searched: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path, summary, _ = searched
    ok = invoke("check", str(path), "--baseline", str(summary))
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: ")
    data = json.loads(summary.read_text())
    value = data["best"]["value"]
    data["best"]["value"] = value * 0.9  # a baseline 10% better: today's result regressed
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(data))
    failed = invoke("check", str(path), "--baseline", str(planted), "--tolerance", "0.05")
    assert failed.exit_code == 3 and "regression: best val loss" in failed.output
    assert (
        invoke("check", str(path), "--baseline", str(planted), "--tolerance", "0.2").exit_code == 0
    )
    # best --format json output works as a baseline too; best --max-loss is the same gate
    best = tmp_path / "best.json"
    best.write_text(invoke("best", str(path), "--format", "json").stdout)
    assert invoke("check", str(path), "--baseline", str(best)).exit_code == 0
    assert invoke("best", str(path), "--max-loss", str(value * 1.01)).exit_code == 0
    assert invoke("best", str(path), "--max-loss", str(value * 0.99)).exit_code == 3


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "file not found"), ("{", "not a JSON file"), ('{"value": null}', "finite 'value'")],
)
def test_a_bad_baseline_is_a_usage_error(
    searched: tuple[Path, Path, Path], tmp_path: Path, content: str | None, says: str
) -> None:
    baseline = tmp_path / "b.json"
    if content is not None:
        baseline.write_text(content)
    result = invoke("check", str(searched[0]), "--baseline", str(baseline))
    assert result.exit_code == 2 and says in result.output


SECRET = "Sup3r-s3cret-pw"


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_password_in_the_storage_url_never_reaches_any_output(
    write_config: Callable[..., Path], tmp_path: Path, debug: list[str]
) -> None:
    url = f"postgresql://tuner:{SECRET}@127.0.0.1:9/studies"  # nothing listens on port 9
    path = write_config(trials=3)
    runs = [
        invoke("search", str(path), "--storage", url, *debug),
        invoke("search", str(path), *debug, env={"ADAMTUNE_STORAGE": url}),
        invoke("best", "--storage", url, *debug),
        invoke("trials", "--storage", url, "--study", "tiny", *debug),
        invoke("report", "--storage", url, "--out", str(tmp_path / "r.html"), *debug),
        invoke("verify", "--storage", url, *debug),
        invoke("check", "--baseline", str(tmp_path / "none.json"), "--storage", url, *debug),
        invoke("validate", str(path), *debug),
    ]
    path.write_text(path.read_text().replace("  batch: 1\n", f"  batch: 1\n  storage: {url}\n"))
    runs.append(invoke("search", str(path), *debug))
    for result in runs:
        assert SECRET not in result.output, result.output
    # Passwords a URL pattern cannot delimit are hidden too, as typed or decoded.
    for odd, secret in [
        (f"postgresql://q:pa\"ss'{SECRET}@127.0.0.1:9/s", f"pa\"ss'{SECRET}"),
        (f"postgresql://s:pa ss{SECRET}@127.0.0.1:9/s", f"pa ss{SECRET}"),
        (f"postgresql://r:p@ss:{SECRET}@127.0.0.1:9/s", f"p@ss:{SECRET}"),
        (f"postgresql://k@127.0.0.1:9/s?password={SECRET}", SECRET),
        (f"host=db password={SECRET}", SECRET),
    ]:
        result = invoke("search", str(path), "--storage", odd, *debug)
        assert result.exit_code in (1, 2) and secret not in result.output, result.output
        assert SECRET not in result.output, result.output
    # the URL is still named, with its password hidden (no driver: exit 2; no server: exit 1)
    assert any(r.exit_code in (1, 2) and "tuner:***@127.0.0.1" in r.output for r in runs)


def test_the_github_actions_example_uses_commands_that_exist() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
    text = json.dumps(workflow)
    for command in ("adamtune search", "--json", "adamtune check", "--baseline", "adamtune report"):
        assert command in text, command
    # the storage URL comes from a secret, in the environment, never on a command line
    assert workflow["jobs"]["matrix"]["env"]["ADAMTUNE_STORAGE"].startswith("${{ secrets.")
    assert "--storage" not in text


def test_the_gate_reads_a_negative_baseline_the_right_way() -> None:
    from adamtune.insight.ci import check

    worse, better = check(-0.5, -1.0, 0.1), check(-1.05, -1.0, 0.1)
    assert not worse.passed and "(+50.00%)" in worse.message()
    assert better.passed and "(-5.00%)" in better.message()


def test_a_study_that_maximises_accuracy_is_gated_from_below(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(
        "name: acc\ndata: {source: iris, batch_size: 32}\nmodel: {hidden: [16]}\n"
        "train: {epochs: 3, metric: accuracy}\n"
        "search: {trials: 6, confirm: {seeds: 1}, space: {schedule: [none]}}\n"
    )
    assert invoke("search", str(path)).exit_code == 0
    best = json.loads(invoke("best", str(path), "--format", "json").stdout)
    assert best["direction"] == "maximize" and best["metric"] == "val accuracy"
    baseline = tmp_path / "baseline.json"
    outputs = []
    for planted, tolerance, code in ((0.95, 0.0, 0), (1.2, 0.0, 3), (1.2, 0.25, 0)):
        baseline.write_text(json.dumps({**best, "value": best["value"] * planted}))
        result = invoke(
            "check", str(path), "--baseline", str(baseline), "--tolerance", str(tolerance)
        )
        assert result.exit_code == code, (planted, tolerance, result.output)
        outputs.append(result.output)
    assert "regression: best val accuracy" in outputs[1] and "worse than" in outputs[1]
    # a loss baseline is no bar for an accuracy
    baseline.write_text(json.dumps({**best, "metric": "val loss", "direction": "minimize"}))
    mismatch = invoke("check", str(path), "--baseline", str(baseline))
    assert mismatch.exit_code == 2
    assert "states val loss (minimize), but study 'acc' maximizes val accuracy" in mismatch.stderr
    # --max-loss means nothing for an accuracy: one line pointing at check, nothing printed
    refused = invoke("best", str(path), "--max-loss", "0.5")
    assert refused.exit_code == 2 and "maximises val accuracy" in refused.stderr
    assert refused.stdout == ""
