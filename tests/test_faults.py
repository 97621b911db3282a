"""Faults lose no finished trial and end in one clear line: kill -9, Ctrl-C and SIGTERM (real
processes, real signals), a non-finite loss, the GPU running out of memory (simulated by
raising torch's own error from the engine), a SQLite file locked by another process or
corrupt, and determinism (the same config and seed give the same trials, one by one)."""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from test_workers import (
    SLOW_TRIALS,
    _running_trial_of,
    check_shared_study,
    kill_mid_trial,
    start_worker,
    study_trials,
)
from typer.testing import CliRunner

from adamtune.cli import app
from adamtune.search import trial_runs
from adamtune.search.study import counts_toward_budget, status_of

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


# --- kill -9, Ctrl-C, SIGTERM


@pytest.mark.slow
def test_kill_9_mid_trial_then_the_same_search_finishes_the_budget_exactly(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(SLOW_TRIALS.format(name="kill9", epochs=150, trials=10))
    victim = kill_mid_trial(path, storage_url, "kill9")
    finished_before = {
        t.number
        for t in study_trials(storage_url, "kill9")
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    }

    again = start_worker(path, storage_url, "--batch", "1")
    _, errors = again.communicate(timeout=300)

    assert again.returncode == 0, errors.decode()
    trials = study_trials(storage_url, "kill9")
    check_shared_study(trials, 10)  # exactly the budget, none running, unique numbers
    by_number = {t.number: t for t in trials}
    assert by_number[victim.number].state == TrialState.FAIL
    assert status_of(by_number[victim.number]) == "killed"
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].params == victim.params
    assert retries[0].user_attrs["adam"] == victim.user_attrs["adam"]
    # Nothing finished before the kill was lost or run again.
    assert finished_before <= {t.number for t in trials if counts_toward_budget(t)}
    assert len(
        {
            json.dumps(t.user_attrs["adam"], sort_keys=True)
            for t in trials
            if counts_toward_budget(t) and t.user_attrs["stage"] == "lr"
        }
    ) == len([t for t in trials if counts_toward_budget(t) and t.user_attrs["stage"] == "lr"])


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_record_the_trial_as_interrupted_and_say_how_to_resume(
    write_config: Callable[..., Path], storage_url: str, sig: int, code: int
) -> None:
    path = write_config(SLOW_TRIALS.format(name="stop", epochs=150, trials=6))
    worker = start_worker(path, storage_url, "--batch", "1")
    running = _running_trial_of(storage_url, "stop", worker.pid, "lr", limit=120, stop=True)

    worker.send_signal(sig)  # delivered when it runs again, in the middle of that trial
    began = time.monotonic()
    worker.send_signal(signal.SIGCONT)
    _, errors = worker.communicate(timeout=60)

    assert time.monotonic() - began < 15  # within seconds, not at the trial's end (~1 min)
    assert worker.returncode == code
    message = errors.decode()
    assert "run the same command to resume" in message and "Traceback" not in message
    trials = {t.number: t for t in study_trials(storage_url, "stop")}
    interrupted = trials[running.number]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["reason"] == "interrupted"
    assert not [t for t in trials.values() if t.state == TrialState.RUNNING]
    assert not counts_toward_budget(interrupted)  # drawn again on resume
    # Resuming finishes the budget exactly.
    again = start_worker(path, storage_url, "--batch", "1")
    _, errors = again.communicate(timeout=300)
    assert again.returncode == 0, errors.decode()
    check_shared_study(study_trials(storage_url, "stop"), 6)


# --- a non-finite loss

BLOWUP = """\
name: blowup
data: {source: diabetes, batch_size: 32}
model: {arch: mlp, hidden: [16, 16]}
train: {epochs: 4}
search:
  trials: 8
  batch: 1
  pruner: none
  confirm: {seeds: 1}
  space:
    lr: {low: 1.0e+6, high: 1.0e+9}
    schedule: [none]
"""


@pytest.mark.slow
def test_a_non_finite_loss_is_pruned_as_diverged_and_best_stays_finite(
    write_config: Callable[..., Path],
) -> None:
    assert invoke("search", str(write_config(BLOWUP, name="blowup")), "-q").exit_code == 0
    rows = json.loads(invoke("trials", "--format", "json").stdout)
    diverged = [r for r in rows if r["state"] == "diverged"]
    assert diverged
    study = optuna.load_study(study_name="blowup", storage="sqlite:///adamtune.db")
    for row in diverged:
        trial = study.trials[row["number"]]
        assert trial.state == TrialState.PRUNED and trial.user_attrs["reason"] == "diverged"
    best = json.loads(invoke("best", "--format", "json").stdout)
    assert math.isfinite(best["value"]) and math.isfinite(best["default_value"])
    assert best["trial"] not in {r["number"] for r in diverged}


# --- out of memory


