"""Shared fixtures: tiny deterministic tasks and configs, each test in its own directory."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

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
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty directory (adamtune.db lands there) with fixed seeds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADAMTUNE_STORAGE", raising=False)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config into the test's directory and return its path."""

    def write(text: str | None = None, *, name: str = "tiny", trials: int = 12,
              file: str | None = None) -> Path:
        path = tmp_path / (file or f"{name}.yaml")
        path.write_text(text if text is not None else TINY.format(name=name, trials=trials))
        return path

    return write


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("COLUMNS", "200")
