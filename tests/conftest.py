"""Shared fixtures: tiny deterministic tasks and configs, each test in its own directory."""

from __future__ import annotations

import importlib
import os
import random
import signal
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

if TYPE_CHECKING:
    from adamtune.task.build import Task

MakeTask = Callable[..., "Task"]

# A shell that starts the tests in the background without job control (`pytest ... &` in a
# script) hands them Ctrl-C ignored, and the workers they start inherit that: the Ctrl-C tests
# would then test nothing. Take it back (a worker started from here gets the default again).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TINY = """\
name: {name}
seed: 0
data:
  source: iris
  batch_size: 32
model:
  arch: mlp
  hidden: [16]
train:
  epochs: 3
search:
  trials: {trials}
  batch: 1
  confirm: {{seeds: 1}}  # the noise-aware selection has tests of its own (test_noise.py)
  space:
    schedule: [none]  # and so has the schedule stage (test_schedule_stage.py)
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty directory (adamtune.db lands there) with fixed seeds,
    on one torch thread: threads that followed the machine's load would make a lone trial's
    last bits depend on what else the machine runs (tests/train/test_threads.py tests that)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADAMTUNE_STORAGE", raising=False)
    monkeypatch.setenv("ADAMTUNE_THREADS", "1")
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config into the test's directory and return its path."""

    def write(
        text: str | None = None, *, name: str = "tiny", trials: int = 12, file: str | None = None
    ) -> Path:
        path = tmp_path / (file or f"{name}.yaml")
        path.write_text(text if text is not None else TINY.format(name=name, trials=trials))
        return path

    return write


# Writes a module of user code beside the configs and returns its (fresh) import name.
WriteModule = Callable[[str], str]


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteModule]:
    """Write a module beside the configs under a fresh name; forget it after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    names: list[str] = []

    def write(source: str) -> str:
        name = f"usercode_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def config_text(
    *,
    seed: int = 0,
    source: str = "iris",
    epochs: int = 3,
    batch: int = 32,
    model: str = "  arch: mlp\n  hidden: [16]\n",
    train: str = "",
    data: str = "",
) -> str:
    return (
        f"seed: {seed}\ndata:\n  source: {source}\n  batch_size: {batch}\n{data}"
        f"model:\n{model}train:\n  epochs: {epochs}\n  device: cpu\n{train}"
    )


@pytest.fixture
def make_task(write_config: Callable[..., Path]) -> MakeTask:
    def make(**kwargs: Any) -> Task:
        from adamtune.config.schema import load_config
        from adamtune.task.build import build_task

        path = write_config(config_text(**kwargs), file=f"task{uuid.uuid4().hex[:6]}.yaml")
        return build_task(load_config(path))

    return make


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL database on 127.0.0.1 for the session (tests/postgres.py); the tests
    that need it are skipped where PostgreSQL or its Python driver is not installed."""
    import postgres

    if postgres.binaries() is None:
        pytest.skip("needs PostgreSQL (.ci/run installs Debian's postgresql)")
    if postgres.driver() is None:
        pytest.skip("needs psycopg (the [postgres] extra) or psycopg2")
    yield from postgres.serve()


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("COLUMNS", "200")