@pytest.fixture
def out_of_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The engine raises torch.cuda.OutOfMemoryError for the trials ``state["when"]`` picks,
    after allocating a tensor that only its frame (and so the error's traceback) holds."""
    state: dict[str, Any] = {"when": lambda params: False, "held": []}
    real_trial, real_batch = trial_runs.train_trial, trial_runs.train_batch

    def raise_oom() -> None:
        activations = torch.ones(256, 1024)  # what a real trial would leave on the device
        state["held"].append(weakref.ref(activations))
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"
        )

    def train_trial(task: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        if state["when"](params):
            raise_oom()
        return real_trial(task, params, *args, **kwargs)

    def train_batch(task: Any, params: list[Any], *args: Any, **kwargs: Any) -> Any:
        if any(state["when"](p) for p in params):
            raise_oom()
        return real_batch(task, params, *args, **kwargs)

    monkeypatch.setattr(trial_runs, "train_trial", train_trial)
    monkeypatch.setattr(trial_runs, "train_batch", train_batch)
    yield state


@pytest.mark.slow
def test_out_of_memory_fails_that_trial_releases_it_and_the_search_goes_on(
    write_config: Callable[..., Path], out_of_memory: dict[str, Any]
) -> None:
    seen: list[float] = []

    def first_lr_trial(params: Any) -> bool:
        if params.lr != 1e-3 and not seen:
            seen.append(params.lr)
            return True
        return False

    out_of_memory["when"] = first_lr_trial
    result = invoke("search", str(write_config(trials=8)), "-q")

    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny", storage="sqlite:///adamtune.db")
    oom = [t for t in study.trials if t.user_attrs.get("status") == "oom"]
    assert len(oom) == 1 and oom[0].state == TrialState.FAIL
    assert (
        oom[0].user_attrs["reason"] == "oom" and "CUDA out of memory" in oom[0].user_attrs["error"]
    )
    assert sum(1 for t in study.trials if counts_toward_budget(t)) == 8  # drawn again
    assert all(ref() is None for ref in out_of_memory["held"])  # nothing kept it alive
    assert "oom" in result.stderr  # the trial's line says so


@pytest.mark.slow
@pytest.mark.parametrize("batch", ["1", "4"])
def test_out_of_memory_again_and_again_ends_the_search_with_a_hint(
    write_config: Callable[..., Path],
    out_of_memory: dict[str, Any],
    batch: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    out_of_memory["when"] = lambda params: params.lr != 1e-3  # all but Adam's defaults
    result = invoke("search", str(write_config(trials=12)), "-q", "--batch", batch)

    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 3 trials in a row ran out of memory on cpu, one at a time")
    assert "lower data.batch_size (now 32)" in last and "Traceback" not in result.output
    halved = [
        r.getMessage() for r in caplog.records if "together ran out of memory" in r.getMessage()
    ]
    assert halved == (
        []
        if batch == "1"
        else [
            "4 trials together ran out of memory; training 2 together from now on",
            "2 trials together ran out of memory; training 1 together from now on",
        ]
    )
    study = optuna.load_study(study_name="tiny", storage="sqlite:///adamtune.db")
    # Adam's defaults completed (alone, once batches were down to one trial) and were kept
    assert [t.state for t in study.trials if t.user_attrs["stage"] == "defaults"][-1] == (
        TrialState.COMPLETE
    )
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_a_batch_that_runs_out_of_memory_is_halved_and_the_search_finishes(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = trial_runs.train_batch

    def train_batch(task: Any, params: list[Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(len(params))
        if len(params) > 2:  # what fits on the device: two trials at a time
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return real(task, params, *args, **kwargs)

    monkeypatch.setattr(trial_runs, "train_batch", train_batch)
    result = invoke("search", str(write_config(trials=12)), "-q", "--batch", "4")

    assert result.exit_code == 0, result.output
    first_big = next(i for i, n in enumerate(seen) if n > 2)
    assert all(n <= 2 for n in seen[first_big + 1 :])  # halved once, for the rest of the search
    study = optuna.load_study(study_name="tiny", storage="sqlite:///adamtune.db")
    assert sum(1 for t in study.trials if counts_toward_budget(t)) == 12
    assert [t.user_attrs["reason"] for t in study.trials if t.state == TrialState.FAIL] == [
        "oom"
    ] * seen[first_big]


def test_out_of_memory_outside_a_trial_is_one_line_with_the_hint(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from adamtune.train import lr_find

    def range_test_oom(*args: Any, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(lr_find, "run_range_test", range_test_oom)
    result = invoke("lr-find", str(write_config()))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory (OutOfMemoryError: ")
    assert "lower data.batch_size" in lines[0] and "internal error" not in lines[0]


def test_ctrl_c_outside_a_search_says_interrupted_without_a_resume_promise(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from adamtune.train import lr_find

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(lr_find, "run_range_test", interrupted)
    result = invoke("lr-find", str(write_config()))
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted"


# --- SQLite locked or corrupt


class Locker:
    """Another process holding a SQLite file locked (``BEGIN EXCLUSIVE``) until released."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
                "sys.stdin.read(); c.execute('COMMIT')\n",
                str(path),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == b"locked"
        self.released_at: float | None = None

    def release(self) -> None:
        if self.released_at is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)
            self.released_at = time.time()

    def __enter__(self) -> Locker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.slow
def test_a_locked_sqlite_file_is_waited_for_then_used(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(trials=2)
    assert invoke("search", str(path), "-q").exit_code == 0
    with Locker(tmp_path / "adamtune.db") as lock:
        threading.Timer(1.5, lock.release).start()
        result = invoke("search", str(path), "-q", "--trials", "3")
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="tiny", storage="sqlite:///adamtune.db").trials
    assert len(trials) == 3
    assert lock.released_at is not None
    assert trials[2].datetime_start.timestamp() >= lock.released_at - 0.1  # it waited


@pytest.mark.slow
def test_a_sqlite_file_locked_past_the_wait_gets_one_line_and_exit_1(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(trials=2)
    assert invoke("search", str(path), "-q").exit_code == 0
    url = f"sqlite:///{tmp_path / 'adamtune.db'}?timeout=0.5"
    with Locker(tmp_path / "adamtune.db"):
        for args in (("search", str(path), "-q", "--trials", "3"), ("best",)):
            result = invoke(*args, "--storage", url)
            assert result.exit_code == 1, result.output
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "locked for more than 0.5 s" in lines[0], lines
    assert len(optuna.load_study(study_name="tiny", storage="sqlite:///adamtune.db").trials) == 2


@pytest.mark.slow
def test_a_lock_taken_mid_search_ends_it_in_one_line_and_keeps_the_finished_trials(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "adamtune.db"
    path = write_config(trials=8)
    locks: list[Locker] = []
    real = trial_runs.train_trial

    def train_trial(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)
        if len(locks) == 0 and db.exists() and len(study_trials(f"sqlite:///{db}", "tiny")) >= 3:
            locks.append(Locker(db))  # taken while this trial's result waits to be told
        return outcome

    monkeypatch.setattr(trial_runs, "train_trial", train_trial)
    try:
        result = invoke("search", str(path), "-q", "--storage", f"sqlite:///{db}?timeout=0.5")
    finally:
        for lock in locks:
            lock.release()
    assert locks and result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert "locked for more than 0.5 s" in last and "Traceback" not in result.output, last
    assert "internal error" not in result.stderr
    monkeypatch.setattr(trial_runs, "train_trial", real)
    kept = [t for t in study_trials(f"sqlite:///{db}", "tiny") if counts_toward_budget(t)]
    assert len(kept) >= 2
    again = invoke("search", str(path), "-q")  # and the same command finishes the budget
    assert again.exit_code == 0, again.output
    assert sum(1 for t in study_trials(f"sqlite:///{db}", "tiny") if counts_toward_budget(t)) == 8


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbage", "pages"])
def test_a_corrupt_sqlite_file_gets_one_line_and_exit_1_and_is_left_alone(
    write_config: Callable[..., Path], tmp_path: Path, damage: str
) -> None:
    path = write_config(trials=2)
    assert invoke("search", str(path), "-q").exit_code == 0
    db = tmp_path / "adamtune.db"
    data = db.read_bytes()
    if damage == "truncated":
        db.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        db.write_bytes(b"not sqlite " * 400)
    else:  # the header is sound, the tables are not
        db.write_bytes(data[:4096] + bytes(range(256)) * ((len(data) - 4096) // 256 + 1))
    before = db.read_bytes()
    for args in (("search", str(path), "-q"), ("best",), ("trials",)):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "not a readable SQLite database" in lines[0], lines
        assert "Traceback" not in result.output
    assert db.read_bytes() == before
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(db).execute("select * from trials").fetchall()


# --- determinism


def _trials(url: str, name: str) -> list[tuple[Any, ...]]:
    return [
        (t.number, t.state, t.params, t.value, t.user_attrs["adam"], t.user_attrs["val_curve"])
        for t in study_trials(url, name)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("batch", ["1", "auto"])
def test_the_same_config_and_seed_give_the_same_trials_one_by_one(
    write_config: Callable[..., Path], tmp_path: Path, batch: str
) -> None:
    path = write_config(trials=16)
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("first.db", "second.db"))
    for url in (first, second):
        result = invoke("search", str(path), "-q", "--batch", batch, "--storage", url)
        assert result.exit_code == 0, result.output
    assert _trials(first, "tiny") == _trials(second, "tiny")
    assert len({json.dumps(t[4], sort_keys=True) for t in _trials(first, "tiny")}) > 8
