"""``search --jobs N``: N - 1 helper worker processes beside this one, on the same study.

Each helper is a plain ``adamtune search`` (quiet, output kept in a temporary file); the study
and its lock do the coordinating, exactly as for workers on other machines. The storage URL
reaches them in the environment, never on a command line, where ``ps`` would show a password.
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
from typing import IO, Any

from adamtune.config.storage_url import ENV_VAR, redact


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
    """torch threads per local worker: the cores shared out (a worker per core on this
    machine's two; tiny models gain little from a second thread, a second worker doubles)."""
    return max(1, (os.cpu_count() or 1) // jobs)


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
