"""The bad-input corpus: malformed configs and command lines, one table.

Each case gets the right exit code (2 for input, 1 for a runtime problem such as an unreachable
database), exactly one line on stderr that names the file, line and key path where there is
one, no traceback, and leaves storage as it found it: nothing created, nothing changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import TINY
from typer.testing import CliRunner

from adamtune.cli import app

runner = CliRunner()


def tiny(trials: int = 12, **replace: str) -> str:
    """The tiny config with some lines replaced: ``{"  epochs: 3": "  epochs: ten"}``."""
    text = TINY.format(name="bad", trials=trials)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


SPACE = "  space:\n    schedule: [none]  # and so has the schedule stage (test_schedule_stage.py)\n"


def space(*lines: str) -> str:
    """The tiny config with its search space replaced by ``lines`` (4 spaces in)."""
    return tiny(**{SPACE: "  space:\n" + "".join(f"    {line}\n" for line in lines)})


def _data_file(name: str, text: str | bytes) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        path = directory / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return write


def _unreadable(name: str) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        _data_file(name, "a,y\n1,0\n")(directory)
        (directory / name).chmod(0)

    return write


def _a_directory(name: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).mkdir()


def _finished_study(directory: Path) -> None:
    """A study with trials, to read from (made by a real search)."""
    config = directory / "done.yaml"
    config.write_text(TINY.format(name="done", trials=2))
    result = runner.invoke(app, ["search", str(config), "-q"])
    assert result.exit_code == 0, result.output


def _empty_storage(directory: Path) -> None:
    import optuna

    optuna.storages.RDBStorage("sqlite:///adamtune.db")


def _study_without_finished_trials(directory: Path) -> None:
    import optuna

    study = optuna.create_study(study_name="bad", storage="sqlite:///adamtune.db")
    study.ask()  # running, never told


def _read_only_dir() -> str:
    """A directory nobody may write in: as root, permissions do not stop writes, so use a
    read-only file system's."""
    if os.geteuid() == 0:
        return "/proc/self"
    path = Path("ro").resolve()
    path.mkdir()
    path.chmod(0o555)
    return str(path)


def _locked_out_sqlite() -> str:
    return f"sqlite:///{_read_only_dir()}/adamtune.db"


@dataclass
class Case:
    name: str
    config: str | None  # written to bad.yaml; None: no config file
    args: tuple[str, ...]  # "{config}" stands for bad.yaml's path
    code: int
    message: str  # expected in the one line; "{config}" is the config's path
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] | None = None
    skip: str | None = None  # why this machine cannot show the case


def _installed(*modules: str) -> str | None:
    found = [m for m in modules if importlib.util.find_spec(m) is not None]
    return f"{found[0]} is installed" if found else None


