"""Many workers on one study (SQLite here; PostgreSQL in test_postgres.py): the lock, the
heartbeat, waiting for trials that run elsewhere, retrying a dead worker's trial once, and
``search --jobs``."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from typer.testing import CliRunner

from adamtune.cli import app
from adamtune.config.schema import load_config
from adamtune.search.plan import BASELINE
from adamtune.search.storage import open_storage
from adamtune.search.study import counts_toward_budget, status_of
from adamtune.search.workers import Heartbeat, read_live, storage_options, study_lock

SLOW_TRIALS = """\
name: {name}
seed: 0
data: {{source: iris, batch_size: 16}}
model: {{arch: mlp, hidden: [32]}}
train: {{epochs: {epochs}}}
search:
  trials: {trials}
  space: {{schedule: [none]}}
"""


def _hold_lock(url: str, name: str, ready: Any, seconds: float) -> None:
    storage = open_storage(url)
    with study_lock(storage, name):
        ready.set()
        time.sleep(seconds)


def lock_wait(url: str) -> float:
    """How long this process waits for a study's lock another process holds for 1.5 s."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_lock, args=(url, "s", ready, 1.5))
    holder.start()
    assert ready.wait(60)
    began = time.monotonic()
    with study_lock(open_storage(url), "s"):
        waited = time.monotonic() - began
    with study_lock(open_storage(url), "another study"):  # other studies are not held up
        pass
    holder.join(30)
    return waited


@pytest.mark.slow
def test_the_study_lock_holds_other_processes_off(storage_url: str) -> None:
    assert 1.0 < lock_wait(storage_url) < 10


def study_trials(url: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def check_shared_study(trials: list[FrozenTrial], budget: int) -> None:
    """What any number of workers must leave behind: exactly the budget, unique numbers,
    stages in order (each starts after every trial before it finished), and one set of fixed
    values per stage."""
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert sum(1 for t in trials if counts_toward_budget(t)) == budget
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    counted = [t for t in trials if counts_toward_budget(t)]
    order: list[str] = []  # the budgets the trials used, by trial number
    for t in sorted(counted, key=lambda t: t.number):
        key = _key(t)
        if not order or order[-1] != key:
            assert key not in order, f"stage {key} came back after {order}"
            order.append(key)
    assert order[0] == BASELINE
    # The defaults train beside the first stage's first draws; every later stage (and the
    # final confirmation, last) starts after every trial before it finished.
    stages = order[1:]
    for earlier, later in zip(stages, stages[1:], strict=False):
        assert _end(counted, earlier) <= _start(counted, later), f"{later} began before {earlier}"
        assert _end(counted, BASELINE) <= _start(counted, later)
    assert "confirm" not in order or order[-1] == "confirm"
    names_of = {
        "lr": ["lr"],
        "betas": ["beta1", "beta2"],
        "eps": ["eps"],
        "amsgrad": ["amsgrad"],
        "weight_decay": ["weight_decay", "decoupled_weight_decay"],
    }
    for stage in {str(t.user_attrs["stage"]) for t in counted} & set(names_of):
        searched = [t for t in counted if t.user_attrs["stage"] == stage]
        names = names_of[stage] + ["lr"]  # every stage after lr re-tunes it
        fixed = {
            json.dumps(
                {k: v for k, v in t.user_attrs["adam"].items() if k not in names}, sort_keys=True
            )
            for t in searched
        }
        assert len(fixed) == 1, f"stage {stage} ran under {len(fixed)} sets of fixed values"


def _key(t: FrozenTrial) -> str:
    return str(t.user_attrs.get("of", t.user_attrs["stage"]))


def _end(trials: list[FrozenTrial], stage: str) -> Any:
    return max(t.datetime_complete for t in trials if _key(t) == stage)


def _start(trials: list[FrozenTrial], stage: str) -> Any:
    return min(t.datetime_start for t in trials if _key(t) == stage)


@pytest.mark.slow
def test_jobs_2_share_one_study_and_its_budget(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(SLOW_TRIALS.format(name="shared", epochs=60, trials=30))
    result = CliRunner().invoke(
        app, ["search", str(path), "--storage", storage_url, "--jobs", "2", "--batch", "1", "-q"]
    )
    assert result.exit_code == 0, result.output
    trials = study_trials(storage_url, "shared")
    check_shared_study(trials, 30)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # this process and one helper
    assert "30 trials (30 run now)" in result.output  # the helper's trials counted as run now
    assert "warning" not in result.output


@pytest.mark.slow
def test_a_worker_waits_for_a_stage_running_elsewhere(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=12)
    runner = CliRunner()
    assert (
        runner.invoke(
            app, ["search", str(path), "--storage", storage_url, "--trials", "1", "-q"]
        ).exit_code
        == 0
    )  # Adam's defaults only
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    done = 0
    settings = load_config(path)
    from adamtune.search.plan import make_plan

    lr_budget = make_plan(settings.config.search, 12)[0].trials
    for _ in range(lr_budget - done):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 0.1, log=True)})
        trial.set_user_attr("stage", "lr")
        trial.set_user_attr("worker", "elsewhere:1")
    waited = runner.invoke(app, ["search", str(path), "--storage", storage_url, "--timeout", "1"])
    assert waited.exit_code == 0, waited.output
    line = f"waiting for stage lr: {lr_budget - done} trials running elsewhere"
    assert line in waited.output and "(0 run now)" in waited.output


