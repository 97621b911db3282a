"""Local workers (``search --jobs N``): N - 1 helper processes beside this one, on one study.

Each helper is a plain ``adamtune search`` (quiet, output kept in a temporary file); the study
and its lock do the coordinating, exactly as for workers on other machines. The storage URL
reaches them in the environment, never on a command line, where ``ps`` would show a password.
``search_with_helpers`` runs the whole thing: helpers started, this process searching beside
them, the helpers stopped on an error or an interruption and waited for at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from adamtune import interrupts
from adamtune.config.storage_url import ENV_VAR, redact

if TYPE_CHECKING:
    import optuna

    from adamtune.config.schema import Settings
    from adamtune.search.events import SearchObserver, SearchRun
    from adamtune.search.options import SearchOptions


@dataclass
class Helper:
    number: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def last_line(self) -> str:
        self.log.seek(0)
        lines = [line for line in self.log.read().decode(errors="replace").splitlines() if line]
        return redact(lines[-1]) if lines else ""


def threads_per_worker(jobs: int) -> int:
    """torch threads per local worker: the cores (within a container's CPU quota) shared
    out (a worker per core on this machine's two; tiny models gain little from a second
    thread, a second worker doubles)."""
    from adamtune.train.threads import within_quota  # torch: inside, as the CLI wants

    return max(1, within_quota(os.cpu_count() or 1) // jobs)


def start_helpers(count: int, config: Path, url: str, options: dict[str, Any]) -> list[Helper]:
    """Start ``count`` helper workers; ``options`` are ``search`` options (name without
    dashes, value), passed on as given."""
    argv = [sys.executable, "-m", "adamtune", "search", str(config), "--quiet", "--no-summary"]
    for name, value in options.items():
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    env = {**os.environ, ENV_VAR: url}
    helpers = []
    for number in range(2, count + 2):
        log = tempfile.TemporaryFile()  # noqa: SIM115 - read when the helper has ended
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_interrupted_with_parent,  # noqa: PLW1509 - no threads run yet
        )
        helpers.append(Helper(number, process, log))
    return helpers


def _interrupted_with_parent() -> None:
    """In the helper, before it runs: SIGINT interrupts it (``stop_helpers`` relies on that),
    even when this process was started with SIGINT ignored (a background job of a script);
    and on Linux the kernel sends it SIGINT when the process that started it dies, even by
    SIGKILL (no helper outlives ``--jobs``'s process)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then installs KeyboardInterrupt
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


def stop_helpers(helpers: list[Helper], grace: float = 10.0) -> None:
    """Interrupt the helpers still running (each records its trial as interrupted), then
    make sure they are gone."""
    for helper in helpers:
        if helper.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                helper.process.send_signal(signal.SIGINT)
    for helper in helpers:
        try:
            helper.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            helper.process.kill()
            helper.process.wait()


def wait_helpers(helpers: list[Helper]) -> list[str]:
    """Wait for the helpers to end; a line for each that failed."""
    problems = []
    for helper in helpers:
        code = helper.process.wait()
        if code != 0:
            problems.append(
                f"worker {helper.number} (pid {helper.process.pid}) exited with code {code}: "
                f"{helper.last_line() or 'no message'}"
            )
        helper.log.close()
    return problems


@dataclass
class LocalSearch:
    """What ``search_with_helpers`` did: this worker's run (the helpers' trials counted in
    ``run.ran``), the study as it ended, and a line for each helper that failed."""

    run: SearchRun
    study: optuna.Study
    problems: list[str]


def search_with_helpers(
    settings: Settings,
    options: SearchOptions,
    observer: SearchObserver,
    jobs: int = 1,
    config: Path | None = None,
    helper_options: dict[str, Any] | None = None,
) -> LocalSearch:
    """``run_search`` in this process beside ``jobs - 1`` helper processes running the same
    config (``config``, with ``helper_options``: ``search`` options by name). With a fresh
    start or a take-over, that happens once, for all, under the study's lock."""
    helpers: list[Helper] = []
    if jobs > 1:
        assert config is not None
        if options.fresh or options.take_over:
            helpers = _prepared(jobs, config, settings, options, helper_options or {}, observer)
        else:  # at once: they import torch while this one does
            helpers = start_helpers(jobs - 1, config, options.storage, helper_options or {})
    from adamtune.search import trial_attrs
    from adamtune.search.rows import row_of
    from adamtune.search.run import run_search
    from adamtune.search.storage import load_study, open_storage
    from adamtune.search.workers import worker_host

    with interrupts.installed():
        try:
            run = run_search(settings, options, observer)
            problems = wait_helpers(helpers)  # an interruption here stops them too
            url = options.storage  # run.storage is redacted
            found = load_study(run.study, open_storage(url, must_exist=True), url)
        except BaseException:
            stop_helpers(helpers)
            raise
    ids = {f"{worker_host()}:{h.process.pid}" for h in helpers}
    run.ran.extend(
        row_of(t) for t in found.get_trials() if t.user_attrs.get(trial_attrs.WORKER) in ids
    )
    return LocalSearch(run, found, problems)


def _prepared(
    jobs: int,
    config: Path,
    settings: Settings,
    options: SearchOptions,
    helper_options: dict[str, Any],
    observer: SearchObserver,
) -> list[Helper]:
    """Start N - 1 helpers, then, holding the study's lock (they wait for it), start over or
    take over once, for all."""
    from adamtune.search.run import open_study
    from adamtune.search.storage import open_storage, release_storage
    from adamtune.search.workers import study_lock

    storage = open_storage(options.storage)
    try:
        with study_lock(storage, options.study_name or settings.study_name):
            helpers = start_helpers(jobs - 1, config, options.storage, helper_options)
            try:
                open_study(settings, options, storage, observer)
            except BaseException:
                stop_helpers(helpers)
                raise
    finally:
        release_storage(storage)
    options.fresh = options.take_over = False  # done, for every worker
    return helpers