CASES = [
    # --- the config: keys and types
    Case(
        "misspelt key",
        tiny(**{"  epochs: 3": "  epoch: 3"}),
        ("search", "{config}"),
        2,
        "{config}:10: train.epoch: unknown key (did you mean 'epochs'?)",
    ),
    Case(
        "misspelt section",
        tiny(**{"train:": "trian:"}),
        ("search", "{config}"),
        2,
        "{config}:9: trian: unknown key (did you mean 'train'?)",
    ),
    Case(
        "wrong type",
        tiny(**{"  epochs: 3": "  epochs: ten"}),
        ("search", "{config}"),
        2,
        "{config}:10: train.epochs:",
    ),
    Case(
        "list where a number goes",
        tiny(**{"  batch_size: 32": "  batch_size: [32]"}),
        ("validate", "{config}"),
        2,
        "{config}:5: data.batch_size:",
    ),
    Case(
        "negative epochs",
        tiny(**{"  epochs: 3": "  epochs: -1"}),
        ("search", "{config}"),
        2,
        "{config}:10: train.epochs:",
    ),
    Case("empty YAML", "", ("search", "{config}"), 2, "{config}: "),
    Case(
        "YAML that is a list",
        "- data\n- model\n",
        ("search", "{config}"),
        2,
        "{config}:1: the config must be a mapping of keys (got a list)",
    ),
    Case("YAML syntax error", "data: {source: iris\n", ("search", "{config}"), 2, "{config}:"),
    Case(
        "duplicate keys",
        tiny(**{"seed: 0": "seed: 0\nseed: 1"}),
        ("search", "{config}"),
        2,
        "{config}:3: seed: duplicate key",
    ),
    Case("missing config file", None, ("search", "nothere.yaml"), 2, "nothere.yaml"),
    # --- the search space
    Case(
        "beta1 >= 1",
        space("beta1: 1.0"),
        ("search", "{config}"),
        2,
        "{config}:16: search.space.beta1: must be >= 0 and < 1 (got 1",
    ),
    Case(
        "beta2 >= 1",
        space("beta2: {low: 0.9, high: 1.0}"),
        ("search", "{config}"),
        2,
        "{config}:16: search.space.beta2.high: must be >= 0 and < 1 (got 1)",
    ),
    Case(
        "eps <= 0",
        space("eps: 0"),
        ("search", "{config}"),
        2,
        "{config}:16: search.space.eps: must be > 0 (got 0)",
    ),
    Case(
        "lr from 0 on a log scale",
        space("lr: {low: 0, high: 0.1}"),
        ("search", "{config}"),
        2,
        "{config}:16: search.space.lr.low: must be > 0 on a log scale (got 0)",
    ),
    Case(
        "low > high",
        space("lr: {low: 0.1, high: 0.001}"),
        ("search", "{config}"),
        2,
        "{config}:16: search.space.lr: low (0.1) must not exceed high (0.001)",
    ),
    Case(
        "negative weight decay",
        space("weight_decay: -0.01"),
        ("search", "{config}"),
        2,
        "{config}:16: search.space.weight_decay: must be >= 0 (got -0.01)",
    ),
    Case(
        "empty choice list",
        space("amsgrad: []"),
        ("search", "{config}"),
        2,
        "{config}:16: search.space.amsgrad: must list at least one choice",
    ),
    Case(
        "empty search space",
        space(
            "lr: 0.001",
            "beta1: 0.9",
            "beta2: 0.999",
            "eps: 1.0e-8",
            "weight_decay: 0",
            "amsgrad: false",
            "schedule: [none]",
        ),
        ("search", "{config}"),
        2,
        "{config}:11: search: every parameter in search.space is fixed: nothing to search",
    ),
    Case(
        "trials: 0",
        tiny(trials=0),
        ("search", "{config}"),
        2,
        "{config}:12: search.trials: must be >= 1 (got 0)",
    ),
    Case(
        "negative timeout in the config",
        tiny(**{"  batch: 1": "  batch: 1\n  timeout: -5"}),
        ("search", "{config}"),
        2,
        "{config}:14: search.timeout: must be > 0",
    ),
    # --- data and model
    Case(
        "unknown dataset",
        tiny(**{"source: iris": "source: irises"}),
        ("search", "{config}"),
        2,
        "{config}:4: data.source:",
    ),
    Case(
        "missing data file",
        tiny(**{"source: iris": "source: nothere.csv"}),
        ("search", "{config}"),
        2,
        "{config}:4: data.source: file not found",
    ),
    Case(
        "data file that is a directory",
        tiny(**{"source: iris": "source: folder.csv"}),
        ("search", "{config}"),
        2,
        "{config}:4: data.source: {tmp}/folder.csv is a directory",
        _a_directory("folder.csv"),
    ),
    Case(
        "unreadable data file",
        tiny(**{"source: iris": "source: secret.csv\n  target: y"}),
        ("search", "{config}"),
        2,
        "{config}:4: data.source: cannot read",
        _unreadable("secret.csv"),
        skip="root reads any file" if os.geteuid() == 0 else None,
    ),
    Case(
        "data file that is not a CSV",
        tiny(**{"source: iris": "source: noise.csv\n  target: y"}),
        ("search", "{config}"),
        2,
        "{config}:4: data.source:",
        _data_file("noise.csv", b"\x00\xff\xfe\x00garbage\x89PNG"),
    ),
    Case(
        "CSV without the target column",
        tiny(**{"source: iris": "source: table.csv\n  target: label"}),
        ("search", "{config}"),
        2,
        "{config}:5: data.target:",
        _data_file("table.csv", "a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n"),
    ),
    Case(
        "batch size larger than the dataset",
        tiny(**{"  batch_size: 32": "  batch_size: 100000"}),
        ("search", "{config}"),
        2,
        "{config}:5: data.batch_size:",
    ),
    Case(
        "unknown model",
        tiny(**{"arch: mlp": "arch: transformer"}),
        ("search", "{config}"),
        2,
        "{config}:7: model.arch:",
    ),
    Case(
        "import path that fails",
        tiny(**{"arch: mlp": "arch: 'nosuchmodule_x:Net'"}),
        ("search", "{config}"),
        2,
        "{config}:7: model.arch:",
    ),
    Case(
        "import path naming a non-callable",
        tiny(**{"arch: mlp": "arch: 'os:sep'"}),
        ("search", "{config}"),
        2,
        "{config}:7: model.arch:",
    ),
    # --- the command line
    Case("unknown option", tiny(), ("search", "{config}", "--trails", "5"), 2, "--trails"),
    Case("--trials 0", tiny(), ("search", "{config}", "--trials", "0"), 2, "--trials"),
    Case("negative --timeout", tiny(), ("search", "{config}", "--timeout", "-1"), 2, "--timeout"),
    Case("bad --batch", tiny(), ("search", "{config}", "--batch", "many"), 2, "--batch"),
    Case("--jobs 0", tiny(), ("search", "{config}", "--jobs", "0"), 2, "--jobs"),
    Case("unknown --format", None, ("best", "--format", "xml"), 2, "--format"),
    Case(
        "--device cuda without a GPU",
        tiny(),
        ("search", "{config}", "--device", "cuda"),
        2,
        "no CUDA GPU",
        skip="a GPU is present" if torch.cuda.is_available() else None,
    ),
    Case("unknown --device", tiny(), ("search", "{config}", "--device", "tpu"), 2, "tpu"),
    # --- storage
    Case(
        "bad storage URL",
        tiny(),
        ("search", "{config}", "--storage", "nonsense"),
        2,
        "expected a database URL",
    ),
    Case(
        "bad storage URL in the environment",
        tiny(),
        ("search", "{config}"),
        2,
        "expected a database URL",
        env={"ADAMTUNE_STORAGE": "sqlite:/x.db"},
    ),
    Case(
        "ADAMTUNE_THREADS not a number",
        tiny(),
        ("search", "{config}"),
        2,
        "ADAMTUNE_THREADS: must be a whole number >= 1 (got 'two')",
        env={"ADAMTUNE_THREADS": "two"},
    ),
    Case(
        "unreachable database",
        tiny(),
        ("search", "{config}", "--storage", "postgresql://tuner:hunter2@127.0.0.1:9/studies"),
        1,
        "is unreachable",
    ),
    Case(
        "missing database driver",
        tiny(),
        ("search", "{config}", "--storage", "mysql://tuner:hunter2@127.0.0.1/db"),
        2,
        "no database driver for mysql is installed",
        skip=_installed("MySQLdb", "pymysql"),
    ),
    Case(
        "unknown database driver",
        tiny(),
        ("search", "{config}", "--storage", "mysql+nosuchdriver://u@127.0.0.1/db"),
        2,
        "not a usable database URL",
    ),
    Case(
        "read-only directory for the SQLite file",
        tiny(),
        ("search", "{config}"),
        1,
        "cannot write in",
    ),
    Case("best on a storage with no study", None, ("best",), 2, "no study", _empty_storage),
    Case("best on a missing storage", None, ("best",), 2, "no study found"),
    Case(
        "best on a study with no finished trial",
        None,
        ("best", "--study", "bad"),
        1,
        "has no completed trial yet",
        _study_without_finished_trials,
    ),
    Case(
        "best of an unknown study",
        None,
        ("best", "--study", "nope"),
        2,
        "studies there: done",
        _finished_study,
    ),
    Case("trials on a missing storage", None, ("trials",), 2, "no study found"),
]
# The read-only directory needs the working directory, so its URL is made in the test.
READ_ONLY = "read-only directory for the SQLite file"