def test_fresh_does_not_delete_a_study_another_worker_has_just_opened(
    write_config: Callable[..., Path], storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that has opened the study (config checked, trials cached) but not yet begun
    its first trial is on the study's roll: --fresh elsewhere is refused. Before, it deleted
    the study under that worker, which then crashed or wrote into the new study."""
    import adamtune.search.workers
    from adamtune.errors import SearchFailedError
    from adamtune.search import SearchOptions, open_study

    path = write_config(trials=12)
    settings = load_config(path)
    with monkeypatch.context() as elsewhere:
        elsewhere.setattr(adamtune.search.workers, "worker_id", lambda: "other-host:1")
        open_study(settings, SearchOptions(storage=storage_url))  # and about to train
    with pytest.raises(SearchFailedError, match="1 other worker"):
        open_study(settings, SearchOptions(storage=storage_url, fresh=True))
    assert optuna.load_study(study_name="tiny", storage=storage_url).user_attrs  # still there


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # asked by hand, as Optuna warns
def test_a_dead_workers_trial_goes_stale_and_is_failed(storage_url: str) -> None:
    storage = open_storage(storage_url, **storage_options(1))  # beats every 1 s, 3 s grace
    study = optuna.create_study(study_name="s", storage=storage)
    gone, alive = study.ask(), study.ask()
    for trial in (gone, alive):
        trial.set_user_attr("worker", "another-host:1")  # its pid tells nothing here
    Heartbeat(storage, [gone._trial_id]).beat()  # then its worker died
    with Heartbeat(storage, [alive._trial_id]) as beating:
        beating.beat()
        time.sleep(4.5)
        states = {t.number: t.state for t in read_live(study)}
    assert states == {gone.number: TrialState.FAIL, alive.number: TrialState.RUNNING}
    assert status_of(study.trials[gone.number]) == "killed"  # drawn again


def _running_trial_of(
    url: str,
    name: str,
    pid: int,
    stage: str | tuple[str, ...],
    limit: float,
    *,
    stop: bool = False,
    wanted: Callable[[FrozenTrial], bool] = lambda _: True,
) -> FrozenTrial:
    """The first trial of ``stage`` (or stages) that worker ``pid`` is seen running.

    With ``stop``, the worker is frozen (SIGSTOP) in the middle of that trial before this
    returns: a trial of a second or less may end between being seen and being signalled,
    so the trial is read again once the worker is frozen, and passed over (the worker
    resumed) if it has ended by then. The caller kills the worker or sends it a signal and
    then SIGCONT."""
    stages = (stage,) if isinstance(stage, str) else stage
    storage = optuna.storages.RDBStorage(url)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            try:
                study_id = storage.get_study_id_from_name(name)
            except KeyError:
                time.sleep(0.05)
                continue
            for t in storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
                if not (
                    t.user_attrs.get("stage") in stages
                    and wanted(t)
                    and str(t.user_attrs.get("worker", "")).endswith(f":{pid}")
                ):
                    continue
                if stop:
                    os.kill(pid, signal.SIGSTOP)
                # Read again: each table is its own SELECT, so the first read may have seen
                # the attrs (written last, together) but not the params committed before them.
                t = storage.get_trial(t._trial_id)
                if t.state == TrialState.RUNNING:
                    return t
                if stop:
                    os.kill(pid, signal.SIGCONT)
            time.sleep(0.02)
    finally:
        storage.engine.dispose()
    raise AssertionError(f"no running {stage} trial of worker {pid} within {limit} s")


def start_worker(path: Path, url: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "adamtune", "search", str(path), "-q", *extra],
        env={**os.environ, "ADAMTUNE_STORAGE": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_in_trial(
    worker: subprocess.Popen[bytes],
    url: str,
    name: str,
    stage: str | tuple[str, ...] = "lr",
    wanted: Callable[[FrozenTrial], bool] = lambda _: True,
) -> FrozenTrial:
    """SIGKILL ``worker`` in the middle of a trial of ``stage``; that trial, as it was."""
    victim = _running_trial_of(url, name, worker.pid, stage, limit=120, stop=True, wanted=wanted)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    return victim


def kill_mid_trial(path: Path, url: str, name: str, stage: str = "lr") -> FrozenTrial:
    return kill_in_trial(start_worker(path, url, "--batch", "1"), url, name, stage)


@pytest.mark.slow
def test_a_killed_trial_is_retried_once_with_its_parameters(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(SLOW_TRIALS.format(name="killed", epochs=150, trials=8))
    victim = kill_mid_trial(path, storage_url, "killed")
    # The retry dies too: its parameters may be what kills the worker. It is not tried again.
    worker = start_worker(path, storage_url, "--batch", "1")
    retry = kill_in_trial(
        worker,
        storage_url,
        "killed",
        wanted=lambda t: t.user_attrs.get("retry_of") == victim.number,
    )
    done = subprocess.run(
        [sys.executable, "-m", "adamtune", "search", str(path), "-q"],
        env={**os.environ, "ADAMTUNE_STORAGE": storage_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    trials = study_trials(storage_url, "killed")
    by_number = {t.number: t for t in trials}
    assert status_of(by_number[victim.number]) == "killed"
    assert status_of(by_number[retry.number]) == "failed"  # counted, not drawn again
    assert retry.user_attrs["adam"] == victim.user_attrs["adam"] and retry.params == victim.params
    assert [t.number for t in trials if t.user_attrs.get("retry_of") == victim.number] == [
        retry.number
    ]
    check_shared_study(trials, 8)


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_must_be_positive(write_config: Callable[..., Path], jobs: str) -> None:
    result = CliRunner().invoke(app, ["search", str(write_config(trials=3)), "--jobs", jobs])
    assert result.exit_code == 2
    assert not Path("adamtune.db").exists()


@pytest.mark.slow
def test_fresh_with_jobs_starts_over_once(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=6)
    runner = CliRunner()
    assert runner.invoke(app, ["search", str(path), "--storage", storage_url, "-q"]).exit_code == 0
    again = runner.invoke(
        app, ["search", str(path), "--storage", storage_url, "-q", "--fresh", "--jobs", "2"]
    )
    assert again.exit_code == 0, again.output
    check_shared_study(study_trials(storage_url, "tiny"), 6)  # the first 6 were deleted


@pytest.mark.slow
def test_a_batch_takes_its_share_of_a_stage_when_others_are_present(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    from adamtune.search.workers import Roll

    path = write_config(trials=12)
    study = open_study_for(path, storage_url)
    roll = Roll(study)
    assert roll.present() == (1, 1)
    for other in ("a:1", "b:2"):  # two more workers signed the roll just now
        study._storage.set_study_system_attr(
            study._study_id, f"adamtune_worker:{other}", time.time()
        )
    study._storage.set_study_system_attr(study._study_id, "adamtune_worker:gone:3", 0.0)
    roll.seen = None  # read the roll again now
    assert roll.present() == (3, 1)  # the others signed on other hosts
    result = CliRunner().invoke(
        app, ["search", str(path), "--storage", storage_url, "--batch", "8", "--trials", "12", "-q"]
    )
    assert result.exit_code == 0, result.output
    sizes = [
        t.user_attrs.get("batch", 1)
        for t in study_trials(storage_url, "tiny")
        if t.user_attrs["stage"] == "lr"
    ]
    lr_budget = len(sizes)
    # a third of the stage at most (the first batch with the defaults), not all of it
    assert max(sizes) <= -(-(lr_budget + 1) // 3)


def test_the_roll_is_read_again_within_seconds(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    """The first worker looks at the roll before its helper has signed; a second later it
    must see the helper, or it takes the next stages' batches whole (seen with --jobs 2: the
    helper sat idle through the betas stage)."""
    from adamtune.search.workers import Roll

    study = open_study_for(write_config(trials=12), storage_url)
    roll, now = Roll(study), time.time()
    assert roll.present(now) == (1, 1)
    study._storage.set_study_system_attr(study._study_id, "adamtune_worker:a:1", now)
    assert roll.present(now + 0.5) == (1, 1)  # not a query for every trial
    assert roll.present(now + 1.5) == (2, 1)


def open_study_for(path: Path, url: str) -> optuna.Study:
    from adamtune.search import SearchOptions, open_study

    return open_study(load_config(path), SearchOptions(storage=url))


def test_the_cluster_recipes_keep_the_url_off_command_lines() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2] / "examples" / "cluster"
    job = yaml.safe_load((root / "kubernetes-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["adamtune", "search"]
    assert "--threads" in container["command"] and job["spec"]["parallelism"] > 1
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["ADAMTUNE_STORAGE"]["valueFrom"]
    slurm = (root / "slurm-array.sbatch").read_text()
    assert "export ADAMTUNE_STORAGE" in slurm and "srun adamtune search" in slurm
    for text in (json.dumps(job), slurm):
        assert "--storage" not in text
    # every option the recipes pass exists
    help_text = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "200"}).output
    for option in ("--threads", "--quiet", "--jobs", "--heartbeat"):
        assert option in help_text


def test_a_stage_past_its_planned_draws_waits_for_its_running_trials(
    write_config: Callable[..., Path],
) -> None:
    """A running trial is not a failed one: a stage that has made all its planned draws waits
    for them (the next stage starts from this one's pick, which they may be)."""
    from adamtune.search.drawing import StageSampler
    from adamtune.search.plan import make_plan
    from adamtune.search.steps import Context, Wait, next_step
    from adamtune.train.params import ADAM_DEFAULTS

    settings = load_config(write_config(SLOW_TRIALS.format(name="s", epochs=3, trials=30)))
    stage = make_plan(settings.config.search, 30)[0]
    assert stage.name == "lr"
    study = optuna.create_study()
    lr = optuna.distributions.FloatDistribution(1e-5, 0.1, log=True)

    def add(stage_name: str, value: float, **attrs: Any) -> None:
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={"lr": 1e-3} if stage_name == "lr" else {},
                distributions={"lr": lr} if stage_name == "lr" else {},
                user_attrs={
                    "stage": stage_name,
                    "adam": ADAM_DEFAULTS.as_dict(),
                    "status": "complete",
                    **attrs,
                },
            )
        )

    add(BASELINE, 0.5)
    for i in range(stage.trials - 1):
        add("lr", 0.4 - i / 100)
    running = study.ask({"lr": lr})
    for key, value in {
        "stage": "lr",
        "worker": "elsewhere:1",
        "adam": ADAM_DEFAULTS.as_dict(),
    }.items():
        running.set_user_attr(key, value)

    ctx = Context(settings.config, 30, batch=1)
    step = next_step(study.get_trials(), ctx, StageSampler(settings.config), set())
    assert isinstance(step, Wait) and step.message == (
        "waiting for stage lr: 1 trial running elsewhere"
    )


@pytest.mark.slow
def test_a_timeout_keeps_what_was_done(write_config: Callable[..., Path]) -> None:
    path = write_config(SLOW_TRIALS.format(name="t", epochs=150, trials=12))
    result = CliRunner().invoke(
        app, ["search", str(path), "--timeout", "0.5", "--batch", "1", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "stopped by --timeout" in result.output


def test_the_first_workers_heartbeat_holds_for_the_study(storage_url: str) -> None:
    from adamtune.search.workers import agree_heartbeat

    first = optuna.create_study(
        study_name="s", storage=open_storage(storage_url, **storage_options(30))
    )
    agree_heartbeat(first, 30)
    later = optuna.load_study(
        study_name="s", storage=open_storage(storage_url, **storage_options(1))
    )
    agree_heartbeat(later, 1)  # judged by 30 s beats, it never fails the first one's trials
    backend = later._storage._backend  # type: ignore[attr-defined]
    assert (backend.heartbeat_interval, backend.grace_period) == (30, 90)


@pytest.mark.slow
def test_sigterm_to_jobs_ends_its_helpers_and_loses_nothing(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(SLOW_TRIALS.format(name="term", epochs=150, trials=40))
    parent = start_worker(path, storage_url, "--jobs", "2", "--batch", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until both workers train
        try:
            running = [
                t for t in study_trials(storage_url, "term") if t.state == TrialState.RUNNING
            ]
        except KeyError:
            running = []
        workers = {str(t.user_attrs["worker"]) for t in running if "worker" in t.user_attrs}
        if len(workers) == 2:
            break
        time.sleep(0.1)
    helper_pid = int(
        next(w.rpartition(":")[2] for w in workers if not w.endswith(f":{parent.pid}"))
    )
    parent.send_signal(signal.SIGTERM)
    began = time.monotonic()
    assert parent.wait(timeout=60) == 143  # it interrupts its helpers (as Ctrl-C would)
    assert time.monotonic() - began < 8  # they stopped; none had to be killed after 10 s
    with pytest.raises(ProcessLookupError):
        os.kill(helper_pid, 0)
    left = [t.number for t in study_trials(storage_url, "term") if status_of(t) == "running"]
    assert not left  # every trial that was running is recorded as interrupted
    # Whatever the signal interrupted, nothing is lost: the same command finishes the budget.
    again = start_worker(path, storage_url, "--jobs", "2", "--batch", "1")
    _, errors = again.communicate(timeout=300)
    assert again.returncode == 0, errors.decode()
    check_shared_study(study_trials(storage_url, "term"), 40)


def test_an_interruption_swallowed_by_python_is_raised_again() -> None:
    """A KeyboardInterrupt raised inside a weakref callback is printed and dropped by Python;
    the request stays recorded, and the next check raises it."""
    from adamtune import interrupts

    try:
        with pytest.raises(KeyboardInterrupt):
            interrupts.request(signal.SIGINT)  # as the handler does, then lost somewhere
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    finally:
        interrupts._requested.clear()
    interrupts.check()  # nothing requested: nothing raised


def test_fresh_refuses_a_study_whose_worker_is_between_trials(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=3)
    study = open_study_for(path, storage_url)
    # Another worker signed the roll a moment ago and runs no trial right now.
    study._storage.set_study_system_attr(
        study._study_id, "adamtune_worker:elsewhere:1", time.time()
    )
    fresh = CliRunner().invoke(app, ["search", str(path), "--storage", storage_url, "--fresh"])
    assert fresh.exit_code == 1
    assert "has 1 other worker(s) searching it" in fresh.output and "--take-over" in fresh.output
    taken = CliRunner().invoke(
        app, ["search", str(path), "--storage", storage_url, "--fresh", "--take-over", "-q"]
    )
    assert taken.exit_code == 0, taken.output