def _storage_files(directory: Path) -> dict[str, str]:
    """Every file but the config and data files, with a hash of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix not in (".yaml", ".csv")
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_the_right_code_and_leaves_storage_alone(
    case: Case, tmp_path: Path
) -> None:
    if case.skip:
        pytest.skip(case.skip)
    if case.setup is not None:
        case.setup(tmp_path)
    config = tmp_path / "bad.yaml"
    if case.config is not None:
        config.write_text(case.config)
    args = [a.replace("{config}", str(config)) for a in case.args]
    if case.name == READ_ONLY:
        args += ["--storage", _locked_out_sqlite()]
    before = _storage_files(tmp_path)

    result = runner.invoke(app, args, env=case.env)

    lines = result.stderr.strip().splitlines()
    assert result.exit_code == case.code, result.output
    assert len(lines) == 1, result.stderr
    assert case.message.replace("{config}", str(config)).replace("{tmp}", str(tmp_path)) in lines[0]
    assert "Traceback" not in result.output and "hunter2" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    assert _storage_files(tmp_path) == before


def test_the_corpus_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


def test_an_unreadable_data_file_is_one_line_even_where_root_reads_everything(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The corpus's chmod case cannot fail for root (CI runs as root): the refusal the
    kernel would give is raised where the file is opened."""
    (tmp_path / "secret.csv").write_text("a,y\n1,0\n2,1\n")
    path = write_config(tiny(**{"source: iris": "source: secret.csv\n  target: y"}), name="bad")
    real_open = Path.open

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "secret.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", refuse)
    result = runner.invoke(app, ["search", str(path)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"{path}:4: data.source: cannot read {tmp_path / 'secret.csv'}" in lines[0]
    assert "Permission denied" in lines[0] and not (tmp_path / "adamtune.db").exists()
